"""Both CudaApi implementations against fake `pycuda.driver` / `cuda.bindings.runtime` modules (no GPU):
context push/pop, non-blocking streams, devices, sizes, native handles, and no pycuda graphs."""

from __future__ import annotations

import threading
import types
from typing import Any

import numpy as np
import pytest

from mmedge.errors import BackendError
from mmedge.runtime.cuda import cuda_python, pycuda_api
from mmedge.runtime.cuda.contract import CudaApi


# ---- a fake pycuda.driver --------------------------------------------------------------------
class FakePycuda:
    """Records what pycuda would do; the context stack is per thread, as in CUDA."""

    class Error(Exception):
        pass

    device_attribute = types.SimpleNamespace(MULTIPROCESSOR_COUNT="MULTIPROCESSOR_COUNT")

    def __init__(self) -> None:
        self.local = threading.local()
        self.retained: list[int] = []
        self.stream_flags: list[int] = []
        drv = self

        class Context:
            def __init__(self, device: int) -> None:
                self.device = device

            def push(self) -> None:
                drv.stack().append(self)

            @staticmethod
            def pop() -> None:
                drv.stack().pop()

        class Device:
            def __init__(self, index: int) -> None:
                self.index = index

            @staticmethod
            def count() -> int:
                return 2

            def retain_primary_context(self) -> Context:
                drv.retained.append(self.index)
                return Context(self.index)

            def compute_capability(self) -> tuple[int, int]:
                return (8, 7)

            def name(self) -> str:
                return "Orin"

            def get_attribute(self, attr: str) -> int:
                assert attr == "MULTIPROCESSOR_COUNT"
                return 8 if self.index == 1 else 16

            def total_memory(self) -> int:
                return 8 << 30

        class Stream:
            def __init__(self, flags: int = 0) -> None:
                assert drv.stack(), "a context must be current"
                drv.stream_flags.append(flags)
                self.handle = 0x5000 + len(drv.stream_flags)

            def synchronize(self) -> None:
                assert drv.stack(), "a context must be current"

        self.Context, self.Device, self.Stream = Context, Device, Stream

    def stack(self) -> list[Any]:
        if not hasattr(self.local, "stack"):
            self.local.stack = []
        stack: list[Any] = self.local.stack
        return stack

    def init(self) -> None:
        pass

    def get_version(self) -> tuple[int, int, int]:
        return (12, 6, 0)

    def get_driver_version(self) -> int:
        return 12060

    def mem_alloc(self, nbytes: int) -> int:
        assert self.stack(), "a context must be current"
        return 0x1000


@pytest.fixture()
def fake_pycuda(monkeypatch: pytest.MonkeyPatch) -> FakePycuda:
    drv = FakePycuda()
    monkeypatch.setattr(pycuda_api, "_driver", lambda: drv)
    return drv


def test_pycuda_leaves_no_context_pushed_on_any_thread(fake_pycuda: FakePycuda) -> None:
    api = pycuda_api.PyCudaApi()
    left: list[int] = []

    def worker() -> None:
        stream = api.stream_create()
        api.stream_synchronize(stream)
        api.malloc(16)
        left.append(len(fake_pycuda.stack()))  # pycuda aborts a thread that exits with a pushed context

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert left == [0]
    api.malloc(16)
    assert fake_pycuda.stack() == []


def test_pycuda_pops_the_context_when_the_call_fails(fake_pycuda: FakePycuda) -> None:
    api = pycuda_api.PyCudaApi()

    def boom(*_: Any) -> None:
        raise fake_pycuda.Error("CUDA_ERROR_OUT_OF_MEMORY")

    fake_pycuda.mem_alloc = boom  # type: ignore[method-assign,assignment]
    with pytest.raises(BackendError, match=r"mem_alloc failed.*OUT_OF_MEMORY"):
        api.malloc(16)
    assert fake_pycuda.stack() == []


def test_pycuda_streams_are_non_blocking(fake_pycuda: FakePycuda) -> None:
    pycuda_api.PyCudaApi().stream_create()
    assert fake_pycuda.stream_flags == [1]  # CU_STREAM_NON_BLOCKING


def test_pycuda_has_no_graph_capture_and_says_to_use_cuda_python(fake_pycuda: FakePycuda) -> None:
    api = pycuda_api.PyCudaApi()
    stream = api.stream_create()
    for call in (lambda: api.graph_begin_capture(stream), lambda: api.graph_end_capture(stream),
                 lambda: api.graph_launch(1, stream)):
        with pytest.raises(BackendError, match=r"pycuda has no CUDA-graph capture.*cuda-python"):
            call()


