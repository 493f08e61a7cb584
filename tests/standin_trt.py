"""A stand-in `tensorrt` module: exactly the TensorRT runtime API mmedge uses, computing with ONNX Runtime.

Installed as `sys.modules["tensorrt"]` by the `standin` fixture (conftest.py). An "engine" is the
component's ONNX plus its optimization profile (`make_plan`); the execution context checks shapes
against that profile, reads its inputs from and writes its outputs to the stand-in CUDA device
memory at the addresses it was given, and runs when its stream runs — so wrong addresses, shapes,
missing synchronization or a wrong buffer size give wrong results or errors, as on a GPU.

Every public name defined here exists in tensorrt-stubs with the same parameter names
(test_standin.py checks this), so the stand-in cannot invent an API TensorRT lacks.
"""

from __future__ import annotations

import enum
import json
import struct
from typing import Any

import numpy as np

__version__ = "10.3.0.30"
MAGIC = b"MMEDGE-STANDIN-PLAN\n"
CUDA: Any = None  # the StandinCuda the fixture installs (TensorRT's "current CUDA context")


class ILogger:
    """The TensorRT logger interface."""

    class Severity(enum.IntEnum):
        """Message severities, as in TensorRT."""

        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    INTERNAL_ERROR = Severity.INTERNAL_ERROR
    ERROR = Severity.ERROR
    WARNING = Severity.WARNING
    INFO = Severity.INFO
    VERBOSE = Severity.VERBOSE

    def __init__(self) -> None:
        pass

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        """Receive a message."""


class Logger(ILogger):
    """TensorRT's default logger."""

    def __init__(self, min_severity: ILogger.Severity = ILogger.Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity


class TensorIOMode(enum.IntEnum):
    """Whether a tensor is an engine input or output."""

    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(enum.IntEnum):
    """Tensor element types."""

    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    INT64 = 8


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
       DataType.INT32: np.int32, DataType.BOOL: np.bool_, DataType.INT64: np.int64}
_ORT = {"tensor(float)": DataType.FLOAT, "tensor(float16)": DataType.HALF, "tensor(int64)": DataType.INT64,
        "tensor(int32)": DataType.INT32, "tensor(int8)": DataType.INT8, "tensor(bool)": DataType.BOOL}


def nptype(trt_type: DataType) -> type:
    """The numpy type of a TensorRT DataType."""
    return _NP[DataType(trt_type)]


class Dims(tuple):  # type: ignore[type-arg]
    """A shape; dynamic dimensions are -1."""


class Builder:
    """Present so that `require_tensorrt()` accepts the stand-in; it builds nothing."""

    def __init__(self, logger: ILogger) -> None:
        raise RuntimeError("the TensorRT stand-in cannot build engines; plant plans with make_plan()")


def make_plan(onnx_bytes: bytes, profiles: dict[str, dict[str, list[int]]]) -> bytes:
    """A stand-in serialized engine: the ONNX and its optimization profile 0."""
    header = json.dumps({"profiles": profiles}).encode()
    return MAGIC + struct.pack("<I", len(header)) + header + onnx_bytes


class ICudaEngine:
    """An engine: the I/O of the ONNX graph, its profile, and an ONNX Runtime session to compute with."""

    def __init__(self, profiles: dict[str, dict[str, list[int]]], onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self._profiles = profiles
        self._io = [(i, TensorIOMode.INPUT) for i in self._session.get_inputs()]
        self._io += [(o, TensorIOMode.OUTPUT) for o in self._session.get_outputs()]
        self._by_name = {node.name: (node, mode) for node, mode in self._io}

    @property
    def num_io_tensors(self) -> int:
        """Number of inputs and outputs."""
        return len(self._io)

    def get_tensor_name(self, index: int) -> str:
        """Name of I/O tensor `index`."""
        return str(self._io[index][0].name)

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        """INPUT or OUTPUT."""
        return self._by_name[name][1]

    def get_tensor_dtype(self, name: str) -> DataType:
        """Element type."""
        return _ORT[self._by_name[name][0].type]

    def get_tensor_shape(self, name: str) -> Dims:
        """Shape with -1 for dynamic dimensions."""
        return Dims(d if isinstance(d, int) else -1 for d in self._by_name[name][0].shape)

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Dims]:
        """[min, opt, max] of an input in a profile."""
        if profile_index != 0 or name not in self._profiles:
            raise IndexError(f"no profile {profile_index} for '{name}'")
        p = self._profiles[name]
        return [Dims(p["min"]), Dims(p["opt"]), Dims(p["max"])]

    def create_execution_context(self) -> IExecutionContext:
        """A new execution context."""
        return IExecutionContext(self)


