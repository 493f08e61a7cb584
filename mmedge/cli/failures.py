"""Every failure of a command → one line (or one JSON line in --json mode) and its exit code; never a traceback.

Exit codes (docs/cli.md): 0 ok, 1 runtime failure (incl. an OSError such as a full disk), 2 bad input/usage
(incl. a missing/unreadable path), 3 missing optional dependency, 4 internal error, 130 interrupted.
`-vv` adds the traceback on stderr.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass
from typing import Any

from typer.core import TyperGroup

from mmedge.cli.clicompat import Abort, ClickException, Context, Exit, UsageError
from mmedge.errors import (
    EXIT_FAILURE,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    MissingDependencyError,
    MmedgeError,
    missing_dependency,
)

# OSErrors about the path the user gave: bad input (exit 2); any other OSError (disk full, I/O error) exits 1
BAD_PATH_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


@dataclass(frozen=True)
class Failure:
    """What the user sees: exit code, error type and the one-line message (+ fields for JSON)."""

    exit_code: int
    type: str
    message: str
    extra: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The JSON error document: {"error": {type, message, exit_code, …}}."""
        return {"error": {"type": self.type, "message": self.message, "exit_code": self.exit_code, **self.extra}}


def one_line(text: str) -> str:
    """Collapse a message onto one line (a library message may carry newlines)."""
    return " ".join(str(text).split())


def describe(exc: BaseException, command: str | None) -> Failure:
    """The Failure for `exc` raised while running `mmedge COMMAND`."""
    if isinstance(exc, ImportError) and not isinstance(exc, MmedgeError):
        converted = missing_dependency(exc, "this command")
        if converted is not None:
            exc = converted
    if isinstance(exc, MissingDependencyError):
        if exc.command is None and command:
            exc.command = command
        return Failure(exc.exit_code, type(exc).__name__, one_line(exc.message),
                       {"extra": exc.extra, "install": exc.install})
    if isinstance(exc, MmedgeError):
        return Failure(exc.exit_code, type(exc).__name__, one_line(str(exc)), {})
    if isinstance(exc, KeyboardInterrupt):
        return Failure(EXIT_INTERRUPTED, "KeyboardInterrupt", "interrupted", {})
    if isinstance(exc, UsageError):
        message = one_line(exc.format_message()).replace("Value error, ", "")  # typer's validation prefix
        hint = f" (see: mmedge {command} --help)" if command else " (see: mmedge --help)"
        return Failure(EXIT_INPUT, "UsageError", message + hint, {})
    if isinstance(exc, ClickException):
        return Failure(exc.exit_code, type(exc).__name__, one_line(exc.format_message()), {})
    if isinstance(exc, OSError):  # the file system said no: the user's path (2) or the machine (1), not a bug
        code = EXIT_INPUT if isinstance(exc, BAD_PATH_ERRORS) else EXIT_FAILURE
        text = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename is not None else str(exc)
        return Failure(code, type(exc).__name__, one_line(text), {})
    detail = one_line(f"{type(exc).__name__}: {exc}")
    return Failure(EXIT_INTERNAL, "InternalError",
                   f"internal error: {detail} — rerun with -vv for the traceback", {})


def emit(failure: Failure, json_mode: bool, exc: BaseException | None = None, verbose: int = 0) -> None:
    """Write the failure to stderr: `error: …` or one JSON line; the traceback only with -vv."""
    stream = sys.stderr
    if json_mode:
        stream.write(json.dumps(failure.to_json()) + "\n")
    else:
        stream.write(f"error: {failure.message}\n")
    if verbose >= 2 and exc is not None:
        stream.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    stream.flush()


def verbosity(ctx: Context | None) -> int:
    """The -v count given to the root command (0 when unknown)."""
    if ctx is None:
        return 0
    return int(ctx.find_root().params.get("verbose") or 0)


def json_requested(ctx: Context | None) -> bool:
    """Whether the running command's `--json` flag is set."""
    if ctx is None:
        return False
    for param in ctx.command.params:
        if "--json" in getattr(param, "opts", ()) and getattr(param, "is_flag", False):
            return bool(ctx.params.get(param.name or ""))
    return False


def fail(exc: BaseException, ctx: Context | None, command: str | None, json_mode: bool) -> Exit:
    """Report `exc` once and return the click Exit carrying its code (raise it)."""
    failure = describe(exc, command)
    emit(failure, json_mode, exc, verbosity(ctx))
    return Exit(failure.exit_code)


class MmedgeGroup(TyperGroup):
    """The app's group: whatever escapes a command still ends as one line and a documented exit code."""

    def get_command(self, ctx: Context, cmd_name: str) -> Any:
        """The command, its flags shown without a misleading `<bool>` value in --help (`--json`, not `--json true`)."""
        plain_flags(self)
        return plain_flags(super().get_command(ctx, cmd_name))

    def format_help(self, ctx: Context, formatter: Any) -> None:
        """`mmedge --help`, with its flags shown plainly too."""
        plain_flags(self)
        super().format_help(ctx, formatter)

    def invoke(self, ctx: Context) -> Any:
        """Run the sub-command; convert any escaping exception (usage errors in --json mode too)."""
        args = [*getattr(ctx, "_protected_args", []), *ctx.args]
        json_mode = "--json" in args
        try:
            return super().invoke(ctx)
        except (Exit, Abort, BrokenPipeError):
            raise  # click exits with the code / handles a closed pipe (`mmedge … | head`)
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise  # click shows the help
            raise fail(exc, ctx, ctx.invoked_subcommand, json_mode) from None
        except (Exception, KeyboardInterrupt) as exc:
            raise fail(exc, ctx, ctx.invoked_subcommand, json_mode) from None


def _plain(param: Any) -> Any:
    if param is not None and getattr(param, "is_flag", False) and not getattr(param, "count", False) \
            and param.metavar is None:
        param.metavar = ""  # typer's rich help would print `<bool>`, as if the flag took a value
    return param


def plain_flags(command: Any) -> Any:
    """Show `command`'s flags (and --help) without a `<bool>` placeholder; returns it."""
    if command is None or getattr(command, "_mmedge_plain_flags", False):
        return command
    for param in getattr(command, "params", []):
        _plain(param)
    original = command.get_help_option
    command.get_help_option = lambda ctx: _plain(original(ctx))
    command._mmedge_plain_flags = True
    return command


def register_broken(app: Any, module: str, exc: BaseException) -> None:
    """Register `module`'s command as one that reports why it could not be loaded (exit 4)."""
    detail = one_line(f"{type(exc).__name__}: {exc}")

    def broken() -> None:
        raise RuntimeError(f"the command module mmedge.cli.{module} could not be loaded ({detail})")

    broken.__doc__ = f"(unavailable: mmedge.cli.{module} failed to load)"
    app.command(module.replace("_", "-"), hidden=False)(broken)
