"""`mmedge build`: TensorRT engines from a bundle's ONNX files, cached by a key of everything
they depend on.

TensorRT >= 10 Python API only: strongly typed networks (precision comes from the ONNX,
fixed decision 1, so no FP16/INT8 builder flags), `build_serialized_network`, memory-pool
limits, one optimization profile from the bundle's min/opt/max ranges (or --shapes), an
optional timing cache, DLA, version- and hardware-compatible engines. The `.plan` written is
exactly what TensorRT serialized; its metadata goes to a JSON sidecar and bundle.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmedge import serialize
from mmedge.bundle import ENGINE_DIR, Bundle
from mmedge.errors import BundleError, EngineError, InputError
from mmedge.io import sha256_file, write_bytes
from mmedge.precision import TRT_INT8, artifact_key
from mmedge.progress import track
from mmedge.runtime.backends.tensorrt.cache import (
    HARDWARE_COMPAT,
    BuildFlags,
    EngineSidecar,
    Profile,
    engine_key,
    engine_key_fields,
    engine_stem,
    record_engine,
)
from mmedge.runtime.backends.tensorrt.env import TrtEnvironment, check_build_target, probe_environment, require_tensorrt
from mmedge.runtime.backends.tensorrt.profiles import check_dla_profiles, component_profiles, parse_shape_overrides
from mmedge.transaction import Transaction, update

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    """Everything `mmedge build` takes besides the bundle path."""

    precision: str = "fp16"  # "int8" builds from the TensorRT-flavoured "int8-trt" ONNX
    components: tuple[str, ...] | None = None  # None: every component that has `precision`
    shapes: tuple[str, ...] = ()  # NAME:MIN/OPT/MAX items (see profiles.py)
    workspace_gib: float = 4.0
    timing_cache: Path | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    version_compatible: bool = False
    hardware_compat: str = "none"  # "none" | "ampere+" | "same-cc"
    force: bool = False
    verbose_log: bool = False

    def flags(self) -> BuildFlags:
        """The part of the options that changes the engine (and so the cache key)."""
        return BuildFlags(
            workspace_gib=self.workspace_gib,
            dla_core=self.dla_core,
            gpu_fallback=self.gpu_fallback,
            version_compatible=self.version_compatible,
            hardware_compat=self.hardware_compat,
        )

    def validate(self) -> None:
        """InputError for contradictory or out-of-range options."""
        if self.workspace_gib <= 0:
            raise InputError(f"--workspace must be > 0 GiB, got {self.workspace_gib}")
        if self.hardware_compat not in HARDWARE_COMPAT:
            raise InputError(
                f"--hardware-compat must be one of {', '.join(HARDWARE_COMPAT)}, got {self.hardware_compat!r}"
            )
        if self.gpu_fallback and self.dla_core is None:
            raise InputError("--gpu-fallback only applies to DLA builds: add --dla-core N")
        if self.dla_core is not None and self.dla_core < 0:
            raise InputError(f"--dla-core must be >= 0, got {self.dla_core}")
        if self.dla_core is not None and self.hardware_compat != "none":
            raise InputError(
                "--hardware-compat cannot be combined with --dla-core (DLA engines are device-specific)"
            )


@dataclass
class BuildResult:
    """One engine: where it is, its key, and whether it came from the cache."""

    component: str
    precision: str
    plan: Path
    sidecar: Path
    key: str
    cached: bool
    seconds: float
    plan_bytes: int
    builder_log: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON for `mmedge build --json`."""
        return serialize.to_json(self)  # type: ignore[no-any-return]


