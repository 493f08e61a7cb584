"""The CUDA layer's selection and error reporting (CPU machines), and the GPU pipeline's
orchestration with a fake CUDA + fake runners (no GPU needed)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping

import gpu_utils
import numpy as np
import pytest

from mmedge.errors import BackendError, MissingDependencyError
from mmedge.runtime.backends.tensorrt.executor import run_concurrent, run_sequential
from mmedge.runtime.backends.tensorrt.io_types import DeviceTensor, StageTimes
from mmedge.runtime.cuda import select as cuda_mod
from mmedge.runtime.cuda.select import CudaApi, get_cuda_api, probe_cuda, reset_cuda_api, version_string
from mmedge.specs import TensorSpec

NO_GPU = gpu_utils.gpu_skip_reason() is not None
HAS_CUDA_PYTHON = importlib.util.find_spec("cuda.bindings") is not None
HAS_PYCUDA = importlib.util.find_spec("pycuda") is not None


@pytest.fixture(autouse=True)
def _fresh_choice(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(cuda_mod.ENV_VAR, raising=False)
    reset_cuda_api()
    yield
    reset_cuda_api()


def test_unknown_api_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match=r"unknown CUDA API 'cupy'.*cuda-python, pycuda"):
        get_cuda_api("cupy")


def test_unknown_api_from_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cuda_mod.ENV_VAR, "numba")
    with pytest.raises(BackendError, match="unknown CUDA API 'numba'"):
        get_cuda_api()


@pytest.mark.skipif(HAS_PYCUDA, reason="pycuda is installed")
def test_pycuda_missing_names_the_pip_package() -> None:
    with pytest.raises(MissingDependencyError, match="pip install pycuda"):
        get_cuda_api("pycuda")


@pytest.mark.skipif(not (NO_GPU and HAS_CUDA_PYTHON), reason="needs cuda-python on a machine without a GPU")
def test_cuda_python_without_gpu_names_the_cuda_error() -> None:
    with pytest.raises(BackendError, match=r"cudaGetDeviceCount failed: cudaError\w+"):
        get_cuda_api("cuda-python")
    with pytest.raises(BackendError, match="cudaError"):
        get_cuda_api()  # auto choice: cuda-python first
    ok, why = probe_cuda()
    assert not ok and "cudaError" in why


@pytest.mark.skipif(not (NO_GPU and HAS_CUDA_PYTHON), reason="needs cuda-python on a machine without a GPU")
def test_every_cuda_python_call_checks_its_error_code() -> None:
    from mmedge.runtime.cuda.cuda_python import CudaPythonApi

    api = CudaPythonApi()
    assert isinstance(api, CudaApi)
    for call in (lambda: api.malloc(16), api.stream_create, api.event_create, lambda: api.device_info(0)):
        with pytest.raises(BackendError, match=r"CUDA call cuda\w+ failed: cudaError"):
            call()


def test_apis_are_never_mixed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda()
    monkeypatch.setattr(cuda_mod, "_construct", lambda name: fake)
    monkeypatch.setattr(cuda_mod, "_available", lambda name: True)
    assert get_cuda_api("pycuda") is fake
    assert get_cuda_api() is fake  # the process keeps its choice
    with pytest.raises(BackendError, match="already in use"):
        get_cuda_api("cuda-python")


def test_the_requested_device_is_applied_and_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda(count=2)
    monkeypatch.setattr(cuda_mod, "_construct", lambda name: fake)
    monkeypatch.setattr(cuda_mod, "_available", lambda name: True)
    assert get_cuda_api("cuda-python", device=1) is fake
    assert fake.devices_set == [1]
    assert get_cuda_api(device=1) is fake
    with pytest.raises(BackendError, match="CUDA device 0 was requested but device 1 is already in use"):
        get_cuda_api()


def test_a_device_that_is_not_visible_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda(count=1)
    monkeypatch.setattr(cuda_mod, "_construct", lambda name: fake)
    monkeypatch.setattr(cuda_mod, "_available", lambda name: True)
    with pytest.raises(BackendError, match=r"CUDA device 3 requested but 1 device\(s\) are visible"):
        get_cuda_api("pycuda", device=3)
    assert fake.devices_set == []


def test_version_string() -> None:
    assert version_string(12060) == "12.6" and version_string(13000) == "13.0"


# ---- GPU pipeline orchestration with fakes ---------------------------------------------------
class FakeCuda:
    """Device memory is a dict of numpy arrays; streams run eagerly; time is a counter."""

    name = "fake"

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self.devices_set: list[int] = []
        self.memory: dict[int, np.ndarray] = {}
        self.clock = 0.0
        self.events: dict[int, float] = {}
        self.waits: list[tuple[int, int]] = []
        self._next = 1

    def _handle(self) -> int:
        self._next += 1
        return self._next

    def device_count(self) -> int:
        return self.count

    def set_device(self, device: int) -> None:
        self.devices_set.append(device)

    def malloc(self, nbytes: int) -> int:
        ptr = self._handle()
        self.memory[ptr] = np.zeros(nbytes, dtype=np.uint8)
        return ptr

    def event_create(self) -> int:
        return self._handle()

    def event_record(self, event: int, stream: int) -> None:
        self.clock += 1.0
        self.events[event] = self.clock

    def event_elapsed_ms(self, start: int, end: int) -> float:
        return self.events[end] - self.events[start]

    def stream_wait_event(self, stream: int, event: int) -> None:
        self.waits.append((stream, event))


class FakeRunner:
    """Adds a constant to every input element; outputs live in FakeCuda memory."""

    def __init__(
        self, name: str, inputs: list[TensorSpec], outputs: list[TensorSpec], cuda: FakeCuda
    ) -> None:
        self.name, self.inputs, self.outputs, self.cuda = name, inputs, outputs, cuda
        self.last_timings: StageTimes | None = None
        self.stream = cuda._handle()
        self.start_event, self.compute_done_event, self.end_event = (cuda.event_create() for _ in range(3))
        self._out: dict[str, np.ndarray] = {}
        self._ptr: dict[str, int] = {}
        self.opened = 0

    def open(self) -> None:
        self.opened += 1

    def activate(self) -> None:
        self.open()

    def enqueue(self, feed: Mapping[str, np.ndarray | DeviceTensor], fetch: bool = True) -> None:
        values = []
        for spec in self.inputs:
            value = feed[spec.name]
            if isinstance(value, DeviceTensor):
                value = self.cuda.memory[value.ptr].view(value.dtype).reshape(value.shape)
            values.append(
                np.asarray(value, dtype=np.float32).reshape(len(value), -1).sum(axis=1, keepdims=True)
            )
        total = np.sum(values, axis=0).astype(np.float32)
        self.cuda.event_record(self.start_event, self.stream)
        for spec in self.outputs:
            out = np.repeat(total, 2, axis=1) + 1.0
            ptr = self.cuda.malloc(out.nbytes)
            self.cuda.memory[ptr] = out.view(np.uint8).reshape(-1)
            self._out[spec.name], self._ptr[spec.name] = out, ptr
        self.cuda.event_record(self.compute_done_event, self.stream)
        self.cuda.event_record(self.end_event, self.stream)
        self._fetch = fetch

    def synchronize(self) -> dict[str, np.ndarray]:
        self.last_timings = StageTimes(0.0, 1.0, 1.0, 2.0, 0.1)
        return {k: v.copy() for k, v in self._out.items()} if self._fetch else {}

    def device_output(self, name: str) -> DeviceTensor:
        out = self._out[name]
        return DeviceTensor(self._ptr[name], out.shape, out.dtype)


def _fake_runners(cuda: FakeCuda) -> dict[str, FakeRunner]:
    def spec(name: str) -> TensorSpec:
        return TensorSpec(name, "float32", ("batch", 2))

    runners = {m: FakeRunner(m, [spec(f"{m}_in")], [spec(f"{m}_embedding")], cuda) for m in ("text", "image")}
    head_in = [spec("text_embedding"), spec("image_embedding"), spec("audio_embedding"), spec("present")]
    runners["fusion_head"] = FakeRunner("fusion_head", head_in, [spec("logits")], cuda)
    return runners


def _feeds() -> dict[str, dict[str, np.ndarray]]:
    ones = np.ones((2, 2), dtype=np.float32)
    return {
        "text": {"text_in": ones},
        "image": {"image_in": 2 * ones},
        "fusion_head": {"audio_embedding": np.zeros((2, 2), np.float32), "present": ones},
    }


def test_concurrent_equals_sequential_and_head_waits_on_each_encoder() -> None:
    cuda = FakeCuda()
    runners = _fake_runners(cuda)
    concurrent = run_concurrent(runners, _feeds(), fetch_embeddings=True)  # type: ignore[arg-type]
    waits = list(cuda.waits)
    sequential = run_sequential(runners, _feeds(), fetch_embeddings=True)  # type: ignore[arg-type]
    np.testing.assert_array_equal(
        concurrent.outputs["fusion_head"]["logits"], sequential.outputs["fusion_head"]["logits"]
    )
    assert sorted(waits) == sorted(
        (runners["fusion_head"].stream, runners[m].compute_done_event) for m in ("text", "image")
    )
    assert concurrent.encoders == ["text", "image"]
    assert set(concurrent.stages) == {"text", "image", "fusion_head"}
    assert concurrent.gpu_span_ms > 0 and concurrent.to_json()["mode"] == "concurrent"
    # text: 2 + 1 = 3 per element, image: 4 + 1 = 5, audio 0, present 2 -> 3*2 + 5*2 + 0 + 2 = 18 -> +1
    np.testing.assert_allclose(concurrent.outputs["fusion_head"]["logits"], np.full((2, 2), 19.0))
    assert concurrent.outputs["text"]["text_embedding"].shape == (2, 2)


def test_pipeline_rejects_missing_or_doubled_head_inputs() -> None:
    runners = _fake_runners(FakeCuda())
    feeds = _feeds()
    del feeds["fusion_head"]["audio_embedding"]
    with pytest.raises(BackendError, match="audio_embedding"):
        run_concurrent(runners, feeds)  # type: ignore[arg-type]
    feeds = _feeds()
    feeds["fusion_head"]["text_embedding"] = np.zeros((2, 2), np.float32)
    with pytest.raises(BackendError, match="pass only one"):
        run_sequential(runners, feeds)  # type: ignore[arg-type]


def test_pipeline_rejects_mixed_cuda_apis() -> None:
    runners = _fake_runners(FakeCuda())
    runners["image"].cuda = FakeCuda()
    with pytest.raises(BackendError, match="different CUDA API"):
        run_concurrent(runners, _feeds())  # type: ignore[arg-type]
