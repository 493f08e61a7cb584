"""The one exception hierarchy of mmedge: every user-facing failure is an MmedgeError."""

from __future__ import annotations


class MmedgeError(Exception):
    """Base class: the message says what is wrong, expected vs actual, and how to fix it."""

    exit_code = 1


class InputError(MmedgeError):
    """Bad user input: a missing/unreadable file, a non-image, an empty audio clip, ..."""

    exit_code = 2


class ManifestError(InputError):
    """A malformed manifest file or row."""


class ConfigError(MmedgeError):
    """An invalid model/train/export configuration."""


class BundleError(MmedgeError):
    """A bundle that is missing, malformed, or altered since export."""


class MissingDependencyError(MmedgeError):
    """An optional package is needed: the message names the pip command that installs it."""

    def __init__(self, package: str, purpose: str, pip_spec: str | None = None) -> None:
        spec = pip_spec or package
        super().__init__(f"{purpose} needs the '{package}' package, which is not installed: pip install {spec}")
        self.package = package


class BackendError(MmedgeError):
    """A backend/provider/precision that was asked for is not available (never silently replaced)."""


class ExportError(MmedgeError):
    """Export or validation of an ONNX component failed (e.g. parity outside its bound)."""


class EngineError(MmedgeError):
    """A TensorRT engine that cannot be built or loaded (version/GPU mismatch, parser errors)."""


def require(module: str, purpose: str, pip_spec: str | None = None) -> object:
    """Import `module` or raise MissingDependencyError naming the pip package."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.split(".")[0], purpose, pip_spec) from exc
