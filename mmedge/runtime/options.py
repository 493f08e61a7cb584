"""Runner options as one typed value: the settings every backend understands plus a per-backend section.

Common settings (threads, device) are accepted by every backend; a backend that does not use
one ignores it and says so at debug level. Backend-specific settings live in that backend's own
dataclass (e.g. `TensorRTOptions(cuda_graph=True)`); an unknown one is a clear error.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mmedge.errors import BackendError, InputError

log = logging.getLogger(__name__)
S = TypeVar("S")

COMMON: tuple[str, ...] = ("threads", "device")
AUTO = "auto"
ThreadsLike = int | str | None  # a count, "auto", or None (the runtime's default)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's or taskset's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def auto_threads(encoders: int, cores: int | None = None) -> int:
    """Intra-op threads per session for `threads="auto"`: the usable cores shared among the encoders.

    Encoders may run concurrently (one session each), so each gets an equal share and none waits for
    a core: oversubscribed intra-op pools spin against each other on small graphs.
    """
    return max(1, (cores or usable_cores()) // max(1, encoders))


def parse_threads(text: str | None) -> int | str | None:
    """A --threads value: an integer >= 1 or 'auto' (InputError otherwise); None stays None."""
    if text is None or text.strip().lower() == AUTO:
        return None if text is None else AUTO
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"--threads must be an integer >= 1 or 'auto', got {text!r}")
    return value


def resolve_threads(threads: ThreadsLike, encoders: int, concurrent: bool = True) -> int | None:
    """An explicit thread count for `threads` ('auto' → `auto_threads`); BackendError for anything else.

    `concurrent=False` (encoders explicitly one after another): each session gets every usable core,
    since no two sessions ever run at once.
    """
    if threads == AUTO:
        sharing = encoders if concurrent else 1
        chosen = auto_threads(sharing)
        log.info("threads=auto: %d intra-op thread(s) per session (%d usable cores, %d encoders%s)",
                 chosen, usable_cores(), encoders, "" if concurrent else ", sequential: not shared")
        return chosen
    if threads is None or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        return threads  # type: ignore[return-value]
    raise BackendError(f"threads must be an integer >= 1 or 'auto', got {threads!r}")


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
