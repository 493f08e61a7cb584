"""The CLI draws library progress as a bar with ETA on stderr, only on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from mmedge import progress
from mmedge.cli.progress import RichReporter, progress_bars, status


def test_bar_with_eta_on_a_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    reporter = RichReporter(console)
    with progress.reporting(reporter):
        for _ in progress.track(range(4), "calibration samples"):
            reporter.drawn_at = 0.0  # as if half a second had passed since the last drawing
    reporter.stop()
    drawn = console.file.getvalue()  # type: ignore[attr-defined]
    assert "calibration samples" in drawn and "ETA" in drawn and "4/4" in drawn
    assert not reporter.bar.live.auto_refresh  # no refresh thread: drawn from the caller, between work items


def test_nothing_off_a_terminal_or_in_json_mode() -> None:
    pipe = Console(file=io.StringIO(), force_terminal=False)
    with progress_bars(pipe, enabled=True), status("quantizing") as step:
        step.update("quantizing text")
        assert isinstance(step, progress.NullTask)
    tty = Console(file=io.StringIO(), force_terminal=True)
    with progress_bars(tty, enabled=False), progress.task("x") as t:
        assert isinstance(t, progress.NullTask)
    assert pipe.file.getvalue() == "" and tty.file.getvalue() == ""  # type: ignore[attr-defined]


def test_a_second_live_display_does_not_crash() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    with console.status("someone else's spinner"), progress_bars(console, enabled=True), \
            progress.task("mine", 2) as t:
        t.advance()  # drawn nowhere, but no LiveError
