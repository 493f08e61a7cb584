"""The Python-backend preprocessing model of an exported Triton repository (mmedge's own preprocessing).

The repository's `<name>_preprocess/1/model.py` only imports `TritonPythonModel` from here, so the
Triton Python environment needs mmedge installed (torch-free: numpy, tokenizers, pillow, soundfile).
Inputs `text`, `image`, `audio` (BYTES [1] per row; an empty element is absent) become the encoders'
inputs and the `present` mask, exactly as `Pipeline` preprocesses; a bad request gets its own error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.data.preprocess import Batch, Preprocessor
from mmedge.data.sample import Sample
from mmedge.errors import InputError
from mmedge.serve.decode import INPUTS, decode_request

SPEC_FILE = "preprocessing.json"  # {modalities, preprocessing, requires_all}, next to model.py


def check_present(samples: list[Sample], modalities: list[str], requires_all: bool) -> None:
    """InputError for a row with no modality, one the model lacks, or a missing one the fusion needs."""
    for i, s in enumerate(samples):
        have = [m for m, ok in s.present().items() if ok]
        extra = [m for m in have if m not in modalities]
        if extra:
            raise InputError(f"row {i}: this model has no {', '.join(extra)} encoder (its modalities: "
                             f"{', '.join(modalities)}); send an empty element instead")
        if not have:
            raise InputError(f"row {i}: all modalities are absent; give at least one of {', '.join(modalities)}")
        if requires_all and len(have) < len(modalities):
            raise InputError(f"row {i}: this model's fusion needs every modality ({', '.join(modalities)})")


def feeds(batch: Batch, modalities: list[str]) -> dict[str, np.ndarray]:
    """A preprocessed batch → the ensemble tensors: every encoder input plus `present`."""
    out = {name: array for m in modalities for name, array in batch.feeds[m].items()}
    out["present"] = batch.present.astype(np.float32)
    return out


class RepositoryPreprocessor:
    """Request arrays → encoder feeds, from the spec file written by `mmedge export-triton`."""

    def __init__(self, folder: Path) -> None:
        spec = json.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
        self.modalities: list[str] = list(spec["modalities"])
        self.requires_all = bool(spec.get("requires_all", False))
        self.preprocessor = Preprocessor(self.modalities, spec["preprocessing"], root=folder)
        audio = self.preprocessor.spec.audio
        self.clip_seconds = audio.clip_seconds if audio is not None else None

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One request (arrays [rows, 1] of BYTES) → encoder feeds; InputError with the reason."""
        samples = decode_request(inputs, self.clip_seconds)
        check_present(samples, self.modalities, self.requires_all)
        # Fixed text length: rows of different requests then share one shape and batch together.
        return feeds(self.preprocessor.batch(samples, fixed_text_length=True), self.modalities)


class TritonPythonModel:
    """Triton's Python-backend entry points (initialize, execute)."""

    def initialize(self, args: dict[str, Any]) -> None:
        """Load the spec and tokenizer from this model version's folder."""
        folder = Path(args["model_repository"]) / str(args["model_version"])
        self.run = RepositoryPreprocessor(folder)

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; a bad request gets its own error (the others are unaffected)."""
        import triton_python_backend_utils as pb_utils  # only inside Triton's Python stub

        responses = []
        for request in requests:
            inputs = {}
            for name in INPUTS:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is not None:
                    inputs[name] = tensor.as_numpy()
            try:
                out = self.run(inputs)
            except InputError as exc:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc))))
                continue
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(value)) for name, value in out.items()]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
