"""Preprocessor.batch and select_rows pinned exactly (mutants of mmedge/data/preprocess.py that parity misses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmedge.bundle import Bundle
from mmedge.data.preprocess import Preprocessor, select_rows
from mmedge.data.sample import Sample


def test_batch_labels_mask_and_text_padding(tiny_bundle_pristine: Path):
    bundle = Bundle.load(tiny_bundle_pristine)
    pre = Preprocessor(bundle.modalities, bundle.preprocessing, root=bundle.root)
    samples = [Sample(3, text="one two"), Sample(5, image=np.zeros((4, 4), np.uint8)),
               Sample(1, text="seven", audio=np.zeros(100, np.float32), sample_rate=8000)]
    batch = pre.batch(samples)
    assert batch.labels is not None and batch.labels.dtype == np.int64 and batch.labels.tolist() == [3, 5, 1]
    assert batch.present.dtype == np.float32 and batch.present.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    expected = pre.text(["one two", "", "seven"])  # an absent text row is the empty string's encoding
    for key in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(batch.feeds["text"][key], expected[key])
    assert batch.feeds["text"]["input_ids"].shape[1] < bundle.preprocessing.text.max_length
    fixed = pre.batch(samples, fixed_text_length=True)
    assert fixed.feeds["text"]["input_ids"].shape[1] == bundle.preprocessing.text.max_length
    assert pre.batch([Sample(None, text="one"), Sample(2, text="two")]).labels is None


def test_select_rows_trims_text_to_the_longest_selected_row():
    feed = {"input_ids": np.arange(12).reshape(3, 4),
            "attention_mask": np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])}
    out = select_rows(feed, np.array([1]))
    assert out["input_ids"].tolist() == [[4]] and out["attention_mask"].tolist() == [[1]]
    assert select_rows(feed, np.array([2]))["attention_mask"].shape == (1, 1)  # at least one column
    both = select_rows(feed, np.array([0, 1]))
    assert both["attention_mask"].shape == (2, 3) and both["input_ids"][1].tolist() == [4, 5, 6]
    image = {"pixel_values": np.arange(6.0).reshape(3, 2)}
    assert select_rows(image, np.array([2, 0]))["pixel_values"].tolist() == [[4.0, 5.0], [0.0, 1.0]]
