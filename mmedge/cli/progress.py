"""The CLI's progress reporter: rich bars with elapsed time and ETA on stderr (never on stdout)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.errors import LiveError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mmedge import progress as lib_progress


def progress_columns() -> tuple[Any, ...]:
    """Label, bar, done/total, elapsed, ETA: every long step looks the same."""
    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn())


REDRAW_SECONDS = 0.5


class _RichTask:
    def __init__(self, reporter: RichReporter, task_id: TaskID) -> None:
        self.reporter, self.task_id = reporter, task_id

    def advance(self, steps: float = 1) -> None:
        """Mark `steps` more units done."""
        self.reporter.bar.advance(self.task_id, steps)
        self.reporter.redraw()

    def update(self, description: str | None = None, total: float | None = None,
               completed: float | None = None) -> None:
        """Change the label, the total or the units done."""
        self.reporter.bar.update(self.task_id, description=description, total=total, completed=completed)
        self.reporter.redraw()


class RichReporter:
    """Draws each library task as a transient bar on `console` (started on the first task).

    Drawn only from the caller's thread, when a task moves (at most every REDRAW_SECONDS): no
    background refresh thread competes with the work — a benchmark's timed regions stay clean.
    """

    def __init__(self, console: Console) -> None:
        self.bar = Progress(*progress_columns(), console=console, transient=True, auto_refresh=False)
        self.started = False
        self.drawn_at = 0.0

    def redraw(self, force: bool = False) -> None:
        """Draw now if the last drawing is older than REDRAW_SECONDS (or `force`)."""
        now = time.monotonic()
        if force or now - self.drawn_at >= REDRAW_SECONDS:
            self.drawn_at = now
            self.bar.refresh()

    def start(self, description: str, total: float | None) -> lib_progress.Task:
        """Add a bar (nothing, if another live display already owns the console)."""
        if not self.started:
            try:
                self.bar.start()
            except LiveError:
                return lib_progress.NullTask()
            self.started = True
        handle = _RichTask(self, self.bar.add_task(description, total=total))
        self.redraw(force=True)
        return handle

    def finish(self, task: lib_progress.Task) -> None:
        """Remove a finished bar."""
        if isinstance(task, _RichTask):
            self.bar.remove_task(task.task_id)
            self.redraw(force=True)

    def stop(self) -> None:
        """Stop drawing."""
        if self.started:
            self.bar.stop()


@contextmanager
def status(description: str) -> Iterator[lib_progress.Task]:
    """A step of unknown length (the old spinner): `with status("exporting") as s: s.update("exporting text")`."""
    with lib_progress.task(description, None) as handle:
        yield handle


@contextmanager
def progress_bars(console: Console, enabled: bool) -> Iterator[None]:
    """Show library progress on `console` for the block when enabled and `console` is a terminal."""
    if not enabled or not console.is_terminal:
        yield
        return
    reporter = RichReporter(console)
    try:
        with lib_progress.reporting(reporter):
            yield
    finally:
        reporter.stop()
