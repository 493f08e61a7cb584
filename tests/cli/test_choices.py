"""Help shows every choice and describes every option; the Literal choices match the registries behind them."""

from __future__ import annotations

import inspect
import typing
from typing import Any, Literal, get_args, get_origin

import pytest
import typer
from typer.testing import CliRunner

from mmedge.cli import choices
from mmedge.cli.clicompat import Context
from mmedge.cli.main import COMMAND_TABLE, app

GROUP = typer.main.get_command(app)
CTX = Context(GROUP)
COMMANDS = GROUP.list_commands(CTX)  # type: ignore[attr-defined]
# Options whose values form a closed set must be typed with one (a Literal), so --help lists them.
CLOSED = {"backend", "mode", "fusion", "preset", "target", "rounding", "method", "monitor", "hardware_compat"}


def literal_values(annotation: Any) -> tuple[str, ...] | None:
    """('a', 'b') for Literal['a', 'b'] or Optional of it; None for anything else."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    inner = [a for a in get_args(annotation) if a is not type(None)]
    if len(inner) == 1 and get_origin(inner[0]) is Literal:
        return get_args(inner[0])
    return None


def command(name: str) -> Any:
    return GROUP.get_command(CTX, name)  # type: ignore[attr-defined]


def hints(name: str) -> dict[str, Any]:
    return typing.get_type_hints(inspect.unwrap(command(name).callback))


def help_text(name: str) -> str:
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_registered_command_is_walked() -> None:
    assert len(COMMANDS) == len(COMMAND_TABLE) and {"train", "eval", "bench", "predict"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_and_argument_is_described(name: str) -> None:
    undescribed = [p.name for p in command(name).params if not p.hidden and not (p.help or "").strip()]
    assert not undescribed, f"mmedge {name}: give these a help= text: {undescribed}"


@pytest.mark.parametrize("name", COMMANDS)
def test_json_is_a_flag(name: str) -> None:
    flags = [p for p in command(name).params if "--json" in p.opts]
    assert len(flags) == 1 and flags[0].is_flag, f"mmedge {name} needs a `--json` flag"


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_choices_and_no_bool_placeholders(name: str) -> None:
    text = help_text(name)
    assert "<bool>" not in text  # a flag takes no value (`--json`, not `--json true`)
    for param, annotation in hints(name).items():
        values = literal_values(annotation)
        if values:
            assert f"<{'|'.join(values)}>" in text, f"mmedge {name} --help does not list --{param} choices"
    untyped = [p for p, a in hints(name).items() if p in CLOSED and literal_values(a) is None]
    assert not untyped, f"mmedge {name}: type these with a Literal from mmedge.cli.choices: {untyped}"


def test_bad_choice_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["quantize", "b", "--precision", "int4"])
    assert result.exit_code == 2 and "int4" in result.output and "Traceback" not in result.output


def test_choices_match_their_registries() -> None:
    from mmedge.bench.plan import MODES
    from mmedge.config import MONITORS
    from mmedge.models.fusion import FUSION_OPS
    from mmedge.models.presets import PRESETS
    from mmedge.quantize.int8 import METHODS, TARGETS
    from mmedge.quantize.weight_rounding import ROUNDINGS
    from mmedge.runtime.backends import available_backends
    from mmedge.runtime.backends.tensorrt.cache import HARDWARE_COMPAT
    from mmedge.train import peft_modes  # noqa: F401  (registers lp-ft, partial, lora)
    from mmedge.train.modes import MODES as TRAIN_MODES

    def same(literal: Any, names: Any) -> bool:
        return sorted(get_args(literal)) == sorted(names)

    assert same(choices.FusionName, FUSION_OPS.names())
    assert same(choices.TrainMode, TRAIN_MODES)
    assert same(choices.BenchMode, MODES)
    assert same(choices.CalibrationMethod, METHODS)
    assert same(choices.QuantTarget, TARGETS)
    assert same(choices.Rounding, ROUNDINGS)
    assert same(choices.HardwareCompat, HARDWARE_COMPAT)
    assert same(choices.Monitor, MONITORS)
    assert same(choices.BackendName, available_backends()) and same(choices.PresetName, PRESETS.names())
