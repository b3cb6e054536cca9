"""mlfort: zero-trust ML pipelines across on-prem and cloud, from one policy file."""

__version__ = "0.1.0"
