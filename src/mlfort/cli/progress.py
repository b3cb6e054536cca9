"""A progress bar for long hashing jobs, shown only on a terminal and only when the job is large."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SHOW_ABOVE_BYTES = 256 * 1024 * 1024


@contextmanager
def byte_progress(description: str, *, enabled: bool | None = None) -> Iterator[tuple[Callable[[int], None],
                                                                                     Callable[[int], None]]]:
    """Yield (on_plan, advance): call on_plan(total_bytes) once, then advance(n) from any thread.

    Draws on stderr when it is a terminal (or `enabled` forces it) and the total is large; otherwise both are
    cheap no-ops.
    """
    show = sys.stderr.isatty() if enabled is None else enabled
    state: dict[str, object] = {}
    lock = threading.Lock()

    def on_plan(total: int) -> None:
        if not show or total < SHOW_ABOVE_BYTES:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        bar = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=Console(file=sys.stderr, force_terminal=enabled or None), transient=True,
        )
        bar.start()
        state["bar"] = bar
        state["task"] = bar.add_task(description, total=total)

    def advance(n: int) -> None:
        bar = state.get("bar")
        if bar is not None:
            with lock:
                bar.advance(state["task"], n)  # type: ignore[attr-defined]

    try:
        yield on_plan, advance
    finally:
        bar = state.get("bar")
        if bar is not None:
            bar.stop()  # type: ignore[attr-defined]


SHOW_ABOVE_ITEMS = 200_000


@contextmanager
def count_progress(description: str, total: int, *, enabled: bool | None = None) -> Iterator[Callable[[int], None]]:
    """Yield update(position) for a job over `total` items; drawn on a terminal's stderr when the job is large."""
    show = (sys.stderr.isatty() if enabled is None else enabled) and total >= SHOW_ABOVE_ITEMS
    if not show:
        yield lambda _position: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(file=sys.stderr, force_terminal=enabled or None), transient=True)
    task = bar.add_task(description, total=total)
    bar.start()
    try:
        yield lambda position: bar.update(task, completed=position)
    finally:
        bar.stop()


@contextmanager
def open_progress(description: str, *, enabled: bool | None = None,
                  delay: float = 1.0) -> Iterator[Callable[[int], None]]:
    """Yield update(position) for a job whose size is not known up front (files found while walking a folder).

    On a terminal's stderr a spinner with the count appears once the job has run `delay` seconds, so quick runs
    print nothing extra; elsewhere update is a cheap no-op.
    """
    import time

    if not (sys.stderr.isatty() if enabled is None else enabled):
        yield lambda _position: None
        return
    start = time.monotonic()
    state: dict[str, object] = {}

    def update(position: int) -> None:
        bar = state.get("bar")
        if bar is None:
            if time.monotonic() - start < delay:
                return
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            bar = Progress(SpinnerColumn(), TextColumn(description), TextColumn("{task.completed:,.0f} done"),
                           TimeElapsedColumn(), console=Console(file=sys.stderr, force_terminal=enabled or None),
                           transient=True)
            state["bar"] = bar
            state["task"] = bar.add_task(description, total=None)
            bar.start()
        bar.update(state["task"], completed=position)  # type: ignore[attr-defined]

    try:
        yield update
    finally:
        bar = state.get("bar")
        if bar is not None:
            bar.stop()  # type: ignore[attr-defined]
