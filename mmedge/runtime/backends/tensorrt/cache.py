"""Engine cache: the key, the JSON sidecar next to each `.plan`, and the load-time checks.

A `.plan` is byte-for-byte what TensorRT serialized (fixed decision 6). Everything about it
lives in `<component>.<precision>.<key12>.json` and in `bundle.json["engines"]`:

    engines[component][precision][key12] =
        {plan, sidecar, sha256, tensorrt, gpu, compute_capability, built_at}

The key is the sha256 of a canonical JSON of the environment (TensorRT version and CUDA
major, GPU, compute capability, SM count, memory, board model, DLA cores, CUDA driver, L4T),
the component, precision, optimization profiles, build flags (DLA core included) and the
source ONNX sha256. Schema 2 added the device facts that tell Jetson modules apart; a
schema-1 sidecar still reads, never matches a new key, and asks for a rebuild at load time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmedge import serialize
from mmedge.bundle import Bundle
from mmedge.bundle_checks import confine
from mmedge.errors import EngineError
from mmedge.io import write_json
from mmedge.precision import artifact_key
from mmedge.runtime.backends.tensorrt.env import TrtEnvironment, short_version, version_tuple

KEY_SCHEMA = 2  # 2: + SM count, memory, board model, DLA cores, TensorRT CUDA major; - binding runtime
HARDWARE_COMPAT = ("none", "ampere+", "same-cc")
Shape = tuple[int, ...]
Profile = tuple[Shape, Shape, Shape]  # (min, opt, max)


@dataclass(frozen=True)
class BuildFlags:
    """Builder settings that change the engine (all part of the cache key)."""

    workspace_gib: float = 4.0
    dla_core: int | None = None
    gpu_fallback: bool = False
    version_compatible: bool = False
    hardware_compat: str = "none"  # "none" | "ampere+" | "same-cc"
    strongly_typed: bool = True  # always: precision comes from the ONNX (fixed decision 1)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildFlags:
        """Parse from a sidecar's key fields (missing ones take their defaults; EngineError if malformed)."""
        return serialize.from_json(cls, data, where="flags", error=EngineError)


def profiles_to_json(profiles: dict[str, Profile]) -> dict[str, dict[str, list[int]]]:
    """Optimization profiles as {input: {min, opt, max}} lists (sorted by input name)."""
    return {
        name: {"min": list(p[0]), "opt": list(p[1]), "max": list(p[2])}
        for name, p in sorted(profiles.items())
    }


def engine_key_fields(
    env: TrtEnvironment,
    *,
    component: str,
    precision: str,
    onnx_sha256: str,
    profiles: dict[str, Profile],
    flags: BuildFlags,
) -> dict[str, Any]:
    """Everything an engine depends on, as a JSON-able dict (the input of `engine_key`)."""
    return {
        "schema": KEY_SCHEMA,
        "environment": env.to_json(),
        "component": component,
        "precision": precision,
        "onnx_sha256": onnx_sha256,
        "profiles": profiles_to_json(profiles),
        "flags": serialize.to_json(flags),
    }


