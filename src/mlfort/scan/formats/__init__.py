"""Format handlers, one module per format family; `mlfort.scan.dispatch` imports each on first need (its
`MODULE_OF` names them) and every module registers its handlers with `@handles`."""
