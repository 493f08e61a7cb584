"""Optimization profiles: min/opt/max input shapes from bundle.json ranges and --shapes overrides.

`--shapes` items are `NAME:MIN/OPT/MAX`. NAME is either an input tensor (then each of MIN,
OPT, MAX is a full shape such as `1x16` or `8x128`) or a named dynamic axis used by the
inputs (`batch:1/8/32`, `seq:8/64/128`), which then applies to every input using that axis.
Tensor overrides win over axis overrides, which win over the bundle's ranges. DLA engines
need one fixed shape (min = opt = max in every dimension): `check_dla_profiles` says which
input and axis to pin, before anything is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from mmedge.errors import InputError
from mmedge.runtime.backends.tensorrt.cache import Profile, Shape
from mmedge.specs import TensorSpec

_ITEM = re.compile(r"^\s*([^:\s]+)\s*:\s*([0-9x]+)\s*/\s*([0-9x]+)\s*/\s*([0-9x]+)\s*$")


@dataclass(frozen=True)
class ShapeOverrides:
    """Parsed --shapes: per-axis (min, opt, max) values and per-tensor (min, opt, max) shapes."""

    axes: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    tensors: dict[str, Profile] = field(default_factory=dict)


def _split_items(items: Iterable[str]) -> list[str]:
    return [part for item in items for part in item.split(",") if part.strip()]


def _parse_shape(text: str, item: str) -> Shape:
    try:
        dims = tuple(int(d) for d in text.split("x"))
    except ValueError:
        raise InputError(f"--shapes {item!r}: '{text}' is not a shape like 8x128") from None
    if any(d < 1 for d in dims):
        raise InputError(f"--shapes {item!r}: dimensions must be >= 1, got {text}")
    return dims


def _check_order(item: str, lo: Shape, mid: Shape, hi: Shape) -> None:
    if not len(lo) == len(mid) == len(hi):
        raise InputError(f"--shapes {item!r}: min, opt and max must have the same rank")
    if any(not a <= b <= c for a, b, c in zip(lo, mid, hi, strict=True)):
        raise InputError(f"--shapes {item!r}: need min <= opt <= max in every dimension")


def parse_shape_overrides(items: Iterable[str], inputs: Iterable[TensorSpec]) -> ShapeOverrides:
    """Parse --shapes items against the inputs being built (InputError on bad syntax or names)."""
    specs = {s.name: s for s in inputs}
    axes_known = {d for s in specs.values() for d in s.shape if isinstance(d, str)}
    result = ShapeOverrides()
    for item in _split_items(items):
        match = _ITEM.match(item)
        if match is None:
            raise InputError(
                f"--shapes {item!r}: expected NAME:MIN/OPT/MAX, e.g. input_ids:1x8/4x64/8x128 or batch:1/8/32"
            )
        name = match.group(1)
        lo, mid, hi = (_parse_shape(match.group(i), item) for i in (2, 3, 4))
        _check_order(item, lo, mid, hi)
        if name in specs:
            _check_against_spec(item, specs[name], (lo, mid, hi))
            result.tensors[name] = (lo, mid, hi)
        elif name in axes_known:
            if len(lo) != 1:
                raise InputError(f"--shapes {item!r}: axis '{name}' takes single values, e.g. {name}:1/8/32")
            result.axes[name] = (lo[0], mid[0], hi[0])
        else:
            known = sorted(specs) + sorted(axes_known)
            raise InputError(
                f"--shapes {item!r}: '{name}' is neither an input nor a dynamic axis of the "
                f"components being built (known: {', '.join(known)})"
            )
    return result


def _check_against_spec(item: str, spec: TensorSpec, profile: Profile) -> None:
    if len(profile[0]) != len(spec.shape):
        raise InputError(
            f"--shapes {item!r}: input '{spec.name}' has rank {len(spec.shape)} "
            f"(shape {list(spec.shape)}), got rank {len(profile[0])}"
        )
    for i, dim in enumerate(spec.shape):
        if isinstance(dim, int) and any(p[i] != dim for p in profile):
            raise InputError(f"--shapes {item!r}: dimension {i} of '{spec.name}' is fixed at {dim}")


def input_profile(spec: TensorSpec, overrides: ShapeOverrides) -> Profile | None:
    """(min, opt, max) of one input, or None when its shape is fully static."""
    if spec.name in overrides.tensors:
        return overrides.tensors[spec.name]
    if all(isinstance(d, int) for d in spec.shape):
        return None
    columns: list[tuple[int, int, int]] = []
    for dim in spec.shape:
        if isinstance(dim, int):
            columns.append((dim, dim, dim))
            continue
        rng = overrides.axes.get(dim) or spec.ranges.get(dim)
        if rng is None:
            raise InputError(
                f"input '{spec.name}' axis '{dim}' has no min/opt/max range in bundle.json; "
                f"pass one with --shapes {dim}:MIN/OPT/MAX"
            )
        columns.append(rng)
    lo, mid, hi = (tuple(c[i] for c in columns) for i in range(3))
    return lo, mid, hi


def component_profiles(inputs: Iterable[TensorSpec], overrides: ShapeOverrides) -> dict[str, Profile]:
    """Profiles of every dynamic (or overridden) input of a component."""
    profiles: dict[str, Profile] = {}
    for spec in inputs:
        profile = input_profile(spec, overrides)
        if profile is not None:
            profiles[spec.name] = profile
    return profiles


def check_dla_profiles(component: str, inputs: Iterable[TensorSpec], profiles: dict[str, Profile]) -> None:
    """InputError naming each input axis to pin (and the --shapes that pins it) unless min = opt = max."""
    specs = {s.name: s for s in inputs}
    problems: list[str] = []
    fixes: list[str] = []
    for name, (lo, mid, hi) in sorted(profiles.items()):
        spec = specs.get(name)
        for axis, (a, b, c) in enumerate(zip(lo, mid, hi, strict=True)):
            if a == b == c:
                continue
            dim = spec.shape[axis] if spec is not None and axis < len(spec.shape) else None
            label = f"axis {axis} ('{dim}')" if isinstance(dim, str) else f"axis {axis}"
            problems.append(f"'{name}' {label} ranges {a}/{b}/{c}")
            opt_shape = "x".join(map(str, mid))
            fix = f"{dim}:{b}/{b}/{b}" if isinstance(dim, str) else f"{name}:{opt_shape}/{opt_shape}/{opt_shape}"
            if fix not in fixes:
                fixes.append(fix)
    if problems:
        raise InputError(
            f"--dla-core: DLA engines need one fixed shape (min = opt = max), but '{component}' has "
            f"{'; '.join(problems)}; pin them with --shapes {','.join(fixes)} (one engine per shape)"
        )