def test_pycuda_set_device_uses_that_devices_primary_context(fake_pycuda: FakePycuda) -> None:
    api = pycuda_api.PyCudaApi()
    api.set_device(1)
    api.malloc(16)
    assert fake_pycuda.retained == [1]
    with pytest.raises(BackendError, match="CUDA device 5 requested but 2"):
        api.set_device(5)


def test_pycuda_device_info_has_sm_count_and_memory(fake_pycuda: FakePycuda) -> None:
    info = pycuda_api.PyCudaApi().device_info(1)
    assert (info.sm_count, info.total_memory, info.compute_capability) == (8, 8 << 30, "8.7")


# ---- a fake cuda.bindings.runtime ------------------------------------------------------------
class _Handle:
    """A cuda-python object whose int() is deprecated: only get_cuda_native_handle may read it."""

    def __init__(self, address: int) -> None:
        self.address = address

    def __int__(self) -> int:
        raise AssertionError("int(cuda_obj) is deprecated: use get_cuda_native_handle")


class FakeCudart:
    cudaStreamNonBlocking = 1

    def __init__(self) -> None:
        self.cudaError_t = types.SimpleNamespace(cudaSuccess=0)
        self.set_device_calls: list[tuple[str, int]] = []

    def cudaSetDevice(self, device: int) -> tuple[int]:
        self.set_device_calls.append((threading.current_thread().name, device))
        return (0,)

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[int, _Handle]:
        assert flags == 1
        return (0, _Handle(0xBEEF))

    def cudaEventCreate(self) -> tuple[int, _Handle]:
        return (0, _Handle(0xE1))

    def cudaMalloc(self, nbytes: int) -> tuple[int, int]:
        return (0, 0xD000)

    def cudaGetDeviceProperties(self, device: int) -> tuple[int, Any]:
        prop = types.SimpleNamespace(name=b"Orin\0\0", major=8, minor=7, multiProcessorCount=16,
                                     totalGlobalMem=64 << 30)
        return (0, prop)

    def cudaRuntimeGetVersion(self) -> tuple[int, int]:
        return (0, 12060)

    def cudaDriverGetVersion(self) -> tuple[int, int]:
        return (0, 12080)


@pytest.fixture()
def fake_cudart(monkeypatch: pytest.MonkeyPatch) -> FakeCudart:
    rt = FakeCudart()
    monkeypatch.setattr(cuda_python, "_runtime", lambda: rt)
    monkeypatch.setattr(cuda_python, "_native_handle_getter", lambda: lambda obj: obj.address)
    return rt


def test_cuda_python_handles_come_from_get_cuda_native_handle(fake_cudart: FakeCudart) -> None:
    api = cuda_python.CudaPythonApi()
    assert api.stream_create() == 0xBEEF and api.event_create() == 0xE1
    assert api.malloc(8) == 0xD000  # plain ints pass through


def test_native_handle_falls_back_to_int_on_old_cuda_python() -> None:
    assert cuda_python.native_handle(7) == 7
    assert cuda_python.native_handle(np.int64(9)) == 9  # getter None (cuda-python < 12.9.1): int(obj)
    assert cuda_python.native_handle(_Handle(3), lambda obj: obj.address) == 3


def test_cuda_python_set_device_applies_on_every_thread(fake_cudart: FakeCudart) -> None:
    api = cuda_python.CudaPythonApi()
    api.set_device(1)
    thread = threading.Thread(target=lambda: (api.malloc(8), api.stream_create()), name="encoder-0")
    thread.start()
    thread.join()
    assert ("encoder-0", 1) in fake_cudart.set_device_calls
    assert [c for c in fake_cudart.set_device_calls if c[0] == "encoder-0"] == [("encoder-0", 1)]  # once


def test_cuda_python_device_info_has_sm_count_and_memory(fake_cudart: FakeCudart) -> None:
    info = cuda_python.CudaPythonApi().device_info(0)
    assert (info.name, info.sm_count, info.total_memory) == ("Orin", 16, 64 << 30)
    assert info.driver_version == "12.8"


def test_both_implementations_declare_set_device() -> None:
    assert "set_device" in CudaApi.__dict__
    for cls in (cuda_python.CudaPythonApi, pycuda_api.PyCudaApi):
        assert callable(getattr(cls, "set_device", None)), cls
