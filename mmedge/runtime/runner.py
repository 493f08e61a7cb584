"""The Runner contract: one per component per backend, modelled on Polygraphy's base runner.

The base class owns the lifecycle (`activate()` / `deactivate()`, context-manager use, a warning
when a runner is garbage-collected while active) and the input checks (names, dtypes, ranks,
fixed dimensions, ranges of dynamic axes), so a backend adds only `_activate`, `_deactivate`
and `_infer`. A runner is inactive until activated: `infer` on an inactive runner is an error.
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from mmedge.errors import BackendError
from mmedge.specs import TensorSpec

log = logging.getLogger(__name__)

Limits = dict[str, tuple[tuple[int, ...], tuple[int, ...]]]  # input -> (min shape, max shape)


class ArrayLike(Protocol):
    """What a feed value must offer to be checked: a numpy array or a device tensor."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype: ...


class Runner(ABC):
    """Runs one component (encoder or fusion head) on one backend; owns its sessions/streams/buffers."""

    def __init__(self, name: str, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
        self.name, self.inputs, self.outputs = name, list(inputs), list(outputs)
        self.limits: Limits = {}  # filled by backends whose compiled artifact bounds input shapes
        self._active = False

    # ---- lifecycle ------------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        """True between activate() and deactivate()."""
        return self._active

    def activate(self) -> None:
        """Create sessions, streams and buffers (idempotent)."""
        if self._active:
            return
        self._activate()
        self._active = True

    def deactivate(self) -> None:
        """Release everything `activate` created (idempotent; the runner can be activated again)."""
        if not self._active:
            return
        try:
            self._deactivate()
        finally:
            self._active = False

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def __del__(self) -> None:
        if getattr(self, "_active", False):
            warnings.warn(f"{self.name}: runner garbage-collected while active; call deactivate() "
                          "(or use it as a context manager)", ResourceWarning, stacklevel=2)

    # ---- inference ------------------------------------------------------------------------
    def infer(self, feed: Mapping[str, np.ndarray], check_inputs: bool = True) -> dict[str, np.ndarray]:
        """Run on a feed of named arrays; return named outputs (host numpy arrays)."""
        self.require_active()
        if check_inputs:
            self.check_feed(feed)
        return self._infer(feed)

    def require_active(self) -> None:
        """BackendError unless the runner is active."""
        if not self._active:
            raise BackendError(f"{self.name}: infer() on an inactive runner; call activate() first "
                               "(or use the runner/Pipeline as a context manager)")

    def check_feed(self, feed: Mapping[str, ArrayLike]) -> None:
        """BackendError unless names, dtypes, ranks, fixed dims and dynamic ranges match the inputs."""
        check_feed(self.inputs, feed, self.name, self.limits, self.range_hint)

    def range_hint(self, name: str) -> str:
        """What to do about an input shape outside `limits` (a backend may name its rebuild command)."""
        return "split the batch or shorten the input"

    @property
    def max_batch(self) -> int | None:
        """Largest batch the runner accepts (None: unbounded)."""
        highs = [hi[0] for _lo, hi in self.limits.values() if hi]
        return min(highs) if highs else None

    # ---- what a backend implements --------------------------------------------------------
    @abstractmethod
    def _activate(self) -> None:
        """Backend-specific set-up."""

    @abstractmethod
    def _deactivate(self) -> None:
        """Backend-specific teardown."""

    @abstractmethod
    def _infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Backend-specific inference on a checked feed."""


def check_feed(specs: list[TensorSpec], feed: Mapping[str, ArrayLike], where: str, limits: Limits | None = None,
               hint: Callable[[str], str] | None = None) -> None:
    """Validate a feed against input specs: names, dtypes, ranks, fixed dims, and `limits` when given."""
    expected = {s.name for s in specs}
    if set(feed) != expected:
        raise BackendError(f"{where}: inputs {sorted(feed)} do not match the graph's {sorted(expected)}")
    for spec in specs:
        value = feed[spec.name]
        shape = tuple(int(d) for d in value.shape)
        if np.dtype(value.dtype) != np.dtype(spec.dtype) or len(shape) != len(spec.shape):
            raise BackendError(f"{where}: input '{spec.name}' expects {spec.dtype} rank {len(spec.shape)}, "
                               f"got {np.dtype(value.dtype)} shape {shape}")
        for axis, (want, got) in enumerate(zip(spec.shape, shape, strict=True)):
            if isinstance(want, int) and want >= 0 and want != got:
                raise BackendError(f"{where}: input '{spec.name}' dimension {axis} must be {want}, got {got} "
                                   f"(shape {shape})")
        if limits and spec.name in limits:
            lo, hi = limits[spec.name]
            if any(not a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
                fix = f"; {hint(spec.name)}" if hint else ""
                raise BackendError(f"{where}: input '{spec.name}' shape {shape} is outside the supported range "
                                   f"{lo}..{hi}{fix}")
