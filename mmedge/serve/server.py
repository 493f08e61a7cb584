"""`mmedge serve`: the Pipeline behind NVIDIA Triton through PyTriton (HTTP, gRPC, metrics, dynamic batching).

PyTriton starts Triton's own server binary; each model instance's requests reach a Python-backend
stub process, which links libpython by name. On an interpreter that is not the system one (pyenv,
conda, a venv over them) the stub would load the system libpython and fail with
"'_thread.RLock' object has no attribute '_recursion_count'"; `stub_library_path` puts the running
interpreter's own library folder first on LD_LIBRARY_PATH, which the server and stub inherit.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmedge.bundle import Bundle
from mmedge.errors import BackendError, InputError, MissingDependencyError
from mmedge.serve.infer import PipelineModel, TensorInfo, served_inputs, served_outputs
from mmedge.serve.repository import bundle_max_batch

log = logging.getLogger(__name__)
STUB_ERROR = "_recursion_count"  # the symptom of a stub running the wrong libpython
HANDSHAKE_TIMEOUT = "Timeout occurred while waiting for config file"  # PyTriton's stub: a 1 s handshake
START_ATTEMPTS = 5  # measured here: 2 misses in 4 starts of 2 instances at load average 13 on 2 cores


@dataclass(frozen=True)
class ServeOptions:
    """Where and how `mmedge serve` runs."""

    backend: str = "onnxruntime"
    precision: str = "fp32"
    threads: int | None = None
    address: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int = 16
    max_queue_delay_us: int = 1000
    instances: int = 1
    model_name: str = "mmedge"

    def check(self, bundle: Bundle) -> None:
        """InputError for settings the bundle or Triton cannot take."""
        limit = bundle_max_batch(bundle)
        if not 1 <= self.max_batch <= limit:
            raise InputError(f"--max-batch must be 1..{limit} (the bundle's exported batch range), "
                             f"got {self.max_batch}")
        if self.instances < 1 or self.max_queue_delay_us < 0:
            raise InputError("--instances must be at least 1 and --max-queue-delay-us at least 0")
        ports = [self.http_port, self.grpc_port, self.metrics_port]
        if len(set(ports)) != 3 or not all(0 < p < 65536 for p in ports):
            raise InputError(f"the HTTP, gRPC and metrics ports must be three different ports in 1..65535, got {ports}")

    def batching(self) -> dict[str, Any]:
        """The batching settings, for reports."""
        return {"max_batch": self.max_batch, "max_queue_delay_us": self.max_queue_delay_us,
                "instances": self.instances, "backend": self.backend, "precision": self.precision}


def interpreter_libdir() -> str | None:
    """The folder of the running interpreter's shared libpython, or None when it has none (a static build)."""
    libdir, name = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
    if not libdir or not name or not (Path(libdir) / str(name)).exists() or not str(name).endswith(".so"):
        return None
    return str(libdir)