@dataclass
class BuildReport:
    """What `build_bundle` did, for the CLI to render."""

    bundle: Path
    precision: str
    environment: TrtEnvironment
    results: list[BuildResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # component -> reason

    def to_json(self) -> dict[str, Any]:
        """JSON for `mmedge build --json`."""
        return {
            "bundle": str(self.bundle),
            "precision": self.precision,
            "environment": self.environment.to_json(),
            "engines": [r.to_json() for r in self.results],
            "skipped": self.skipped,
        }


def require_artifact(bundle: Bundle, component: str, precision: str) -> None:
    """BundleError naming the fix when `component` has no `precision` artifact to build from."""
    comp = bundle.components.get(component)
    if (
        precision == TRT_INT8
        and comp is not None
        and TRT_INT8 not in comp.artifacts
        and "int8" in comp.artifacts
    ):
        raise BundleError(
            f"'{component}' has only the CPU-flavoured int8 ONNX, which TensorRT cannot build (asymmetric/"
            f"dynamic int8); create the TensorRT one with: mmedge quantize {bundle.root} --precision int8 "
            "--target tensorrt"
        )
    if precision == TRT_INT8 and comp is not None and TRT_INT8 not in comp.artifacts:
        raise BundleError(
            f"bundle {bundle.root} has no TensorRT int8 artifact for '{component}'; create it with: "
            f"mmedge quantize {bundle.root} --precision int8 --target tensorrt"
        )
    bundle.artifact(component, precision)  # BundleError naming the fix if absent


def select_components(
    bundle: Bundle, precision: str, requested: Iterable[str] | None
) -> tuple[list[str], dict[str, str]]:
    """Components to build, and those skipped (with why) when none were named explicitly."""
    if requested is not None:
        names = list(requested)
        for name in names:
            require_artifact(bundle, name, precision)
        return names, {}
    chosen = [n for n, c in bundle.components.items() if precision in c.artifacts]
    skipped = {n: f"no {precision} artifact" for n in bundle.components if n not in chosen}
    if not chosen:
        hint = "--precision int8 --target tensorrt" if precision == TRT_INT8 else f"--precision {precision}"
        raise InputError(
            f"bundle {bundle.root} has no {precision} artifact for any component; create them "
            f"with: mmedge quantize {bundle.root} {hint}"
        )
    return chosen, skipped


def build_bundle(
    bundle_dir: str | Path, options: BuildOptions, env: TrtEnvironment | None = None
) -> BuildReport:
    """Build (or reuse from the cache) the engines of a bundle and record them in bundle.json.

    `env` defaults to the live machine (needs TensorRT and a GPU); a given `env` lets cached
    engines be resolved without TensorRT, which tests use.
    """
    options.validate()
    options = dataclasses.replace(options, precision=artifact_key(options.precision, "tensorrt"))
    with update(bundle_dir) as txn:  # writer lock + bundle.json re-read; the commit records the engines
        return _build_all(txn, options, env)


def _build_all(txn: Transaction, options: BuildOptions, env: TrtEnvironment | None) -> BuildReport:
    bundle = txn.bundle
    names, skipped = select_components(bundle, options.precision, options.components)
    inputs = [spec for n in names for spec in bundle.components[n].inputs]
    overrides = parse_shape_overrides(options.shapes, inputs)
    profiles = {n: component_profiles(bundle.components[n].inputs, overrides) for n in names}
    if options.dla_core is not None:  # before TensorRT: DLA needs min = opt = max everywhere
        for n in names:
            check_dla_profiles(n, bundle.components[n].inputs, profiles[n])
    if env is None:
        env = probe_environment()
    check_build_target(env, options.hardware_compat, options.dla_core)
    report = BuildReport(bundle=bundle.root, precision=options.precision, environment=env, skipped=skipped)
    for name in track(names, "building TensorRT engines"):  # a bar with ETA in the CLI
        report.results.append(_build_or_reuse(txn, name, options, profiles[name], env))
    return report


def _build_or_reuse(
    txn: Transaction, component: str, options: BuildOptions, profiles: dict[str, Profile], env: TrtEnvironment
) -> BuildResult:
    bundle = txn.bundle
    artifact = bundle.artifact(component, options.precision)
    fields = engine_key_fields(
        env,
        component=component,
        precision=options.precision,
        onnx_sha256=artifact.sha256,
        profiles=profiles,
        flags=options.flags(),
    )
    key = engine_key(fields)
    stem = engine_stem(component, options.precision, key)
    sidecar_rel, log_rel = (f"{ENGINE_DIR}/{stem}{ext}" for ext in (".json", ".log"))
    sidecar_path = bundle.path(sidecar_rel)
    if not options.force and _cache_valid(bundle, sidecar_path, key):
        sidecar = EngineSidecar.read(sidecar_path)
        plan_path = bundle.path(sidecar.plan)
        log.info("%s %s: reusing cached engine %s", component, options.precision, sidecar.plan)
        record_engine(bundle, sidecar, sidecar_rel)
        old_log = bundle.path(sidecar.builder_log) if sidecar.builder_log else None
        return BuildResult(component, options.precision, plan_path, sidecar_path, key, cached=True, seconds=0.0,
                           plan_bytes=sidecar.plan_bytes, builder_log=old_log)
    require_tensorrt()
    start = time.perf_counter()
    payload, io = build_plan(
        bundle.artifact_path(component, options.precision), profiles, options, bundle.path(log_rel), component
    )
    seconds = time.perf_counter() - start
    with txn.new_file(f"{ENGINE_DIR}/{stem}", ".plan") as new:  # a fresh name: a live plan is never overwritten
        new.tmp.write_bytes(payload)
    plan_rel, plan_path = new.name, bundle.path(new.name)
    sidecar = EngineSidecar(
        key=key,
        fields=fields,
        plan=plan_rel,
        plan_sha256=hashlib.sha256(payload).hexdigest(),
        plan_bytes=len(payload),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(seconds, 3),
        builder_log=log_rel,
        io=io,
    )
    sidecar.write(sidecar_path)
    record_engine(bundle, sidecar, sidecar_rel)
    log.info(
        "%s %s: built %s (%d bytes) in %.1fs", component, options.precision, plan_rel, len(payload), seconds
    )
    return BuildResult(component, options.precision, plan_path, sidecar_path, key, cached=False, seconds=seconds,
                       plan_bytes=len(payload), builder_log=bundle.path(log_rel))


def _cache_valid(bundle: Bundle, sidecar_path: Path, key: str) -> bool:
    if not sidecar_path.is_file():
        return False
    try:
        sidecar = EngineSidecar.read(sidecar_path)
        plan_path = bundle.path(sidecar.plan)
    except (EngineError, BundleError) as exc:
        log.warning("ignoring cached engine: %s", exc)
        return False
    if not plan_path.is_file():
        return False
    if sidecar.key != key or sha256_file(plan_path) != sidecar.plan_sha256:
        log.warning("cached engine %s does not match its sidecar; rebuilding", plan_path)
        return False
    return True


def build_plan(
    onnx_path: Path, profiles: dict[str, Profile], options: BuildOptions, log_path: Path, component: str
) -> tuple[bytes, list[dict[str, Any]]]:
    """Parse the ONNX into a strongly typed network and return (serialized plan, I/O description)."""
    import tensorrt as trt

    from mmedge.runtime.backends.tensorrt.trt_logger import CapturingLogger

    logger = CapturingLogger(log_path, verbose=options.verbose_log)
    try:
        builder = trt.Builder(logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, logger)
        _parse_onnx(parser, onnx_path, component, log_path)
        io = _network_io(network, profiles, component)
        config = builder.create_builder_config()
        _configure(builder, config, profiles, options)
        cache = _load_timing_cache(config, options.timing_cache)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineError(
                f"TensorRT could not build '{component}' from {onnx_path.name}: "
                f"{logger.last_errors() or 'no error message'} (full log: {log_path})"
            )
        payload = bytes(serialized)
        if cache is not None and options.timing_cache is not None:
            write_bytes(options.timing_cache, bytes(config.get_timing_cache().serialize()))
        return payload, io
    finally:
        logger.close()


def _parse_onnx(parser: trt.OnnxParser, onnx_path: Path, component: str, log_path: Path) -> None:
    if parser.parse_from_file(str(onnx_path)):
        return
    problems = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        # node_name()/node_operator() exist from TensorRT 10 (IParserError::nodeName/nodeOperator)
        node = (err.node_name() if hasattr(err, "node_name") else "") or f"#{err.node()}"
        op = err.node_operator() if hasattr(err, "node_operator") else "?"
        problems.append(f"node {node} ({op}): {err.desc()}")
    raise EngineError(
        f"TensorRT's ONNX parser rejected {onnx_path.name} ('{component}'): "
        + "; ".join(problems)
        + f" (full log: {log_path})"
    )


def _network_io(
    network: trt.INetworkDefinition, profiles: dict[str, Profile], component: str
) -> list[dict[str, Any]]:
    io: list[dict[str, Any]] = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = [int(tensor.shape[j]) for j in range(len(tensor.shape))]
        if -1 in dims and tensor.name not in profiles:
            raise EngineError(
                f"'{component}' input '{tensor.name}' has dynamic shape {dims} but no min/opt/max "
                f"range; add ranges to bundle.json or pass --shapes {tensor.name}:MIN/OPT/MAX"
            )
        if tensor.name in profiles and len(profiles[tensor.name][0]) != len(dims):
            raise EngineError(
                f"'{component}' input '{tensor.name}' has rank {len(dims)} in the ONNX, "
                f"but its profile has rank {len(profiles[tensor.name][0])}"
            )
        io.append({"name": tensor.name, "mode": "input", "dtype": str(tensor.dtype), "shape": dims})
    for i in range(network.num_outputs):
        tensor = network.get_output(i)
        dims = [int(tensor.shape[j]) for j in range(len(tensor.shape))]
        io.append({"name": tensor.name, "mode": "output", "dtype": str(tensor.dtype), "shape": dims})
    return io


def _configure(
    builder: trt.Builder, config: trt.IBuilderConfig, profiles: dict[str, Profile], options: BuildOptions
) -> None:
    import tensorrt as trt

    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gib * (1 << 30)))
    if profiles:
        profile = builder.create_optimization_profile()
        for name, (lo, mid, hi) in profiles.items():
            profile.set_shape(name, trt.Dims(list(lo)), trt.Dims(list(mid)), trt.Dims(list(hi)))
        if config.add_optimization_profile(profile) < 0:
            raise EngineError(f"TensorRT rejected the optimization profile {profiles}")
    if options.dla_core is not None:
        if options.dla_core >= builder.num_DLA_cores:
            raise EngineError(
                f"--dla-core {options.dla_core}: this device has {builder.num_DLA_cores} DLA core(s)"
            )
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        if options.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if options.hardware_compat != "none":
        level = {"ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}[options.hardware_compat]
        try:
            config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, level)
        except AttributeError:
            raise EngineError(
                f"--hardware-compat {options.hardware_compat} needs a newer TensorRT "
                f"(this is {trt.__version__})"
            ) from None


def _load_timing_cache(config: trt.IBuilderConfig, path: Path | None) -> trt.ITimingCache | None:
    if path is None:
        return None
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):
        raise EngineError(
            f"timing cache {path} does not match this TensorRT/GPU; delete it or pass another file"
        )
    log.info("timing cache: %s (%d bytes loaded)", path, len(data))
    return cache
