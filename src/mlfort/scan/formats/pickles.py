"""The pickle handler: plain pickles, joblib files, legacy PyTorch files and `data.pkl` inside PyTorch zips."""

from __future__ import annotations

from typing import BinaryIO

from mlfort.scan.base import Member, ScanContext
from mlfort.scan.dispatch import handles
from mlfort.scan.pickle_vm import analyze_pickle


@handles("pickle")
def scan_pickle(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """Analyse every pickle in the member's stream; findings go to the context."""
    analyze_pickle(stream, target=member.path, ctx=ctx)
