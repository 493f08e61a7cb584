"""Consoles whose tables survive pipes and CI logs: no cell is ever cut to `2.4…`.

On a terminal the terminal's width is used; anywhere else (a pipe, a file, a CI log) the width is
$COLUMNS when set, else unlimited. Either way a cell that does not fit wraps instead of being truncated.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.table import Table

UNLIMITED = 10_000  # "no limit" for rich, which needs a number; tables are still sized to their content


def environment_width() -> int | None:
    """$COLUMNS as an int (None when unset or not a number)."""
    value = os.environ.get("COLUMNS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


class WholeCellConsole(Console):
    """A rich Console that never truncates a table cell and is not held to 80 columns off a terminal."""

    @property  # type: ignore[override]
    def size(self) -> ConsoleDimensions:
        """Terminal size on a terminal; ($COLUMNS or unlimited) × 25 anywhere else."""
        if self.is_terminal or self._width is not None:
            return super().size
        return ConsoleDimensions(environment_width() or UNLIMITED, 25)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Print; tables fold a cell that does not fit onto more lines instead of ending it with '…'."""
        for obj in objects:
            if isinstance(obj, Table):
                whole_cells(obj)
        super().print(*objects, **kwargs)


def whole_cells(table: Table) -> Table:
    """Make every column of `table` wrap/fold rather than truncate (in place; returns it)."""
    for column in table.columns:
        if column.overflow in ("ellipsis", "crop"):
            column.overflow = "fold"
        column.no_wrap = False
    return table