class IExecutionContext:
    """Shapes and addresses of one execution; `execute_async_v3` queues the run on a stream."""

    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple) -> bool:  # type: ignore[type-arg]
        """Set an input's shape; False when outside profile 0 (TensorRT logs and returns False)."""
        p = self.engine._profiles.get(name)
        shape = tuple(int(d) for d in shape)
        if p is None or len(shape) != len(p["min"]):
            return False
        if any(not lo <= s <= hi for lo, s, hi in zip(p["min"], shape, p["max"], strict=True)):
            return False
        self._shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> Dims:
        """An input's set shape, or an output's shape derived from the inputs' named dimensions."""
        node, mode = self.engine._by_name[name]
        if mode == TensorIOMode.INPUT:
            return Dims(self._shapes.get(name, self.engine.get_tensor_shape(name)))
        axes: dict[str, int] = {}
        for inp, m in self.engine._io:
            if m == TensorIOMode.INPUT and inp.name in self._shapes:
                named = zip(inp.shape, self._shapes[inp.name], strict=True)
                axes.update({d: v for d, v in named if isinstance(d, str)})
        return Dims(d if isinstance(d, int) else axes.get(d, -1) for d in node.shape)

    def set_tensor_address(self, name: str, memory: int) -> bool:
        """Bind a device address to a tensor."""
        if name not in self.engine._by_name:
            return False
        self._addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        """Queue the computation on `stream_handle` with the shapes and addresses set now."""
        shapes, addresses = dict(self._shapes), dict(self._addresses)
        inputs = {n for n, (_, mode) in self.engine._by_name.items() if mode == TensorIOMode.INPUT}
        if not inputs <= set(shapes) or set(addresses) != set(self.engine._by_name):
            return False  # TensorRT: not all input shapes / tensor addresses are specified
        CUDA.enqueue(stream_handle, "execute", lambda: self._run(shapes, addresses))
        return True

    def _run(self, shapes: dict[str, tuple[int, ...]], addresses: dict[str, int]) -> None:
        feed = {}
        for inp, mode in self.engine._io:
            if mode != TensorIOMode.INPUT:
                continue
            dtype: np.dtype[Any] = np.dtype(nptype(self.engine.get_tensor_dtype(inp.name)))
            nbytes = int(np.prod(shapes[inp.name], dtype=np.int64)) * dtype.itemsize
            feed[inp.name] = CUDA.device_view(addresses[inp.name], nbytes).view(dtype).reshape(shapes[inp.name]).copy()
        names = [o.name for o, mode in self.engine._io if mode == TensorIOMode.OUTPUT]
        for name, value in zip(names, self.engine._session.run(names, feed), strict=True):
            data = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
            CUDA.device_view(addresses[name], data.size)[:] = data


class Runtime:
    """Deserializes stand-in plans."""

    def __init__(self, logger: ILogger) -> None:
        self._logger = logger
        self.DLA_core = -1
        self.engine_host_code_allowed = False

    @property
    def num_DLA_cores(self) -> int:
        """No DLA on the stand-in."""
        return 0

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
        """The engine of a plan from `make_plan`, or None (with an error logged) for anything else."""
        data = bytes(serialized_engine)
        if not data.startswith(MAGIC):
            self._logger.log(ILogger.Severity.ERROR, "stand-in: not a stand-in plan (magic tag mismatch)")
            return None
        offset = len(MAGIC)
        (size,) = struct.unpack_from("<I", data, offset)
        header = json.loads(data[offset + 4 : offset + 4 + size])
        return ICudaEngine(header["profiles"], data[offset + 4 + size :])
