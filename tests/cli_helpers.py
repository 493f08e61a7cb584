"""Helpers for tests that drive the real CLI through typer's CliRunner."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from mmedge.cli.main import app

runner = CliRunner()


def invoke(*args: object) -> Any:
    """Run `mmedge ARGS…` in-process."""
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result: Any, pattern: str) -> None:
    """A non-zero exit with an `error:` line containing `pattern`, and no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1, result.output  # exactly one error line: the message never spans lines
    assert errors[0].startswith("error: ") and pattern in errors[0], result.output
    assert not result.output[result.output.index(errors[0]) + len(errors[0]):].strip(), result.output
