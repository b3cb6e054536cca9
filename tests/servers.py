"""What every real-server fixture shares (PostgreSQL, moto; later Redis and slapd): a free loopback port, and the
rule that a server missing from the machine fails the run under CI and skips the test elsewhere."""

from __future__ import annotations

import os
import socket

import pytest


def unavailable(message: str) -> None:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