def stub_library_path(environ: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """Put the interpreter's libpython folder first on LD_LIBRARY_PATH (returns it; None when not needed)."""
    libdir = interpreter_libdir()
    current = environ.get("LD_LIBRARY_PATH", "")
    if libdir is None or current.split(":")[0] == libdir:
        return None
    environ["LD_LIBRARY_PATH"] = f"{libdir}:{current}" if current else libdir
    log.info("LD_LIBRARY_PATH now starts with %s so Triton's Python stub loads this interpreter's libpython", libdir)
    return libdir


def stub_failure_hint() -> str:
    """One line on the libpython pitfall, for a server that did not come up."""
    return (f"if Triton's log shows '{STUB_ERROR}', its Python-backend stub loaded another libpython than "
            f"{sys.executable}'s: start with LD_LIBRARY_PATH={interpreter_libdir() or '<its lib folder>'} first")


def start_failure(exc: BaseException) -> str:
    """One line for a server that did not come up: the libpython pitfall named, else the first line of the cause."""
    text = str(exc)
    if STUB_ERROR in text:
        return (f"Triton's Python-backend stub loaded another libpython than {sys.executable}'s (it failed with "
                f"'{STUB_ERROR}'); start with LD_LIBRARY_PATH={interpreter_libdir() or '<its lib folder>'} first")
    first = " ".join(text.split())[:300]
    return f"Triton did not start ({type(exc).__name__}: {first}); {stub_failure_hint()}"


def _pytriton() -> Any:
    try:
        import pytriton.triton
    except ImportError as exc:
        raise MissingDependencyError("nvidia-pytriton", "mmedge serve", "'mmedge[serve]'") from exc
    return pytriton


def _tensors(infos: list[TensorInfo]) -> list[Any]:
    from pytriton.model_config import Tensor

    return [Tensor(name=t.name, dtype=t.dtype, shape=t.shape, optional=t.optional) for t in infos]


def build_models(bundle: Bundle, options: ServeOptions) -> list[PipelineModel]:
    """One Pipeline-backed callable per model instance (each with its own sessions)."""
    from mmedge.runtime.pipeline import Pipeline

    models: list[PipelineModel] = []
    try:
        for _ in range(options.instances):
            pipe = Pipeline.from_bundle(bundle, backend=options.backend, precision=options.precision,
                                        threads=options.threads)
            models.append(PipelineModel(pipe))
    except BaseException:
        for m in models:
            m.pipeline.close()
        raise
    return models


def triton_config(options: ServeOptions) -> Any:
    """PyTriton's TritonConfig for the ports and address (metrics on, strict readiness)."""
    from pytriton.triton import TritonConfig

    return TritonConfig(http_address=options.address, http_port=options.http_port, grpc_address=options.address,
                        grpc_port=options.grpc_port, metrics_address=options.address,
                        metrics_port=options.metrics_port, allow_metrics=True, strict_readiness=True,
                        exit_on_error=True, exit_timeout_secs=10)


def start_triton(models: list[PipelineModel], n_labels: int, options: ServeOptions) -> Any:
    """A started PyTriton Triton with the model bound and ready (BackendError with the reason otherwise).

    PyTriton's stubs wait only 1 s for the handshake socket that the first instance's stub opens;
    with several instances on a loaded CPU one can miss it, so that one failure is retried (logged).
    """
    from pytriton.model_config import DynamicBatcher, ModelConfig
    from pytriton.triton import Triton

    config = ModelConfig(max_batch_size=options.max_batch,
                         batcher=DynamicBatcher(max_queue_delay_microseconds=options.max_queue_delay_us))
    attempt = 1
    while True:  # returns the started server or raises
        triton = Triton(config=triton_config(options))
        try:
            triton.bind(model_name=options.model_name, infer_func=list(models), inputs=_tensors(served_inputs()),
                        outputs=_tensors(served_outputs(n_labels)), config=config)
            triton.run()
            return triton
        except Exception as exc:  # PyTriton raises its own types when the server or a model does not come up
            triton.stop()
            if HANDSHAKE_TIMEOUT in str(exc) and attempt < START_ATTEMPTS:
                log.warning("Triton's Python stub missed PyTriton's 1 s handshake (busy CPU?); starting again "
                            "(attempt %d of %d)", attempt + 1, START_ATTEMPTS)
                attempt += 1
                continue
            raise BackendError(start_failure(exc)) from None


@contextmanager
def running(bundle: str | Path | Bundle, options: ServeOptions) -> Iterator[Any]:
    """Triton up with the bundle's model bound and ready (yields PyTriton's Triton); stopped and closed on exit."""
    _pytriton()
    loaded = Bundle.coerce(bundle)
    options.check(loaded)
    stub_library_path()
    models = build_models(loaded, options)
    triton = None
    try:
        triton = start_triton(models, len(loaded.labels), options)
        log.info("serving %s as '%s' on %s (HTTP %d, gRPC %d, metrics %d)", loaded.root, options.model_name,
                 options.address, options.http_port, options.grpc_port, options.metrics_port)
        yield triton
    finally:
        if triton is not None:
            triton.stop()
        for m in models:
            m.pipeline.close()


def serve(bundle: str | Path | Bundle, options: ServeOptions, on_ready: Callable[[], None] | None = None,
          stop: threading.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set), then shut down gracefully; BackendError if Triton dies.

    A SIGTERM during startup stops the server as soon as it is up. `on_ready` runs once the model is ready.
    """
    stop = stop or threading.Event()
    # PyTriton prints Triton's log to stdout: send it to stderr so stdout carries only what the caller prints.
    with redirect_stdout(sys.stderr), _stop_on_signals(stop), running(bundle, options) as triton:
        if on_ready is not None:
            on_ready()
        while not stop.wait(0.5):
            if not triton.is_alive():
                raise BackendError(f"the Triton server stopped unexpectedly; {stub_failure_hint()}")


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` while serving (only the main thread can take signals)."""
    installed: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            installed[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for number, handler in installed.items():
            signal.signal(number, handler)
