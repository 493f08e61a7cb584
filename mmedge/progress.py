"""Progress of long library steps (epochs, calibration, bench rounds, evaluation, engine builds).

Library code reports with `track(iterable, "calibrating image")` or `with task("building", total=n) as t:
t.advance()`. Nothing is shown unless a reporter is installed with `reporting(reporter)`: the CLI
installs one that draws a bar with ETA on stderr (mmedge.cli.progress). Costs nothing otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

T = TypeVar("T")


class Task(Protocol):
    """A running step: advance it, relabel it; the reporter closes it."""

    def advance(self, steps: float = 1) -> None:
        """Mark `steps` more units done."""

    def update(self, description: str | None = None, total: float | None = None,
               completed: float | None = None) -> None:
        """Change the label, the total or the units done."""


class Reporter(Protocol):
    """Draws tasks (the CLI's rich bars; a test's recorder)."""

    def start(self, description: str, total: float | None) -> Task:
        """Begin a task."""

    def finish(self, task: Task) -> None:
        """End a task."""


class NullTask:
    """What `task` yields when no reporter is installed."""

    def advance(self, steps: float = 1) -> None:
        """Nothing to draw."""

    def update(self, description: str | None = None, total: float | None = None,
               completed: float | None = None) -> None:
        """Nothing to draw."""


_lock = threading.Lock()
_reporter: Reporter | None = None


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Install `reporter` for the block (None: silence)."""
    global _reporter
    with _lock:
        previous, _reporter = _reporter, reporter
    try:
        yield
    finally:
        with _lock:
            _reporter = previous


@contextmanager
def task(description: str, total: float | None = None) -> Iterator[Task]:
    """A step of `total` units (None: unknown) shown by the installed reporter, if any."""
    reporter = _reporter
    if reporter is None:
        yield NullTask()
        return
    handle = reporter.start(description, total)
    try:
        yield handle
    finally:
        reporter.finish(handle)


def track(items: Iterable[T], description: str, total: float | None = None) -> Iterator[T]:
    """Iterate `items`, advancing a task per item (total: len(items) when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(description, total) as t:
        for item in items:
            yield item
            t.advance()
