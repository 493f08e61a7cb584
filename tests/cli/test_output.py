"""Tables survive pipes and CI logs: no cell cut to '2.4…', width from $COLUMNS or unlimited."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from mmedge.cli.output import UNLIMITED, WholeCellConsole, environment_width

ROW = ["onnxruntime/fp32/b1/text+image+audio", "2.451383", "3.1234567", "1234.5678 ± 12.3456"]


def table() -> Table:
    t = Table(title="bench")
    for col in ("config", "p50 ms", "p99 ms", "mean ± std ms"):
        t.add_column(col, justify="right")
    t.add_row(*ROW)
    return t


def render(console_cls: type[Console]) -> str:
    buf = io.StringIO()
    console_cls(file=buf).print(table())
    return buf.getvalue()


def test_off_a_terminal_every_cell_is_whole_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    assert "…" in render(Console)  # what plain rich does to a piped table (the bug)
    monkeypatch.delenv("COLUMNS")
    out = render(WholeCellConsole)
    assert "…" not in out
    row = next(line for line in out.splitlines() if "onnxruntime" in line)
    assert all(cell in row for cell in ROW)


def test_columns_from_the_environment_wraps_instead_of_truncating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    out = render(WholeCellConsole)
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 40
    body = out.split("┡")[1].splitlines()[1:]
    columns = ["", "", "", ""]
    for line in body:
        if "│" in line:
            for i, cell in enumerate(line.split("│")[1:-1]):
                columns[i] += cell.strip()
    # folded over several lines, but every character is still there, in order
    assert [c.replace(" ", "") for c in columns] == [cell.replace(" ", "") for cell in ROW]


def test_environment_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "132")
    assert environment_width() == 132 and WholeCellConsole(file=io.StringIO()).width == 132
    for bad in ("", "wide", "0"):
        monkeypatch.setenv("COLUMNS", bad)
        assert environment_width() is None
    monkeypatch.delenv("COLUMNS")
    assert WholeCellConsole(file=io.StringIO()).width == UNLIMITED


def test_a_terminal_keeps_its_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = WholeCellConsole(file=io.StringIO(), force_terminal=True, width=50)
    assert console.width == 50
    console.print(table())
    assert "…" not in console.file.getvalue()  # type: ignore[attr-defined]
