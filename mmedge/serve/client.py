"""A small tritonclient wrapper for the served model: build a request from raw bytes, read the answer.

Used by the load test and the tests; docs/serving.md shows the same calls with plain tritonclient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmedge.errors import InputError, MissingDependencyError
from mmedge.serve.decode import INPUTS

PROTOCOLS = ("http", "grpc")


@dataclass
class Answer:
    """The served model's answer for one row."""

    label: str
    index: int
    probabilities: np.ndarray
    error: str


def client_module(protocol: str) -> Any:
    """tritonclient.http or tritonclient.grpc (MissingDependencyError naming the extra)."""
    if protocol not in PROTOCOLS:
        raise InputError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    try:
        import importlib

        return importlib.import_module(f"tritonclient.{protocol}")
    except ImportError as exc:
        raise MissingDependencyError("tritonclient", f"a Triton {protocol} client", "'mmedge[serve]'") from exc


def connect(url: str, protocol: str = "http", **kwargs: Any) -> Any:
    """An InferenceServerClient for `url` (host:port) over `protocol`."""
    return client_module(protocol).InferenceServerClient(url, **kwargs)


def make_inputs(protocol: str, rows: list[dict[str, bytes | str | None]], send_absent: bool = False) -> list[Any]:
    """InferInputs for rows of {text, image, audio}: None/missing → b"" (absent); an input nobody has is omitted."""
    module = client_module(protocol)
    out = []
    for name in INPUTS:
        values = [row.get(name) for row in rows]
        if not send_absent and all(v is None for v in values):
            continue  # an omitted optional input: absent in every row
        data = np.array([[v.encode("utf-8") if isinstance(v, str) else (v or b"")] for v in values], dtype=np.object_)
        tensor = module.InferInput(name, list(data.shape), "BYTES")
        tensor.set_data_from_numpy(data)
        out.append(tensor)
    return out


def infer(client: Any, protocol: str, rows: list[dict[str, bytes | str | None]], model: str = "mmedge",
          send_absent: bool = False) -> list[Answer]:
    """Send rows as one request; the answers in row order (tritonclient raises on a server error)."""
    result = client.infer(model, make_inputs(protocol, rows, send_absent))
    labels, errors = result.as_numpy("label").reshape(-1), result.as_numpy("error").reshape(-1)
    index, probs = result.as_numpy("index").reshape(-1), result.as_numpy("probabilities")
    return [Answer(bytes(labels[i]).decode(), int(index[i]), probs[i], bytes(errors[i]).decode())
            for i in range(len(labels))]
