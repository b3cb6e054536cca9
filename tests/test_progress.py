"""The progress bar: drawn for large jobs on a terminal, absent otherwise (pipes and CI logs stay clean)."""

from __future__ import annotations

import threading

from mlfort.cli.progress import SHOW_ABOVE_BYTES, byte_progress


def test_progress_bar_draws_for_a_large_job_and_takes_advances_from_threads(capsys):
    with byte_progress("signing churn", enabled=True) as (on_plan, advance):
        on_plan(SHOW_ABOVE_BYTES * 2)
        workers = [threading.Thread(target=lambda: [advance(1 << 20) for _ in range(256)]) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert "signing churn" in capsys.readouterr().err


def test_no_progress_bar_for_a_small_job_or_when_not_a_terminal(capsys):
    with byte_progress("small", enabled=True) as (on_plan, advance):
        on_plan(1024)
        advance(1024)
    with byte_progress("piped") as (on_plan, advance):  # stderr is not a terminal under pytest
        on_plan(SHOW_ABOVE_BYTES * 2)
        advance(10)
    assert capsys.readouterr().err == ""
