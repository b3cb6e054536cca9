"""Show a value in a message without ever showing a secret: PEM blocks are named, not printed; long values cut."""

from __future__ import annotations

import re

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


def preview(value: str, limit: int = 40) -> str:
    """A short, quoted, safe rendering of `value` for an error message or a finding."""
    m = _PEM.search(value)
    if m:
        return f"a PEM block ({m[1].lower()}, {len(value)} characters; not shown)"
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"… ({len(value)} characters)"
