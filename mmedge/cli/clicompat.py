"""The click that typer runs on: typer >= 0.25 vendors it as `typer._click`, older typer uses `click`.

Catching `click.exceptions.Exit` when typer raises its own would let every failure through as a
traceback, so CLI code takes these names from here.
"""

from __future__ import annotations

try:
    from typer._click.core import Context
    from typer._click.exceptions import ClickException, UsageError
    from typer._click.globals import get_current_context
    from typer.exceptions import Abort, Exit
except ImportError:  # typer < 0.25: the real click
    from click import Context  # type: ignore[assignment]
    from click.exceptions import Abort, ClickException, Exit, UsageError  # type: ignore[assignment]
    from click.globals import get_current_context  # type: ignore[assignment,no-redef]

__all__ = ["Abort", "ClickException", "Context", "Exit", "UsageError", "get_current_context"]
