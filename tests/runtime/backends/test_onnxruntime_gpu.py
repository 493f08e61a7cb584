"""ONNX Runtime GPU backends: a clear error when the provider is absent (CPU machines), and a
real comparison with ONNX Runtime CPU where the provider and a GPU exist."""

from __future__ import annotations

from pathlib import Path

import gpu_utils
import numpy as np
import onnxruntime as ort
import pytest

from mmedge.bundle import Bundle
from mmedge.errors import BackendError
from mmedge.runtime.backends.onnxruntime_gpu.runner import (
    CUDA_EP,
    TRT_EP,
    gpu_session_options,
    make_cuda_runner,
    make_trt_runner,
    trt_provider_options,
)

FACTORIES = {CUDA_EP: make_cuda_runner, TRT_EP: make_trt_runner}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle.load(gpu_utils.make_tiny_bundle(tmp_path_factory.mktemp("ort_gpu") / "b"))


@pytest.mark.parametrize("provider", [CUDA_EP, TRT_EP])
def test_absent_provider_raises_with_install_hint(provider: str, bundle: Bundle) -> None:
    if provider in ort.get_available_providers():
        pytest.skip(f"{provider} is available here")
    with pytest.raises(BackendError, match=f"{provider} is not available here.*pip install onnxruntime-gpu"):
        FACTORIES[provider](bundle, "fusion_head", "fp32")


def test_session_options_forbid_cpu_fallback() -> None:
    assert gpu_session_options().get_session_config_entry("session.disable_cpu_ep_fallback") == "1"


def test_trt_provider_options_follow_the_onnx_precision(tmp_path: Path) -> None:
    assert trt_provider_options("fp32", tmp_path)["trt_fp16_enable"] is False
    assert trt_provider_options("fp16", tmp_path)["trt_fp16_enable"] is True
    assert trt_provider_options("int8", tmp_path)["trt_int8_enable"] is True
    assert trt_provider_options("fp16", tmp_path)["trt_engine_cache_path"] == str(tmp_path)


def test_unknown_option_is_rejected(bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendError, match="unknown option"):
        make_cuda_runner(bundle, "fusion_head", "fp32", turbo=True)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("provider", "precision", "atol"),
    [(CUDA_EP, "fp32", 1e-3), (CUDA_EP, "fp16", 2e-2), (TRT_EP, "fp32", 1e-3), (TRT_EP, "fp16", 2e-2)],
)
def test_gpu_provider_matches_cpu(provider: str, precision: str, atol: float, bundle: Bundle) -> None:
    reason = gpu_utils.ort_provider_skip_reason(provider)
    if reason:
        pytest.skip(reason)
    feeds = gpu_utils.make_feeds()
    for component in ("text", "image", "audio"):
        with FACTORIES[provider](bundle, component, precision) as runner:
            got = runner.infer(feeds[component])
        want = gpu_utils.ort_cpu(bundle.root, component, precision, feeds[component])
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, atol=atol, rtol=atol)
