"""Helpers shared by CLI commands: error handling, logging set-up, JSON output, consoles (docs/cli.md)."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from mmedge.cli.clicompat import Abort, Exit, get_current_context
from mmedge.cli.failures import fail, json_requested
from mmedge.cli.output import WholeCellConsole
from mmedge.cli.progress import progress_bars
from mmedge.cli.requirements import check_needs
from mmedge.data import conversions

console = WholeCellConsole()  # stdout: results (tables never truncated, see mmedge.cli.output)
err_console = WholeCellConsole(stderr=True)  # stderr: progress, notes, errors
F = TypeVar("F", bound=Callable[..., Any])
JSON_HELP = "Print one JSON document on stdout (errors: one JSON line on stderr)."


def handle_errors(func: F) -> F:
    """Check the command's optional needs, show progress and conversions, turn any failure into one line.

    Exit codes and formats: docs/cli.md (MmedgeError → its code, missing extra 3, bug 4, Ctrl-C 130).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = get_current_context(silent=True)
        command = ctx.info_name if ctx is not None else func.__name__
        json_mode = json_requested(ctx)
        counts: Counter[tuple[str, str]] = Counter()
        try:
            try:
                check_needs(command or "", ctx.params if ctx is not None else kwargs)
                with conversions.collecting() as counts, progress_bars(err_console, enabled=not json_mode):
                    return func(*args, **kwargs)
            finally:
                for line in conversions.summary(counts):
                    err_console.print(f"note: {line}", highlight=False, markup=False, soft_wrap=True)
        except (Exit, Abort, BrokenPipeError):
            raise  # click exits with the code / handles a closed pipe (`mmedge … | head`)
        except (Exception, KeyboardInterrupt) as exc:
            raise fail(exc, ctx, command, json_mode) from None

    return wrapper  # type: ignore[return-value]


def setup_logging(verbose: int) -> None:
    """Configure the library's logging for the CLI (-v info, -vv debug)."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def print_json(data: Any) -> None:
    """Print machine-readable JSON on stdout (no rich markup)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
