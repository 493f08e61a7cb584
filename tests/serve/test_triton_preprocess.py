"""The exported repository's preprocessing model and ensemble data flow, against Pipeline.predict.

In process: the preprocessing model's feeds through the repository's own ONNX files, every row through
every encoder as Triton's ensemble does, then the head with `present`. In the real Triton server that
PyTriton bundles: the repository loads and answers; that binary has no onnxruntime backend, so the ONNX
models run on a test stand-in Python model (tests/serve/ort_standin_model.py) with the same configs.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from mmedge.errors import InputError
from mmedge.runtime.pipeline import Pipeline, softmax
from mmedge.serve.repository import RepositoryOptions, export_repository
from mmedge.serve.triton_preprocess import RepositoryPreprocessor

SUBSETS = [c for n in (1, 2, 3) for c in itertools.combinations(("text", "image", "audio"), n)]


@pytest.fixture(scope="module")
def repo(tiny_bundle_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triton") / "repo"
    export_repository(tiny_bundle_pristine, out, RepositoryOptions(max_batch=8))
    return out


@pytest.fixture(scope="module")
def pipe(tiny_bundle_pristine: Path) -> Iterator[Pipeline]:
    with Pipeline.from_bundle(tiny_bundle_pristine) as p:
        yield p


def _rows(media: dict[str, Path], subsets: list[tuple[str, ...]]) -> dict[str, np.ndarray]:
    """One request: a row per subset, absent modalities as empty elements (as the ensemble requires)."""
    values = {"text": b"seven", "image": media["image"].read_bytes(), "audio": media["audio"].read_bytes()}
    return {m: np.array([[values[m] if m in s else b""] for s in subsets], dtype=object) for m in values}


def _want(pipe: Pipeline, media: dict[str, Path], subset: tuple[str, ...]) -> list[float]:
    got = pipe.predict(text="seven" if "text" in subset else None, image=media["image"] if "image" in subset else None,
                       audio=media["audio"] if "audio" in subset else None)
    return list(got.probabilities.values())


def test_ensemble_data_flow_matches_pipeline(repo: Path, pipe: Pipeline, media_files: dict[str, Path]) -> None:
    feeds = RepositoryPreprocessor(repo / "mmedge_preprocess" / "1")(_rows(media_files, SUBSETS))
    embeddings = {}
    for m in ("text", "image", "audio"):
        session = ort.InferenceSession(str(repo / f"mmedge_{m}" / "1" / "model.onnx"))
        embeddings.update(zip([o.name for o in session.get_outputs()],
                              session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()}), strict=True))
    head = ort.InferenceSession(str(repo / "mmedge_fusion_head" / "1" / "model.onnx"))
    [logits] = head.run(None, {**embeddings, "present": feeds["present"]})
    for row, subset in enumerate(SUBSETS):
        np.testing.assert_allclose(softmax(logits)[row], _want(pipe, media_files, subset), atol=1e-5, rtol=0)


def test_bad_rows_are_input_errors(repo: Path) -> None:
    run = RepositoryPreprocessor(repo / "mmedge_preprocess" / "1")
    with pytest.raises(InputError, match="row 1: all modalities are absent"):
        run({"text": np.array([[b"a"], [b""]], dtype=object), "image": np.array([[b""], [b""]], dtype=object)})


def _bundled_server(repo: Path, root: Path, http: int) -> subprocess.Popen[bytes]:
    """PyTriton's tritonserver binary on `repo`, set up as PyTriton does (its Python stub, its libraries)."""
    import pytriton

    from mmedge.serve.server import interpreter_libdir

    dist = Path(pytriton.__file__).parent / "tritonserver"
    server = root / "tritonserver"
    shutil.copytree(dist, server, ignore=shutil.ignore_patterns("python_backend_stubs"))
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    shutil.copy(dist / "python_backend_stubs" / version / "triton_python_backend_stub", server / "backends" / "python")
    site = Path(pytriton.__file__).parent.parent
    env = {"LD_LIBRARY_PATH": f"{interpreter_libdir() or ''}:{site / 'nvidia_pytriton.libs'}",
           "PYTHONPATH": f"{Path(__file__).parents[2]}:{site}", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    cmd = [str(server / "bin" / "tritonserver"), "--model-repository", str(repo), "--backend-directory",
           str(server / "backends"), "--http-port", str(http), "--allow-grpc", "false", "--allow-metrics", "false",
           "--http-address", "127.0.0.1", "--exit-timeout-secs", "5"]
    return subprocess.Popen(cmd, env=env, stdout=(root / "triton.log").open("wb"), stderr=subprocess.STDOUT)


def test_repository_in_the_real_triton_server(repo: Path, pipe: Pipeline, media_files: dict[str, Path],
                                              tmp_path: Path, ports: list[int]) -> None:
    pytest.importorskip("pytriton", reason="the serve extra (pip install 'mmedge[serve]') is not installed")
    from tritonclient.http import InferenceServerClient, InferInput
    from tritonclient.utils import InferenceServerException

    standin = tmp_path / "repo"
    shutil.copytree(repo, standin)
    for config in standin.glob("*/config.pbtxt"):
        text = config.read_text()
        if 'platform: "onnxruntime_onnx"' in text:  # only the backend changes: same name, inputs, outputs
            config.write_text(re.sub(r'platform: "onnxruntime_onnx"\ndefault_model_filename: "model.onnx"',
                                     'backend: "python"', text))
            shutil.copy(Path(__file__).with_name("ort_standin_model.py"), config.parent / "1" / "model.py")
    proc = _bundled_server(standin, tmp_path, ports[0])
    try:
        client = InferenceServerClient(f"127.0.0.1:{ports[0]}")
        deadline = time.monotonic() + 120
        while not _ready(client) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert client.is_model_ready("mmedge"), (tmp_path / "triton.log").read_text()[-3000:]
        rows = _rows(media_files, SUBSETS)
        inputs = []
        for name, data in rows.items():
            inputs.append(InferInput(name, list(data.shape), "BYTES"))
            inputs[-1].set_data_from_numpy(data)
        logits = client.infer("mmedge", inputs).as_numpy("logits")
        for row, subset in enumerate(SUBSETS):
            np.testing.assert_allclose(softmax(logits)[row], _want(pipe, media_files, subset), atol=1e-5, rtol=0)
        bad = InferInput("image", [1, 1], "BYTES")
        bad.set_data_from_numpy(np.array([[b"not an image"]], dtype=object))
        empty = [InferInput(n, [1, 1], "BYTES") for n in ("text", "audio")]
        for t in empty:
            t.set_data_from_numpy(np.array([[b""]], dtype=object))
        with pytest.raises(InferenceServerException, match="image is not a readable image file"):
            client.infer("mmedge", [bad, *empty])
    finally:
        proc.terminate()
        proc.wait(60)


def _ready(client: object) -> bool:
    try:
        return bool(client.is_model_ready("mmedge"))  # type: ignore[attr-defined]
    except Exception:  # not listening yet
        return False
