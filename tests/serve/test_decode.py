"""Request bytes → Samples: the served decode equals mmedge's file readers, absence and bad bytes are clear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmedge.data.audio import load_audio, read_seconds
from mmedge.data.image import load_image
from mmedge.errors import InputError
from mmedge.serve.decode import decode_audio, decode_image, decode_request, decode_text


def test_image_bytes_decode_like_the_file(media_files: dict[str, Path]) -> None:
    got = decode_image(media_files["image"].read_bytes())
    assert got is not None
    np.testing.assert_array_equal(got, load_image(media_files["image"]))


def test_audio_bytes_decode_like_the_file(media_files: dict[str, Path]) -> None:
    got = decode_audio(media_files["audio"].read_bytes(), clip_seconds=0.5)
    assert got is not None
    wave, rate = load_audio(media_files["audio"], read_seconds(0.5))  # what preprocessing reads from a file
    assert got[1] == rate == 16000 and len(got[0]) == round(16000 * read_seconds(0.5))
    np.testing.assert_array_equal(got[0], wave)


def test_served_audio_is_preprocessed_like_the_file(media_files: dict[str, Path]) -> None:
    """A 3 s file, loud only after 1.5 s: served bytes get the same energy-centred 1 s cut as Pipeline.predict."""
    from mmedge.data.preprocess import Preprocessor
    from mmedge.specs import AudioSpec, Preprocessing

    pre = Preprocessor(["audio"], Preprocessing(audio=AudioSpec(8000, 1.0)))  # as the pipeline builds it
    [sample] = decode_request({"audio": np.array([[media_files["audio"].read_bytes()]], dtype=object)}, 1.0)
    served = pre.audio(sample.audio, sample.sample_rate)  # type: ignore[arg-type]
    from_file = pre.audio(media_files["audio"], None)
    np.testing.assert_array_equal(served, from_file)
    head = pre.audio(load_audio(media_files["audio"], 1.0)[0], 16000)  # what reading only clip_seconds gave
    assert np.abs(served).mean() > 5 * np.abs(head).mean()  # the cut holds the loud part after 1.5 s


def test_empty_elements_are_absent() -> None:
    assert decode_text(b"") is None and decode_image(b"") is None and decode_audio(b"", 1.0) is None
    [sample] = decode_request({"text": np.array([[b"  "]], dtype=object), "image": np.array([[b""]], dtype=object)},
                              1.0)
    assert not any(sample.present().values())


def test_rows_and_omitted_inputs(media_files: dict[str, Path]) -> None:
    png = media_files["image"].read_bytes()
    samples = decode_request({"text": np.array([[b"seven"], [b""]], dtype=object),
                              "image": np.array([[b""], [png]], dtype=object)}, 1.0)
    assert [s.present() for s in samples] == [{"text": True, "image": False, "audio": False},
                                              {"text": False, "image": True, "audio": False}]
    assert samples[0].text == "seven"


@pytest.mark.parametrize(("inputs", "message"), [
    ({"text": np.array([[b"ok"], [b"\xff"]], dtype=object)}, "row 1: text is not valid UTF-8"),
    ({"image": np.array([[b"GIF89a garbage"]], dtype=object)}, "row 0: image is not a readable image file"),
    ({"audio": np.array([[b"RIFF garbage"]], dtype=object)}, "row 0: audio is not a readable audio file"),
    ({"video": np.array([[b"x"]], dtype=object)}, "unknown input(s) ['video']"),
    ({"text": np.array([[b"a"], [b"b"]], dtype=object), "image": np.array([[b""]], dtype=object)},
     "different row counts"),
    ({}, "the request has no rows"),
])
def test_bad_requests(inputs: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InputError) as info:
        decode_request(inputs, 1.0)
    assert message in str(info.value)


def test_image_byte_cap(monkeypatch: pytest.MonkeyPatch, media_files: dict[str, Path]) -> None:
    monkeypatch.setenv("MMEDGE_MAX_IMAGE_BYTES", "10")
    with pytest.raises(InputError, match="image too large"):
        decode_image(media_files["image"].read_bytes())
