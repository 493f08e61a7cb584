"""What each command needs from the optional extras, checked before any work starts.

`eval --report` without matplotlib fails at once (naming `pip install 'mmedge[train]'`), not after the
whole evaluation. The check only looks the packages up (no import); library code still imports them
through `mmedge.errors.require`, and the app's group turns any other ImportError of a known optional
package into the same one-line message.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmedge.errors import MissingDependencyError

Params = Mapping[str, Any]


def always(params: Params) -> bool:
    """The need applies to every run of the command."""
    return True


def _listed(params: Params, key: str, value: str) -> bool:
    """Whether `value` is one of the comma-separated entries (or the value) of option `key`."""
    raw = params.get(key)
    if raw is None:
        return False
    text = raw.value if hasattr(raw, "value") else str(raw)
    return value in [v.strip() for v in text.split(",")]


def _digits(params: Params) -> bool:
    return str(params.get("data") or "digits") == "digits"


def _bundle_digits(params: Params) -> bool:
    """Whether the data resolves to digits: --data digits, or no --data and the bundle's recorded data is digits."""
    if params.get("data"):
        return str(params["data"]) == "digits"
    try:  # only a peek at bundle.json's provenance: loading and checking the bundle is the command's job
        recorded = json.loads((Path(params["bundle"]) / "bundle.json").read_text()).get("provenance", {}).get("data")
    except (KeyError, TypeError, AttributeError, OSError, ValueError):
        return False  # an unreadable bundle: let the command report it
    return recorded in (None, "", "digits")


@dataclass(frozen=True)
class Need:
    """One optional module a command needs, what for, and when (a predicate over the command's params)."""

    module: str
    purpose: str
    when: Callable[[Params], bool] = always


DIGITS = Need("sklearn", "the built-in digits dataset (--data digits)", _digits)
TORCH_BACKEND = Need("torch", "--backend torch", lambda p: _listed(p, "backend", "torch"))

# command name (as typed) → its needs; commands not listed need only the runtime install.
COMMAND_NEEDS: dict[str, tuple[Need, ...]] = {
    "train": (Need("torch", "training"), DIGITS),
    "export": (Need("torch", "exporting a trained model"), Need("onnx", "exporting to ONNX")),
    "demo": (Need("torch", "training"), Need("onnx", "exporting to ONNX"), Need("sklearn", "the digits dataset")),
    "quantize": (Need("onnx", "quantizing ONNX graphs"),),
    "inspect": (Need("onnx", "reading ONNX graphs"),),
    # preprocessing + ONNX Runtime only; the built-in samples (--data, else the bundle's data) need scikit-learn
    "export-inputs": (Need("sklearn", "the built-in digits dataset (--data, else the bundle's data)", _bundle_digits),),
    "predict": (TORCH_BACKEND,),
    "eval": (TORCH_BACKEND, DIGITS, Need("matplotlib", "--report (plots)", lambda p: bool(p.get("report_dir")))),
    "bench": (
        Need("torch", "--backends torch", lambda p: _listed(p, "backends", "torch")),
        Need("matplotlib", "--report (plots)", lambda p: bool(p.get("report"))),
        Need("sklearn", "the built-in digits dataset (--data digits)",
             lambda p: p.get("suite") is None and _digits(p)),
    ),
}


def installed(module: str) -> bool:
    """Whether `module` can be found (without importing it)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_needs(command: str, params: Params) -> None:
    """MissingDependencyError for the first optional module `mmedge COMMAND` needs here and lacks."""
    for need in COMMAND_NEEDS.get(command, ()):
        if need.when(params) and not installed(need.module):
            raise MissingDependencyError(need.module, need.purpose, command=command)
