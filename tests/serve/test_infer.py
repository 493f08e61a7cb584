"""The served callable over a real Pipeline: batched requests equal Pipeline.predict; a bad one fails alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mmedge.errors import InputError
from mmedge.runtime.pipeline import Pipeline
from mmedge.serve.infer import PipelineModel, served_outputs


@pytest.fixture(scope="module")
def model(tiny_bundle_pristine: Path) -> Iterator[PipelineModel]:
    with Pipeline.from_bundle(tiny_bundle_pristine) as pipe:
        yield PipelineModel(pipe)


def _req(**values: bytes) -> dict[str, np.ndarray]:
    return {k: np.array([[v]], dtype=object) for k, v in values.items()}


def test_several_requests_in_one_call(model: PipelineModel, media_files: dict[str, Path]) -> None:
    png, wav = media_files["image"].read_bytes(), media_files["audio"].read_bytes()
    out = model([_req(text=b"seven"), _req(image=png, audio=wav)])
    for got, want in zip(out, [model.pipeline.predict(text="seven"),
                               model.pipeline.predict(image=media_files["image"], audio=media_files["audio"])],
                         strict=True):
        assert got["label"][0, 0] == want.label.encode() and got["index"][0, 0] == want.index
        assert got["error"][0, 0] == b""
        np.testing.assert_allclose(got["probabilities"][0], list(want.probabilities.values()), atol=1e-6)
    assert {k: v.shape[1:] for k, v in out[0].items()} == {t.name: t.shape for t in served_outputs(10)}


def test_a_bad_request_fails_alone(model: PipelineModel, media_files: dict[str, Path]) -> None:
    bad = {"image": np.array([[b"not an image"], [b""]], dtype=object)}  # two rows: both answer the error
    out = model([_req(text=b"seven"), bad])
    assert out[0]["index"][0, 0] == model.pipeline.predict(text="seven").index and out[0]["error"][0, 0] == b""
    assert out[1]["index"].tolist() == [[-1], [-1]] and out[1]["probabilities"].shape == (2, 10)
    assert all(b"row 0: image is not a readable image file" in e for e in out[1]["error"][:, 0])


def test_only_bad_requests_raise(model: PipelineModel) -> None:
    with pytest.raises(InputError, match="all modalities are absent"):
        model([_req(text=b"")])
    with pytest.raises(InputError, match=r"request 0: .*request 1: "):
        model([_req(text=b""), _req(audio=b"xx")])
