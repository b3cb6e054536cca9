"""Handler placeholder: filled in by the scanner work."""
