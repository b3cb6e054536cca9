"""Ledger stores: `open_store(url)` picks the implementation by URL scheme."""

from __future__ import annotations

from pathlib import Path

from mlfort.ledger.store.base import LedgerStore, Query, SearchRow, StoreError, WriteTransaction

__all__ = ["LedgerStore", "Query", "SearchRow", "StoreError", "WriteTransaction", "open_store", "redact_url"]


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for messages and events."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def open_store(url: str, base_dir: Path | None = None) -> LedgerStore:
    """A store for `sqlite:///relative.db`, `sqlite:////absolute.db` or `postgresql://user@host:port/db`."""
    if url.startswith("sqlite://"):
        from mlfort.ledger.store.sqlite import SqliteStore, sqlite_path

        return SqliteStore(sqlite_path(url, base_dir or Path.cwd()))
    if url.startswith(("postgresql://", "postgres://")):
        from mlfort.ledger.store.postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError(f"ledger URL {redact_url(url)!r}: the scheme must be sqlite:// or postgresql://")
