"""Bundles with plans for the TensorRT stand-in, as `mmedge build` on the stand-in machine would write them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import standin_trt

from mmedge.bundle import ENGINE_DIR, Bundle


def plant_plans(bundle_dir: Path, precision: str = "fp32") -> list[Path]:
    """Write what `mmedge build` on this (stand-in) machine would write: a plan + sidecar per component.

    The plans are left unrecorded, as after a build killed before saving bundle.json; `mmedge build`
    then finds them in its cache and records them.
    """
    from mmedge.runtime.backends.tensorrt.build import BuildOptions
    from mmedge.runtime.backends.tensorrt.cache import (
        EngineSidecar,
        engine_key,
        engine_key_fields,
        engine_stem,
        profiles_to_json,
    )
    from mmedge.runtime.backends.tensorrt.env import probe_environment
    from mmedge.runtime.backends.tensorrt.profiles import ShapeOverrides, component_profiles

    bundle, env, written = Bundle.load(bundle_dir), probe_environment(), []
    (bundle_dir / ENGINE_DIR).mkdir(exist_ok=True)
    for name, comp in bundle.components.items():
        art = comp.artifacts[precision]
        profiles = component_profiles(comp.inputs, ShapeOverrides())
        fields = engine_key_fields(env, component=name, precision=precision, onnx_sha256=art.sha256,
                                   profiles=profiles, flags=BuildOptions(precision=precision).flags())
        key = engine_key(fields)
        stem = f"{ENGINE_DIR}/{engine_stem(name, precision, key)}"
        payload = standin_trt.make_plan(bundle.path(art.file).read_bytes(), profiles_to_json(profiles))
        (bundle_dir / f"{stem}.plan").write_bytes(payload)
        EngineSidecar(key=key, fields=fields, plan=f"{stem}.plan", plan_sha256=hashlib.sha256(payload).hexdigest(),
                      plan_bytes=len(payload), built_at="2026-01-01T00:00:00+00:00",
                      build_seconds=0.0).write(bundle_dir / f"{stem}.json")
        written.append(bundle_dir / f"{stem}.plan")
    return written
