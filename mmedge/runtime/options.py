"""Runner options as one typed value: the settings every backend understands plus a per-backend section.

Common settings (threads, device) are accepted by every backend; a backend that does not use
one ignores it and says so at debug level. Backend-specific settings live in that backend's own
dataclass (e.g. `TensorRTOptions(cuda_graph=True)`); an unknown one is a clear error.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mmedge.errors import BackendError

log = logging.getLogger(__name__)
S = TypeVar("S")

COMMON: tuple[str, ...] = ("threads", "device")


@dataclass(frozen=True)
class RunnerOptions:
    """Settings for building runners: `threads` and `device` for every backend, `backend` for one."""

    threads: int | None = None  # intra-op CPU threads (CPU runtimes)
    device: int = 0  # GPU index (GPU runtimes)
    backend: dict[str, Any] = field(default_factory=dict)  # the chosen backend's own settings

    def __post_init__(self) -> None:
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise BackendError(f"threads must be an integer >= 1, got {self.threads!r}")
        if not isinstance(self.device, int) or self.device < 0:
            raise BackendError(f"device must be a GPU index >= 0, got {self.device!r}")

    @classmethod
    def make(cls, options: RunnerOptions | None = None, **settings: Any) -> RunnerOptions:
        """Options from keyword settings: common ones by name, anything else into the backend section."""
        base = options or cls()
        if "device_id" in settings:  # the ONNX Runtime spelling
            settings.setdefault("device", settings.pop("device_id"))
        given = {k: settings.pop(k) for k in COMMON if k in settings}
        common = {k: v for k, v in given.items() if v is not None}
        return dataclasses.replace(base, **common, backend={**base.backend, **settings})

    def section(self, backend: str, kind: type[S], uses: tuple[str, ...]) -> S:
        """The backend section parsed into `kind`; BackendError for unknown keys; debug-log unused common ones."""
        known = {f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
        unknown = sorted(set(self.backend) - known)
        if unknown:
            choices = ", ".join(sorted(known | set(COMMON))) or "none"
            raise BackendError(f"{backend} backend: unknown option(s) {unknown} (known: {choices})")
        defaults = RunnerOptions()
        for name in COMMON:
            if name not in uses and getattr(self, name) != getattr(defaults, name):
                log.debug("%s backend: option '%s' does not apply here; ignored", backend, name)
        return kind(**self.backend)


@dataclass(frozen=True)
class NoOptions:
    """A backend without settings of its own."""
