"""The "tensorrt" backend: one engine, one execution context and one CUDA stream per component.

TensorRT 10 name-based I/O only (`num_io_tensors`, `get_tensor_name/mode/dtype`,
`set_input_shape`, `set_tensor_address`, `execute_async_v3`). Pinned host and device buffers
are sized once from the optimization profile's maximum and bound once; output shapes come
from `context.get_tensor_shape` per call. `enqueue()`/`synchronize()` expose the async steps
(the GPU pipeline runs encoders on their own streams with them) and every call is timed with
a `CudaEventTimer` (marks at H2D start, after H2D, after compute, after D2H) plus a `CpuTimer`
for the host's enqueue time. Optional CUDA-graph replay of the compute for a fixed input shape.
Nothing touches CUDA until `activate()` (or `__enter__`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmedge.bundle import Bundle
from mmedge.errors import BackendError, EngineError
from mmedge.runtime.backends.tensorrt.cache import (
    EngineSidecar,
    check_compatible,
    read_plan,
    rebuild_command,
)
from mmedge.runtime.backends.tensorrt.env import TrtEnvironment, probe_environment, require_tensorrt
from mmedge.runtime.backends.tensorrt.io_types import TIMING_MARKS, DeviceTensor, IOBuffer, StageTimes, dims_tuple
from mmedge.runtime.cuda.contract import CudaApi
from mmedge.runtime.cuda.timer import CudaEventTimer
from mmedge.runtime.runner import Runner
from mmedge.runtime.timing import CpuTimer
from mmedge.specs import TensorSpec

if TYPE_CHECKING:
    import tensorrt as trt


log = logging.getLogger(__name__)


class TensorRTRunner(Runner):
    """Runner for one component's TensorRT engine (see module docstring)."""

    def __init__(
        self,
        bundle: Bundle | Path,
        sidecar: EngineSidecar,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        cuda: CudaApi,
        cuda_graph: bool = False,
        env: TrtEnvironment | None = None,
        device: int = 0,
    ) -> None:
        super().__init__(f"tensorrt:{sidecar.component}:{sidecar.precision}", inputs, outputs)
        self.cuda, self.sidecar, self.cuda_graph, self.device = cuda, sidecar, cuda_graph, device
        self.last_timings: StageTimes | None = None
        self._bundle = bundle  # plan paths are confined to it (a Bundle) before anything is read
        self._root = bundle.root if isinstance(bundle, Bundle) else Path(bundle)
        self._env = env
        self._logger: Any = None
        self._runtime: trt.Runtime | None = None
        self._engine: trt.ICudaEngine | None = None
        self._context: trt.IExecutionContext | None = None
        self._stream: int | None = None
        self._timer: CudaEventTimer | None = None
        self._buffers: dict[str, IOBuffer] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._out_shapes: dict[str, tuple[int, ...]] = {}
        self._graph: int | None = None
        self._pending = self._fetched = False
        self._enqueue_ms = 0.0
        self.lock = threading.RLock()  # held from enqueue() to synchronize() by every caller

    # ---- Runner contract ------------------------------------------------------------------
    def range_hint(self, name: str) -> str:
        """The engine's optimization profile bounds the shapes: how to rebuild it wider."""
        return (f"that is the engine's optimization profile; rebuild with a wider one: "
                f"{rebuild_command(self._root, self.sidecar)} --shapes {name}:MIN/OPT/MAX")

    def _infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run synchronously on host arrays; return host outputs (the base checked the feed)."""
        with self.lock:  # one call at a time: the context, stream and buffers are this runner's
            self.enqueue(feed, check_inputs=False)
            return self.synchronize()

    def _activate(self) -> None:
        """Deserialize the engine (after checking its sha256) and allocate stream, events, buffers."""
        require_tensorrt()
        import tensorrt as trt

        from mmedge.runtime.backends.tensorrt.trt_logger import CapturingLogger

        # Before deserializing: the sidecar must match this TensorRT/GPU and the plan its sha256.
        check_compatible(self.sidecar, self._env or probe_environment(self.cuda), self._root)
        payload = read_plan(self._bundle, self.sidecar)
        try:
            self._logger = CapturingLogger(None)
            self._runtime = trt.Runtime(self._logger)
            flags = self.sidecar.flags
            if flags.version_compatible:
                self._runtime.engine_host_code_allowed = True
            if flags.dla_core is not None:
                self._runtime.DLA_core = flags.dla_core
            self._engine = self._runtime.deserialize_cuda_engine(payload)
            if self._engine is None:
                raise EngineError(
                    f"TensorRT could not deserialize {self.sidecar.plan}: {self._logger.last_errors()}; "
                    f"rebuild with: {rebuild_command(self._root, self.sidecar)}"
                )
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise EngineError(
                    f"could not create an execution context for {self.sidecar.plan} "
                    f"(out of GPU memory?): {self._logger.last_errors()}"
                )
            self.cuda.set_device(self.device)
            self._stream = self.cuda.stream_create()
            self._timer = CudaEventTimer(self.cuda, self._stream, TIMING_MARKS)
            self._allocate(self._engine, self._context)
        except BaseException:
            self._deactivate()
            raise
        log.info("%s: engine %s loaded", self.name, self.sidecar.plan)

    def _allocate(self, engine: trt.ICudaEngine, context: trt.IExecutionContext) -> None:
        import tensorrt as trt

        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        ins = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if n not in ins]
        self._check_names(ins, outs)
        for name in ins:
            lo = hi = dims_tuple(engine.get_tensor_shape(name))
            if -1 in lo:  # dynamic: the range of optimization profile 0 (the only one mmedge builds)
                lo, _opt, hi = (dims_tuple(d) for d in engine.get_tensor_profile_shape(name, 0))
            self.limits[name] = (lo, hi)
            if not context.set_input_shape(name, hi):
                raise EngineError(f"{self.name}: TensorRT rejected max shape {hi} for input '{name}'")
        shapes = {n: self.limits[n][1] for n in ins}
        shapes.update({n: dims_tuple(context.get_tensor_shape(n)) for n in outs})
        for name in names:
            if -1 in shapes[name]:
                raise EngineError(
                    f"{self.name}: output '{name}' has a data-dependent shape {shapes[name]}, "
                    "which this runner does not support"
                )
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            self._check_dtype(name, dtype)
            self._buffers[name] = IOBuffer(name, dtype, shapes[name], self.cuda)
            if not context.set_tensor_address(name, self._buffers[name].device):
                raise EngineError(f"{self.name}: TensorRT rejected the device address of '{name}'")

    def _check_names(self, ins: list[str], outs: list[str]) -> None:
        want_in, want_out = {s.name for s in self.inputs}, {s.name for s in self.outputs}
        if set(ins) != want_in or set(outs) != want_out:
            raise EngineError(
                f"{self.name}: engine I/O {sorted(ins)} -> {sorted(outs)} does not match bundle.json "
                f"{sorted(want_in)} -> {sorted(want_out)}; rebuild with: "
                f"{rebuild_command(self._root, self.sidecar)}"
            )

    def _check_dtype(self, name: str, dtype: np.dtype) -> None:
        spec = next(s for s in [*self.inputs, *self.outputs] if s.name == name)
        if np.dtype(spec.dtype) != dtype:
            raise EngineError(
                f"{self.name}: engine tensor '{name}' is {dtype}, bundle.json says {spec.dtype}"
            )

    def _deactivate(self) -> None:
        """Release in a fixed order: graph, context, engine, runtime, then buffers, events, stream."""
        if self._pending and self._stream is not None:
            self._quietly("synchronize", self.cuda.stream_synchronize, self._stream)
        self._pending = False
        if self._graph is not None:
            self._quietly("destroy graph", self.cuda.graph_destroy, self._graph)
            self._graph = None
        self._context = None
        self._engine = None
        self._runtime = None
        self._logger = None
        for buf in self._buffers.values():
            self._quietly("free", self.cuda.free, buf.device)
            self._quietly("free pinned", self.cuda.host_free, buf.host)
        self._buffers.clear()
        if self._timer is not None:
            self._quietly("destroy events", self._timer.close)
            self._timer = None
        if self._stream is not None:
            self._quietly("destroy stream", self.cuda.stream_destroy, self._stream)
            self._stream = None
        self._shapes, self._out_shapes, self.limits = {}, {}, {}

    def _quietly(self, what: str, func: Any, *args: Any) -> None:
        try:
            func(*args)
        except BackendError as exc:  # teardown goes on; the first failure is logged, not hidden
            log.warning("%s: %s failed during close: %s", self.name, what, exc)

    # ---- async execution ------------------------------------------------------------------
    @property
    def stream(self) -> int:
        """This runner's CUDA stream (valid after open())."""
        if self._stream is None:
            raise BackendError(f"{self.name}: not open")
        return self._stream

    @property
    def timer(self) -> CudaEventTimer:
        """The CUDA-event timer of this runner's calls (valid after open())."""
        if self._timer is None:
            raise BackendError(f"{self.name}: not open")
        return self._timer

    @property
    def start_event(self) -> int:
        """Event recorded before this call's H2D copies."""
        return self.timer.event("start")

    @property
    def compute_done_event(self) -> int:
        """Event recorded right after the engine's work (outputs valid on the device)."""
        return self.timer.event("compute_done")

    @property
    def end_event(self) -> int:
        """Event recorded after this call's D2H copies."""
        return self.timer.event("end")

    def device_output(self, name: str) -> DeviceTensor:
        """An output of the last enqueue() as a device tensor (valid after compute_done_event)."""
        if name not in self._out_shapes:
            raise BackendError(
                f"{self.name}: no output '{name}' enqueued (outputs: {sorted(self._out_shapes)})"
            )
        buf = self._buffers[name]
        return DeviceTensor(buf.device, self._out_shapes[name], buf.dtype)

    def enqueue(self, feed: Mapping[str, np.ndarray | DeviceTensor], fetch: bool = True,
                check_inputs: bool = True) -> None:
        """Queue H2D (or D2D for DeviceTensor inputs), compute and, with `fetch`, D2H on this stream."""
        self.require_active()
        if self._pending:
            raise BackendError(f"{self.name}: enqueue() called again before synchronize()")
        assert self._context is not None and self._stream is not None and self._timer is not None
        host = CpuTimer()
        host.start()
        if check_inputs:
            self.check_feed(feed)
        shapes = {name: tuple(int(d) for d in value.shape) for name, value in feed.items()}
        if shapes != self._shapes:
            self._set_shapes(shapes)
        if self.cuda_graph and self._graph is None:
            self._capture_graph()  # before the timing events: the capture's warm-up run is not this call's work
        cuda, stream, timer = self.cuda, self._stream, self._timer
        timer.start()
        for name, value in feed.items():
            buf = self._buffers[name]
            if isinstance(value, DeviceTensor):
                cuda.memcpy_dtod_async(buf.device, value.ptr, value.nbytes, stream)
            else:
                np.copyto(buf.view(shapes[name]), value, casting="no")
                cuda.memcpy_htod_async(buf.device, buf.host, value.nbytes, stream)
        timer.mark("h2d_done")
        self._execute()
        timer.mark("compute_done")
        if fetch:
            for name, shape in self._out_shapes.items():
                buf = self._buffers[name]
                cuda.memcpy_dtoh_async(buf.host, buf.device, buf.view(shape).nbytes, stream)
        timer.mark("end")  # not stop(): synchronize() waits for the stream once, for outputs and timings
        self._pending, self._fetched = True, fetch
        self._enqueue_ms = host.stop() / 1e6

    def synchronize(self) -> dict[str, np.ndarray]:
        """Wait for the enqueued call; return host outputs (empty without fetch) and set last_timings."""
        if not self._pending or self._stream is None:
            raise BackendError(f"{self.name}: synchronize() without a pending enqueue()")
        self.cuda.stream_synchronize(self._stream)
        self._pending = False
        self.last_timings = StageTimes.from_marks(self.timer, self._enqueue_ms)
        if not self._fetched:
            return {}
        return {name: self._buffers[name].view(shape).copy() for name, shape in self._out_shapes.items()}

    def _set_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        assert self._context is not None
        for name, shape in shapes.items():
            lo, hi = self.limits[name]
            if any(not a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
                raise BackendError(
                    f"{self.name}: input '{name}' shape {shape} is outside the engine's profile "
                    f"{lo}..{hi}; rebuild with a wider range: {rebuild_command(self._root, self.sidecar)}"
                    f" --shapes {name}:MIN/OPT/MAX"
                )
            if not self._context.set_input_shape(name, shape):
                raise BackendError(f"{self.name}: TensorRT rejected shape {shape} for input '{name}'")
        self._shapes = shapes
        self._out_shapes = {s.name: dims_tuple(self._context.get_tensor_shape(s.name)) for s in self.outputs}
        for name, shape in self._out_shapes.items():
            buf = self._buffers[name]
            if -1 in shape or buf.view_bytes(shape) > buf.capacity:
                raise EngineError(f"{self.name}: output '{name}' shape {shape} needs more than the "
                                  f"{buf.capacity} bytes allocated for the profile's maximum; rebuild with: "
                                  f"{rebuild_command(self._root, self.sidecar)}")
        if self._graph is not None:  # a graph is only valid for the shapes it was captured with
            self.cuda.graph_destroy(self._graph)
            self._graph = None

    def _execute(self) -> None:
        assert self._context is not None and self._stream is not None
        if self._graph is not None:  # captured in enqueue() for the current shapes
            self.cuda.graph_launch(self._graph, self._stream)
        elif not self._context.execute_async_v3(self._stream):
            raise BackendError(f"{self.name}: execute_async_v3 failed: {self._logger.last_errors()}")

    def _capture_graph(self) -> None:
        assert self._context is not None and self._stream is not None
        # TensorRT needs one plain enqueue after a shape change before capture (deferred set-up work).
        if not self._context.execute_async_v3(self._stream):
            raise BackendError(f"{self.name}: execute_async_v3 failed: {self._logger.last_errors()}")
        self.cuda.graph_begin_capture(self._stream)
        try:
            captured = self._context.execute_async_v3(self._stream)
        finally:
            graph = self.cuda.graph_end_capture(self._stream)
        if not captured:
            self.cuda.graph_destroy(graph)
            raise BackendError(
                f"{self.name}: CUDA-graph capture of execute_async_v3 failed (run without "
                f"cuda_graph): {self._logger.last_errors()}"
            )
        self._graph = graph
        log.debug("%s: captured a CUDA graph for shapes %s", self.name, self._shapes)

