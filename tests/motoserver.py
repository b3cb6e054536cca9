"""pytest plugin: moto's AWS mock server as a real HTTP endpoint on 127.0.0.1, for tests of code that talks to AWS.

`moto_server` (session) starts `moto_server` (the console script moto installs, else `python -m moto.server`) on a
free loopback port, waits until it answers, and stops it at the end of the session; it yields the endpoint URL.
Every AWS service moto mocks (S3, KMS, STS, ...) answers on that one endpoint.

`aws_client` (function) is a factory: `aws_client("s3")`, `aws_client("kms")` give boto3 clients for the server,
with dummy credentials and a fixed region, never the caller's real ones. Before each test that uses it the server's
state is reset, so tests do not see each other's buckets and keys. `s3_client` is `aws_client("s3")`.

Going through HTTP (rather than moto's in-process decorators) exercises what the real client sends: headers such as
Content-MD5 and x-amz-object-lock-*, checksums, and the error codes the code under test must turn into messages.
Without moto installed the tests that need it skip, except under CI (the CI variable set), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port, unavailable

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_session_token": "testing"}
START_TIMEOUT_S = 60


def _command(port: int) -> list[str]:
    script = Path(sys.executable).parent / "moto_server"
    if script.exists():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(log: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no server log)"


def _env() -> dict[str, str]:
    # The server must not see the caller's AWS settings (a profile, a real endpoint); only dummy credentials.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION})
    return env


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL (http://127.0.0.1:<port>) of a moto server running for the whole session."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        unavailable("moto's server is not installed (pip install 'moto[server]')")
    base = Path(tempfile.mkdtemp(prefix="mlfort-moto-"))
    log = base / "server.log"
    proc: subprocess.Popen | None = None
    try:
        for _attempt in range(5):
            port = free_port()  # another process may take it before the server binds: then try another
            url = f"http://127.0.0.1:{port}"
            with log.open("ab") as sink:
                proc = subprocess.Popen(_command(port), stdout=sink, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=_env(), cwd=base)
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and proc.poll() is None and not _answers(url):
                time.sleep(0.1)
            if proc.poll() is None and _answers(url):
                break
            _stop(proc)
            proc = None
            if "in use" not in _log_tail(log).lower():
                pytest.fail(f"moto_server did not start:\n{_log_tail(log)}", pytrace=False)
        else:
            pytest.fail(f"moto_server found no free port:\n{_log_tail(log)}", pytrace=False)
        yield url
    finally:
        if proc is not None:
            _stop(proc)
        with contextlib.suppress(OSError):
            log.unlink()
            base.rmdir()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def reset(endpoint: str) -> None:
    """Forget every resource the server holds (moto's reset API)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture
def aws_client(moto_server: str) -> Callable[..., Any]:
    """`aws_client(service, **kwargs)`: a boto3 client for the moto server (state reset before the test)."""
    try:
        import boto3
    except ImportError:
        unavailable("boto3 is not installed (pip install 'mlfort[aws]')")
    reset(moto_server)
    session = boto3.session.Session(region_name=REGION, **CREDENTIALS)

    def make(service: str, **kwargs: Any) -> Any:
        return session.client(service, endpoint_url=moto_server, **kwargs)

    return make


@pytest.fixture
def s3_client(aws_client: Callable[..., Any]) -> Any:
    """A boto3 S3 client for the moto server."""
    return aws_client("s3")
