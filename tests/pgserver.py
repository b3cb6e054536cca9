"""pytest plugin: a real, throwaway PostgreSQL server for the tests, built from Debian's own binaries.

`pg_server` (session) runs initdb and pg_ctl from /usr/lib/postgresql/<newest>/bin in a temp dir, listening on
127.0.0.1 on a free port (password auth with a generated password, so URLs carry a secret the code must not leak)
and on a unix socket in the temp dir (trust, for the admin connection). It is stopped with `pg_ctl stop -m
immediate` and its directory removed at the end of the session. `pg_url` (function) gives each test a fresh empty
database, dropped after it.

initdb refuses to run as root, and tests and CI run as root: then the server runs as the `postgres` OS user
(runuser), in a temp dir that user owns. Without the binaries the tests that need them skip, except under CI
(the CI variable set), where they fail: a CI that silently skipped the PostgreSQL store would prove nothing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.servers import free_port, unavailable

if TYPE_CHECKING:
    import psycopg

PG_ROOT = Path("/usr/lib/postgresql")
BIN_ENV = "MLFORT_TEST_PG_BIN"
"""Set to a directory holding initdb and pg_ctl to use other binaries than Debian's newest."""
SUPERUSER = "postgres"
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "60",
    "shared_buffers": "32MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "log_min_messages": "warning",
    "logging_collector": "off",
}


@dataclass(frozen=True)
class PgServer:
    """A running test server."""

    bin: Path
    dir: Path
    port: int
    password: str
    started_in: float
    """Seconds from initdb to accepting connections (reported by the benchmarks and the test log)."""

    @property
    def socket_dir(self) -> Path:
        return self.dir / "sock"

    def url(self, dbname: str) -> str:
        """A TCP URL with the superuser's password in it (as a real deployment's would be)."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection:
        """An autocommit superuser connection to the `postgres` database, over the unix socket."""
        import psycopg

        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname="postgres",
                               autocommit=True, connect_timeout=10)


def find_pg_bin() -> Path | None:
    """The bin directory of the newest PostgreSQL Debian installed (or $MLFORT_TEST_PG_BIN)."""
    explicit = os.environ.get(BIN_ENV)
    if explicit:
        return Path(explicit) if (Path(explicit) / "initdb").exists() else None
    found = [p.parent for p in PG_ROOT.glob("*/bin/initdb") if p.parent.parent.name.replace(".", "").isdigit()]
    if not found:
        return None
    return max(found, key=lambda b: tuple(int(x) for x in b.parent.name.split(".")))


class _Runner:
    """Runs the server's programs as the user who will own the data directory."""

    def __init__(self, base: Path) -> None:
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(SUPERUSER)
            except KeyError:
                unavailable("PostgreSQL tests run as root need the `postgres` OS user (apt-get install postgresql)")
            runuser = shutil.which("runuser") or next(
                (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.path.exists(p)), None)
            if runuser is None:
                unavailable("PostgreSQL tests run as root need runuser (util-linux) to start the server as postgres")
            self.prefix = [runuser, "-u", SUPERUSER, "--"]
            os.chown(base, account.pw_uid, account.pw_gid)
            self.uid, self.gid = account.pw_uid, account.pw_gid
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        self.base = base

    def own(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)

    def run(self, *cmd: str | Path, check: bool = True) -> subprocess.CompletedProcess:
        # cwd inside the temp dir: the postgres user may not be able to read the caller's directory.
        return subprocess.run([*self.prefix, *map(str, cmd)], cwd=self.base, capture_output=True, text=True,
                              timeout=120, check=check)


def _log_tail(log: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no server log)"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole session."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        if os.environ.get(BIN_ENV):
            unavailable(f"${BIN_ENV}={os.environ[BIN_ENV]} holds no initdb")
        unavailable(f"no PostgreSQL server binaries under {PG_ROOT}/*/bin (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install 'mlfort[postgres]')")
    started = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="mlfort-pg-"))
    data, log = base / "data", base / "server.log"
    runner: _Runner | None = None
    try:
        runner = _Runner(base)
        password = secrets.token_urlsafe(18)
        (base / "sock").mkdir()
        runner.own(base / "sock")
        pwfile = base / "pw"
        pwfile.write_text(password + "\n")
        runner.own(pwfile)
        done = runner.run(pg_bin / "initdb", "-D", data, "-U", SUPERUSER, f"--pwfile={pwfile}", "--auth-local=trust",
                          "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", check=False)
        pwfile.unlink()
        if done.returncode != 0:
            pytest.fail(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}", pytrace=False)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("\n# mlfort test server\n")
            conf.writelines(f"{k} = {v}\n" for k, v in SETTINGS.items())
            conf.write(f"unix_socket_directories = '{base / 'sock'}'\n")
        port = 0
        for _attempt in range(5):
            port = free_port()  # another process may take it before the server binds: then try another
            done = runner.run(pg_bin / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", f"-p {port}",
                              "start", check=False)
            if done.returncode == 0:
                break
            if not re.search(r"could not (bind|create listen)|already in use", _log_tail(log), re.IGNORECASE):
                pytest.fail(f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n{_log_tail(log)}", pytrace=False)
        else:
            pytest.fail(f"pg_ctl start found no free port:\n{_log_tail(log)}", pytrace=False)
        server = PgServer(bin=pg_bin, dir=base, port=port, password=password,
                          started_in=time.perf_counter() - started)
        yield server
    finally:
        if runner is not None and (data / "postmaster.pid").exists():
            runner.run(pg_bin / "pg_ctl", "-D", data, "stop", "-m", "immediate", "-w", check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL (password included) of a fresh, empty database for this test only."""
    name = f"mlfort_test_{secrets.token_hex(6)}"
    with pg_server.admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.url(name)
    finally:
        with pg_server.admin() as admin:
            # A test that failed half-way may leave connections open (a killed child's, a leaked store): FORCE
            # (PostgreSQL 13+) ends them first.
            force = " WITH (FORCE)" if admin.info.server_version >= 130000 else ""
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
