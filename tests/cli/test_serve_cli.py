"""`mmedge serve` through the real CLI: settings errors are one line and start nothing (the live server:
tests/serve/test_client.py runs the command in a subprocess)."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import assert_one_line_error, invoke


def test_bad_settings_are_one_line_errors(tiny_bundle_pristine: Path) -> None:
    assert_one_line_error(invoke("serve", tiny_bundle_pristine, "--max-batch", "500"), "--max-batch must be 1..64")
    assert_one_line_error(invoke("serve", tiny_bundle_pristine, "--http-port", "9000", "--grpc-port", "9000"),
                          "three different ports")
    assert_one_line_error(invoke("serve", tiny_bundle_pristine, "--precision", "int8"), "no int8 artifact")


def test_missing_bundle(tmp_path: Path) -> None:
    assert_one_line_error(invoke("serve", tmp_path / "missing"), "missing")


def test_help_lists_the_batching_options() -> None:
    result = invoke("serve", "--help")
    assert result.exit_code == 0
    for option in ("--http-port", "--grpc-port", "--metrics-port", "--max-batch", "--max-queue-delay-us",
                   "--instances", "--backend", "--precision"):
        assert option in result.output
