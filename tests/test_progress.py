"""mmedge.progress: library steps report to the installed reporter, and cost nothing without one."""

from __future__ import annotations

from typing import Any

from mmedge import progress


class Recorder:
    """A reporter that records what a real one would draw."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def start(self, description: str, total: float | None) -> Any:
        self.events.append(("start", description, total))
        outer = self

        class Handle:
            def advance(self, steps: float = 1) -> None:
                outer.events.append(("advance", steps))

            def update(self, description: str | None = None, total: float | None = None,
                       completed: float | None = None) -> None:
                outer.events.append(("update", description, total, completed))

        return Handle()

    def finish(self, task: Any) -> None:
        self.events.append(("finish",))


def test_track_reports_each_item_and_the_total() -> None:
    rec = Recorder()
    with progress.reporting(rec):
        assert list(progress.track([1, 2, 3], "calibrating")) == [1, 2, 3]
    assert rec.events == [("start", "calibrating", 3), ("advance", 1), ("advance", 1), ("advance", 1), ("finish",)]


def test_task_without_total_and_updates() -> None:
    rec = Recorder()
    with progress.reporting(rec), progress.task("building") as t:
        t.update(description="building text", completed=1)
    assert rec.events == [("start", "building", None), ("update", "building text", None, 1), ("finish",)]


def test_nothing_without_a_reporter_and_finish_on_error() -> None:
    assert list(progress.track(iter("ab"), "x")) == ["a", "b"]  # no reporter, no len(): still iterates
    rec = Recorder()
    with progress.reporting(rec):
        try:
            for _ in progress.track(range(5), "rounds"):
                raise ValueError
        except ValueError:
            pass
    assert rec.events[-1] == ("finish",)
    with progress.task("after") as t:  # the reporter was uninstalled with its block
        assert isinstance(t, progress.NullTask)