def engine_key(fields: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of `fields`."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def engine_stem(component: str, precision: str, key: str) -> str:
    """File stem of an engine: `<component>.<precision>.<key[:12]>`."""
    return f"{component}.{precision}.{key[:12]}"


@dataclass
class EngineSidecar:
    """The JSON next to a `.plan`: all key fields plus provenance of the build."""

    key: str
    fields: dict[str, Any]
    plan: str  # path relative to the bundle root
    plan_sha256: str
    plan_bytes: int
    built_at: str
    build_seconds: float
    builder_log: str | None = None
    io: list[dict[str, Any]] = field(default_factory=list)
    schema: int = KEY_SCHEMA

    @property
    def component(self) -> str:
        """Component the engine runs."""
        return str(self.fields["component"])

    @property
    def precision(self) -> str:
        """Precision of the source ONNX."""
        return str(self.fields["precision"])

    @property
    def environment(self) -> TrtEnvironment:
        """The machine the engine was built on."""
        return TrtEnvironment.from_json(self.fields["environment"])

    @property
    def flags(self) -> BuildFlags:
        """The build flags."""
        return BuildFlags.from_json(self.fields.get("flags", {}))

    def to_json(self) -> dict[str, Any]:
        """Serialize the sidecar."""
        return serialize.to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EngineSidecar:
        """Parse a sidecar, its environment and flags included (EngineError naming the key if malformed)."""
        if isinstance(data, dict) and "schema" not in data:
            data = {**data, "schema": 1}  # sidecars before the field existed are schema 1
        sidecar = serialize.from_json(cls, data, error=EngineError)
        missing = sorted({"component", "precision", "environment"} - set(sidecar.fields))
        if missing:
            raise EngineError(f"fields: required key(s) {missing} missing")
        _ = sidecar.environment, sidecar.flags  # malformed ones fail here, not at load time
        return sidecar

    def write(self, path: Path) -> None:
        """Write atomically."""
        write_json(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> EngineSidecar:
        """Read a sidecar; EngineError if missing or malformed."""
        try:
            return cls.from_json(json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise EngineError(
                f"engine sidecar missing: {path}; rebuild the engine with mmedge build"
            ) from exc
        except (OSError, ValueError, EngineError) as exc:
            raise EngineError(
                f"engine sidecar {path} is unreadable ({type(exc).__name__}: {exc}); "
                "rebuild the engine with mmedge build"
            ) from exc


def rebuild_command(bundle_root: Path | str, sidecar: EngineSidecar) -> str:
    """The `mmedge build` command line that rebuilds this engine on the current machine."""
    flags = sidecar.flags
    parts = [
        "mmedge build",
        str(bundle_root),
        "--precision",
        sidecar.precision,
        "--components",
        sidecar.component,
    ]
    if flags.dla_core is not None:
        parts += ["--dla-core", str(flags.dla_core)] + (["--gpu-fallback"] if flags.gpu_fallback else [])
    if flags.version_compatible:
        parts.append("--version-compatible")
    if flags.hardware_compat != "none":
        parts += ["--hardware-compat", flags.hardware_compat]
    return " ".join(parts)


def _same_device(built: TrtEnvironment, env: TrtEnvironment) -> bool:
    """Same GPU model: name, SM count, board model and DLA cores (Orin modules differ only there)."""
    fields = ("gpu", "sm_count", "board", "dla_cores")
    return all(getattr(built, name) == getattr(env, name) for name in fields)


def compatibility_problem(sidecar: EngineSidecar, env: TrtEnvironment) -> str | None:
    """Why the engine cannot run here ("schema", "tensorrt" or "gpu"), or None."""
    if sidecar.schema < KEY_SCHEMA:
        return "schema"
    built, flags = sidecar.environment, sidecar.flags
    if flags.version_compatible:
        if version_tuple(env.tensorrt) < version_tuple(built.tensorrt):
            return "tensorrt"
    elif env.tensorrt != built.tensorrt:
        return "tensorrt"
    if env.tensorrt_cuda != built.tensorrt_cuda:
        return "tensorrt"
    if flags.hardware_compat == "ampere+":
        if version_tuple(env.compute_capability) < (8, 0):
            return "gpu"
        return None
    if env.compute_capability != built.compute_capability:
        return "gpu"
    if flags.hardware_compat == "none" and not _same_device(built, env):
        return "gpu"
    return None


def _describe(env: TrtEnvironment, other: TrtEnvironment) -> str:
    cuda = f" (cu{env.tensorrt_cuda})" if env.tensorrt_cuda and env.tensorrt_cuda != other.tensorrt_cuda else ""
    device = [env.sm]
    if env.sm_count is not None:
        device.append(f"{env.sm_count} SMs")
    if env.board:
        device.append(env.board)
    if env.dla_cores:
        device.append(f"{env.dla_cores} DLA")
    return f"TensorRT {short_version(env.tensorrt, other.tensorrt)}{cuda} on {env.gpu} ({', '.join(device)})"


def mismatch_message(sidecar: EngineSidecar, env: TrtEnvironment, bundle_root: Path | str) -> str:
    """'engine X was built for TensorRT A on G (sm_.., N SMs, board); this is …: rebuild with: …'."""
    rebuild = rebuild_command(bundle_root, sidecar)
    if sidecar.schema < KEY_SCHEMA:
        return (
            f"engine {sidecar.plan} has a cache schema {sidecar.schema} sidecar (now {KEY_SCHEMA}), which lacks the "
            f"device facts that tell GPUs apart (SM count, board, DLA cores); rebuild with: {rebuild}"
        )
    built = sidecar.environment
    return (
        f"engine {sidecar.plan} was built for {_describe(built, env)}; this is {_describe(env, built)}: "
        f"rebuild with: {rebuild}"
    )


def check_compatible(sidecar: EngineSidecar, env: TrtEnvironment, bundle_root: Path | str) -> None:
    """Raise EngineError (with the rebuild command) unless the engine can run in `env`."""
    if compatibility_problem(sidecar, env) is not None:
        raise EngineError(mismatch_message(sidecar, env, bundle_root))


def read_plan(bundle: Bundle | Path, sidecar: EngineSidecar) -> bytes:
    """The plan's bytes (path confined to the bundle, like `Bundle.path`), checked against the sidecar's sha256."""
    if isinstance(bundle, Bundle):
        bundle_root, path = bundle.root, bundle.path(sidecar.plan)
    else:
        bundle_root, path = Path(bundle), confine(Path(bundle), sidecar.plan, "sidecar plan")
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise EngineError(
            f"engine file missing: {path}; rebuild with: {rebuild_command(bundle_root, sidecar)}"
        ) from exc
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sidecar.plan_sha256:
        raise EngineError(
            f"engine file altered: {path} has sha256 {actual[:12]}…, its sidecar expects "
            f"{sidecar.plan_sha256[:12]}…; rebuild with: {rebuild_command(bundle_root, sidecar)}"
        )
    return payload


def record_engine(bundle: Bundle, sidecar: EngineSidecar, sidecar_file: str) -> None:
    """Add (or refresh) the engine's entry in `bundle.engines` (the caller saves bundle.json)."""
    built = sidecar.environment
    by_precision = bundle.engines.setdefault(sidecar.component, {}).setdefault(sidecar.precision, {})
    by_precision[sidecar.key[:12]] = {
        "plan": sidecar.plan,
        "sidecar": sidecar_file,
        "sha256": sidecar.plan_sha256,
        "tensorrt": built.tensorrt,
        "gpu": built.gpu,
        "compute_capability": built.compute_capability,
        "built_at": sidecar.built_at,
    }


def select_engine(bundle: Bundle, component: str, precision: str, env: TrtEnvironment) -> EngineSidecar:
    """The newest engine of `component` at `precision` that can run in `env`.

    EngineError when there is none: no engine built yet, or only engines for another
    TensorRT/GPU (then the message says which, and the rebuild command).
    """
    precision = artifact_key(precision, "tensorrt")
    records: dict[str, Any] = bundle.engines.get(component, {}).get(precision, {})
    if not records:
        raise EngineError(
            f"bundle {bundle.root} has no {precision} TensorRT engine for '{component}'; build it "
            f"with: mmedge build {bundle.root} --precision {precision} --components {component}"
        )
    root = Path(bundle.root)
    sidecars = [EngineSidecar.read(confine(root, str(rec["sidecar"]), "engine sidecar")) for rec in records.values()]
    sidecars.sort(key=lambda s: s.built_at, reverse=True)
    for sidecar in sidecars:
        if sidecar.component != component or sidecar.precision != precision:
            raise EngineError(
                f"engine sidecar for {sidecar.plan} says {sidecar.component}/{sidecar.precision}, "
                f"bundle.json lists it under {component}/{precision}; rebuild with mmedge build --force"
            )
        if compatibility_problem(sidecar, env) is None:
            return sidecar
    raise EngineError(mismatch_message(sidecars[0], env, bundle.root))
