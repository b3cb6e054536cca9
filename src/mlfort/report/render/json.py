"""The JSON report: the tool, the counts per severity and every finding in full, for scripts and archives."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mlfort import __version__
from mlfort.report.finding import Finding
from mlfort.report.render import Renderer, severity_counts, worst_first


def dumps(document: Any) -> str:
    """Indented JSON text in UTF-8-safe form, keys in insertion order, ending with a newline.

    Non-ASCII stays readable; only when a string cannot be written as UTF-8 at all (a lone surrogate from an
    undecodable file name) does the whole document fall back to `\\u` escapes, so writing it never fails.
    Values JSON does not know (a datetime in evidence) are written as their str().
    """
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(document, indent=2, ensure_ascii=True, default=str)
    return text + "\n"


class JsonRenderer(Renderer):
    """`{"tool", "title", "summary_text", "summary", "findings"}`; findings worst first, evidence whole."""

    def render(self, findings: Sequence[Finding], *, title: str = "", summary: str = "") -> str:
        """The report as one JSON object (see the class docstring), ending with a newline."""
        document = {
            "tool": {"name": "mlfort", "version": __version__},
            "title": title,
            "summary_text": summary,
            "summary": severity_counts(findings),
            "findings": [f.to_dict() for f in worst_first(findings)],
        }
        return dumps(document)
