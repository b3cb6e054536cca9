"""The rules `mlfort scan models` reports, registered once for every renderer."""

from __future__ import annotations

from mlfort.report import Finding, Rule, Severity, register_rules

_REFS = (
    "OWASP ML06:2023 AI Supply Chain Attacks",
    "MITRE ATLAS AML.T0010.003 ML Supply Chain Compromise: Model",
    "MITRE ATLAS AML.T0011.000 User Execution: Unsafe ML Artifacts",
    "CWE-502 Deserialization of Untrusted Data",
)

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("MLF-MOD-001", "Model file runs code when loaded",
             "The file imports or calls something that can execute code, reach the network, or touch files when it "
             "is deserialized (pickle/joblib/PyTorch). Do not load it. Get the model from a trusted source, or "
             "convert it to safetensors in an isolated environment.", Severity.CRITICAL, _REFS),
        Rule("MLF-MOD-002", "Model file imports something outside the allowlist",
             "The pickle imports a global that real ML files do not use. It may be harmless, but loading it runs "
             "that code path: review it, and add it to the allowlist only if you know what it does.",
             Severity.HIGH, _REFS),
        Rule("MLF-MOD-003", "Model file cannot be parsed",
             "The file is truncated, corrupt or deliberately malformed. Loaders often run code before they fail, "
             "so a malformed model is not safe to load either.", Severity.HIGH, _REFS),
        Rule("MLF-MOD-004", "Scan limit reached",
             "The file nests too deep, holds too many members or expands too far to scan completely: what was not "
             "scanned is not known to be safe.", Severity.HIGH, _REFS),
        Rule("MLF-MOD-005", "Format not recognised",
             "The file is not a format the scanner knows, so it was not checked. If a loader reads it, convert it "
             "to a known format or review it by hand.", Severity.LOW, _REFS),
        Rule("MLF-MOD-006", "NumPy object array",
             "An object array (dtype=object) is stored as a pickle; loading it with allow_pickle=True runs that "
             "pickle. Its contents are scanned and reported separately.", Severity.MEDIUM, _REFS),
        Rule("MLF-MOD-007", "Keras Lambda layer or custom code",
             "The Keras model holds a Lambda layer (serialized Python bytecode) or a reference to custom code that "
             "runs on load. Rebuild the layer in code you control and save without it.", Severity.CRITICAL, _REFS),
        Rule("MLF-MOD-008", "ONNX external data escapes the model folder",
             "A tensor's external data location is absolute or climbs out of the model's folder, so loading the "
             "model reads (or overwrites) another file.", Severity.CRITICAL, _REFS),
        Rule("MLF-MOD-009", "safetensors header invalid",
             "Offsets overlap, leave gaps, point past the end, or disagree with the dtype and shape: a crafted "
             "file that loaders may read out of bounds.", Severity.HIGH, _REFS),
        Rule("MLF-MOD-010", "GGUF header invalid",
             "Counts, lengths, types or offsets in the GGUF header are impossible for the file's size: a crafted "
             "file (llama.cpp and its bindings have had memory-safety bugs on such input).", Severity.HIGH, _REFS),
        Rule("MLF-MOD-011", "Hidden or extra pickle data",
             "Bytes follow the pickle's STOP (a second pickle, or data a loader may read), or a container holds a "
             "pickle its format does not expect. Each such pickle is scanned and reported too.",
             Severity.MEDIUM, _REFS),
        Rule("MLF-MOD-012", "Container anomaly",
             "The archive has broken checksums, odd flag bits, duplicate or unsafe member names (absolute, `..`), "
             "or encrypted members: signs of a file crafted to slip past scanners that PyTorch still loads.",
             Severity.MEDIUM, _REFS),
        Rule("MLF-MOD-013", "Scanned",
             "What was scanned and found clean (reported only with --show-clean).", Severity.INFO, _REFS),
    )
}
register_rules(*RULES.values())


def finding(rule_id: str, target: str, message: str, *, severity: Severity | None = None,
            **evidence: object) -> Finding:
    """A finding of one of the scanner's rules, at the rule's severity unless given."""
    return RULES[rule_id].finding(target, message, severity=severity, **evidence)
