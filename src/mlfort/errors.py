"""The error types every room shares, so the CLI can turn each into one clear message and one exit code."""

from __future__ import annotations


class MlfortError(Exception):
    """Base of every error mlfort raises on purpose. The message is meant for a person."""

    exit_code: int = 2


class InputError(MlfortError):
    """The caller gave us something we cannot use: a bad file, a bad option, a malformed document (exit 2)."""

    exit_code = 2


class VerificationError(MlfortError):
    """Something was checked and found wrong (exit 1)."""

    exit_code = 1
