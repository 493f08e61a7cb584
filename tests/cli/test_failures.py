"""Every failure is one line (or one JSON line with --json) and a documented exit code; never a traceback."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import mmedge.migrate
from mmedge.cli.common import handle_errors
from mmedge.cli.failures import MmedgeGroup, register_broken
from mmedge.cli.main import app
from mmedge.errors import BundleError, InputError, MissingDependencyError

runner = CliRunner()


def run(*args: object) -> typer.testing.Result:
    return runner.invoke(app, [str(a) for a in args])


def raising(exc: BaseException) -> Callable[..., None]:
    def fail(*args: object, **kwargs: object) -> None:
        raise exc

    return fail


@pytest.mark.parametrize(("exc", "code", "message"), [
    (BundleError("bundle file altered: x.onnx"), 1, "error: bundle file altered: x.onnx"),
    (InputError("bad input\nspanning two lines"), 2, "error: bad input spanning two lines"),
    (MissingDependencyError("onnx", "reading graphs"), 3,
     "error: mmedge migrate: reading graphs needs onnx, which is not installed: pip install 'mmedge[train]'"),
    (ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"), 3,
     "error: mmedge migrate: this command needs matplotlib, which is not installed: pip install 'mmedge[train]'"),
    (ZeroDivisionError("boom"), 4,
     "error: internal error: ZeroDivisionError: boom — rerun with -vv for the traceback"),
    (ModuleNotFoundError("No module named 'mmedge.gone'", name="mmedge.gone"), 4, "error: internal error: "),
    (KeyboardInterrupt(), 130, "error: interrupted"),
])
def test_exit_code_and_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exc: BaseException, code: int,
                                message: str) -> None:
    monkeypatch.setattr(mmedge.migrate, "migrate_bundle", raising(exc))
    result = run("migrate", tmp_path)
    assert result.exit_code == code, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), result.stderr


def test_traceback_only_with_vv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mmedge.migrate, "migrate_bundle", raising(ZeroDivisionError("boom")))
    assert "Traceback" not in run("-v", "migrate", tmp_path).stderr
    result = run("-vv", "migrate", tmp_path)
    assert result.exit_code == 4
    assert result.stderr.startswith("error: internal error: ZeroDivisionError: boom")
    assert "Traceback (most recent call last)" in result.stderr and "ZeroDivisionError: boom" in result.stderr


@pytest.mark.parametrize(("exc", "code", "fields"), [
    (InputError("no such bundle"), 2, {"type": "InputError", "message": "no such bundle"}),
    (MissingDependencyError("torch", "training"), 3,
     {"type": "MissingDependencyError", "extra": "train", "install": "pip install 'mmedge[train]'"}),
    (RuntimeError("bug"), 4, {"type": "InternalError"}),
])
def test_json_mode_error_is_one_json_line_on_stderr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    exc: BaseException, code: int, fields: dict[str, str]) -> None:
    monkeypatch.setattr(mmedge.migrate, "migrate_bundle", raising(exc))
    result = run("migrate", tmp_path, "--json")
    assert result.exit_code == code and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    error = json.loads(lines[0])["error"]
    assert error["exit_code"] == code and fields.items() <= error.items(), error


def test_usage_errors_exit_2_and_are_json_in_json_mode(tmp_path: Path) -> None:
    plain = run("predict", tmp_path, "--backend", "tensorflow")
    assert plain.exit_code == 2 and plain.stdout == ""
    assert plain.stderr.startswith("error: Invalid value for '--backend': 'tensorflow' is not one of 'onnxruntime'")
    assert plain.stderr.endswith("(see: mmedge predict --help)\n") and plain.stderr.count("\n") == 1
    unknown = run("frobnicate")
    assert unknown.exit_code == 2 and unknown.stderr == "error: No such command 'frobnicate'. (see: mmedge --help)\n"
    result = run("predict", tmp_path, "--backend", "tensorflow", "--json")
    assert result.exit_code == 2 and result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["type"] == "UsageError" and "tensorflow" in error["message"]


def test_json_flag_takes_no_value(tmp_path: Path) -> None:
    result = run("migrate", tmp_path, "--json", "true")
    assert result.exit_code == 2 and json.loads(result.stderr)["error"]["type"] == "UsageError"


def test_group_catches_what_a_command_without_handle_errors_raises() -> None:
    bare = typer.Typer(cls=MmedgeGroup)

    @bare.command()
    def crash() -> None:
        """A command that forgot @handle_errors."""
        raise RuntimeError("disk on fire")

    @bare.command()
    def fine() -> None:
        """Another command."""

    result = runner.invoke(bare, ["crash"])
    assert result.exit_code == 4 and "Traceback" not in result.output
    assert result.stderr == "error: internal error: RuntimeError: disk on fire — rerun with -vv for the traceback\n"


@pytest.mark.parametrize(("exc", "code", "line"), [
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/no"), 2, "No such file or directory: /no"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), 2, "Permission denied: /root/x"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp"), 2, "Is a directory: /tmp"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), 2, "Not a directory: /f/x"),
    (OSError(errno.ENOSPC, "No space left on device", "/out/b.onnx"), 1, "No space left on device: /out/b.onnx"),
    (OSError("disk on fire"), 1, "disk on fire"),
])
def test_an_os_error_is_one_line_not_an_internal_error(exc: OSError, code: int, line: str) -> None:
    bare = typer.Typer(cls=MmedgeGroup)

    @bare.command()
    def crash() -> None:
        """A command whose file system says no."""
        raise exc

    @bare.command()
    def fine() -> None:
        """Another command."""

    result = runner.invoke(bare, ["crash"])
    assert (result.exit_code, result.stderr) == (code, f"error: {line}\n")


def test_a_broken_command_module_is_reported_not_fatal() -> None:
    broken = typer.Typer(cls=MmedgeGroup)
    register_broken(broken, "export_widgets", ImportError("cannot import name 'X'"))

    @broken.command()
    def other() -> None:
        """Still works."""

    assert runner.invoke(broken, ["other"]).exit_code == 0
    result = runner.invoke(broken, ["export-widgets"])
    assert result.exit_code == 4 and "mmedge.cli.export_widgets could not be loaded" in result.stderr


def test_handle_errors_keeps_exit_codes_of_typer_exit() -> None:
    bare = typer.Typer(cls=MmedgeGroup)

    @bare.command()
    @handle_errors
    def done(code: int = 0) -> None:
        """Exit with CODE."""
        raise typer.Exit(code)

    @bare.command()
    def other() -> None:
        """Another command."""

    assert runner.invoke(bare, ["done", "--code", "5"]).exit_code == 5
