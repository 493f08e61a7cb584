"""Real preprocessed inputs per component, written in the formats Polygraphy and trtexec read.

Encoders get real samples of the dataset that carry their modality, through mmedge's own
preprocessing; the fusion head gets the fp32 encoders' outputs (ONNX Runtime) on real samples
with their real `present` mask — exactly what the Pipeline feeds it. Outside tools then run every
artifact on in-distribution data instead of their own random inputs, which for int8 lie outside
the calibration range and make every comparison fail.

- Polygraphy `--load-inputs`: a JSON list of feed dicts, one per iteration, arrays encoded as
  Polygraphy's `polygraphy.json` does (`{"array": base64(np.save bytes), "polygraphy_class": "ndarray"}`);
  written here without importing Polygraphy (a dev tool, not a runtime dependency).
- trtexec `--loadInputs=name:file`: one raw little-endian file per input, per feed.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.bundle import Bundle
from mmedge.data.manifest import resolve_dataset
from mmedge.data.sample import Sample
from mmedge.errors import InputError
from mmedge.exporters.onnx_meta import TRT_PRECISIONS, shape_text, trtexec_shape_flags
from mmedge.io import atomic_path, write_json
from mmedge.specs import HEAD, embedding_name

log = logging.getLogger(__name__)
Feed = dict[str, np.ndarray]
DEFAULT_DATA = "digits"
POLYGRAPHY_FILE, FP32_OUTPUTS, MANIFEST = "polygraphy_inputs.json", "fp32_outputs.json", "manifest.json"


@dataclass(frozen=True)
class Tol:
    """A Polygraphy comparison tolerance vs the fp32 artifact: --atol/--rtol on --check-error-stat."""

    atol: float
    rtol: float
    stat: str

    def flags(self) -> list[str]:
        """Polygraphy's command-line flags for this tolerance."""
        return ["--atol", f"{self.atol:g}", "--rtol", f"{self.rtol:g}", "--check-error-stat", self.stat]


# The project's stated tolerances vs fp32 (docs/outside_tools.md), per component kind: encoders output
# embeddings (|x| ~ 0.1), the head logits (|x| ~ 1-10). fp16 per element; int8 on the mean error, because
# some elements next to a quantization step always move by a step. The cpu and TensorRT int8 flavours share one.
TOLERANCES: dict[str, dict[str, Tol]] = {
    "encoder": {"fp16": Tol(5e-3, 5e-3, "elemwise"), "int8": Tol(5e-2, 0.0, "mean")},
    "head": {"fp16": Tol(2e-2, 2e-2, "elemwise"), "int8": Tol(0.25, 0.0, "mean")},
}


def tolerance(kind: str, precision: str) -> Tol:
    """The stated tolerance of a (component kind, precision key) vs fp32: 'int8-trt' is an 'int8'."""
    table = TOLERANCES["head" if kind == "head" else "encoder"]
    tol = table.get("int8" if precision.startswith("int8") else precision)
    if tol is None:
        raise InputError(f"no stated Polygraphy tolerance for precision '{precision}' (known: fp16, int8, int8-trt)")
    return tol


@dataclass
class ComponentInputs:
    """Real feeds of one component (one batch each) and how many samples they hold."""

    component: str
    feeds: list[Feed]
    samples: int


def pick_samples(bundle: Bundle, data: str | None, split: str, count: int) -> list[Sample]:
    """The candidate samples of `split`: those carrying any of the bundle's modalities (all, for product fusion)."""
    spec = data or str(bundle.provenance.get("data") or DEFAULT_DATA)
    dataset = resolve_dataset(spec, split, split_seed=bundle.split_seed)
    need = all if bundle.requires_all_modalities else any  # product fusion refuses samples missing one
    samples = [s for s in dataset.samples if need(s.present().get(m) for m in bundle.modalities)]
    if not samples:
        raise InputError(f"dataset '{spec}' split '{split}' has no usable sample for {', '.join(bundle.modalities)}")
    return samples


def real_feeds(bundle: Bundle, data: str | None = None, split: str = "val", count: int = 8, batch: int = 1,
               threads: int | None = None) -> dict[str, ComponentInputs]:
    """Up to `count` real samples per component in feeds of `batch` (encoders: samples carrying the modality)."""
    from mmedge.runtime.pipeline import Pipeline

    if count < 1 or batch < 1:
        raise InputError(f"--count and --batch must be >= 1, got {count} and {batch}")
    pool = pick_samples(bundle, data, split, count)
    out: dict[str, ComponentInputs] = {}
    with Pipeline.from_bundle(bundle, precision="fp32", threads=threads) as pipe:
        for m in pipe.modalities:
            chosen = [s for s in pool if s.present()[m]][:count]
            if not chosen:
                raise InputError(f"no sample of '{split}' carries {m}: cannot export real {m} inputs")
            feeds = [pipe.preprocess(chosen[i : i + batch]).feeds[m] for i in range(0, len(chosen), batch)]
            out[m] = ComponentInputs(m, feeds, len(chosen))
            if len(chosen) < count:
                log.warning("only %d sample(s) of '%s' carry %s (asked for %d)", len(chosen), split, m, count)
        chosen = pool[:count]
        head: list[Feed] = []
        for i in range(0, len(chosen), batch):
            prepared = pipe.preprocess(chosen[i : i + batch])
            emb = pipe.encode(prepared, concurrent=False)
            head.append({**{embedding_name(m): emb[m] for m in pipe.modalities},
                         "present": prepared.present.astype(np.float32)})
        out[HEAD] = ComponentInputs(HEAD, head, len(chosen))
    for name, comp in out.items():
        _check_dtypes(bundle, name, comp.feeds)
    return out


def _check_dtypes(bundle: Bundle, component: str, feeds: list[Feed]) -> None:
    """Every feed has exactly the component's inputs, each in its bundle dtype (no silent casts later)."""
    specs = {s.name: s for s in bundle.components[component].inputs}
    for feed in feeds:
        if set(feed) != set(specs):
            raise InputError(f"{component}: feed has {sorted(feed)}, the graph takes {sorted(specs)}")
        wrong = [f"{k} {v.dtype} (graph: {specs[k].dtype})" for k, v in feed.items() if v.dtype != specs[k].dtype]
        if wrong:
            raise InputError(f"{component}: preprocessed dtypes differ from the graph: {', '.join(wrong)}")


def encode_array(array: np.ndarray) -> dict[str, str]:
    """One array as Polygraphy's JSON encodes it (np.save bytes, base64)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return {"array": base64.b64encode(buf.getvalue()).decode(), "polygraphy_class": "ndarray"}


def decode_array(obj: dict[str, str]) -> np.ndarray:
    """Inverse of `encode_array`."""
    return np.asarray(np.load(io.BytesIO(base64.b64decode(obj["array"])), allow_pickle=False))


def write_polygraphy_inputs(feeds: list[Feed], path: Path) -> Path:
    """The JSON list of feeds that `polygraphy run --load-inputs` reads (one iteration per feed)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps([{k: encode_array(v) for k, v in feed.items()} for feed in feeds]))
    return path


def load_polygraphy_inputs(path: Path) -> list[Feed]:
    """Read a file written by `write_polygraphy_inputs`."""
    return [{k: decode_array(v) for k, v in feed.items()} for feed in json.loads(Path(path).read_text())]


def write_raw(feed: Feed, folder: Path) -> dict[str, Path]:
    """One little-endian raw file per input (trtexec --loadInputs), atomically; {input: path}."""
    paths = {}
    for name, array in feed.items():
        path = folder / f"{name}.raw"
        with atomic_path(path) as tmp:
            np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tofile(tmp)
        paths[name] = path
    return paths


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))


def component_commands(bundle: Bundle, component: str, folder: Path, raw: dict[str, Path],
                       feed: Feed) -> dict[str, str]:
    """Polygraphy (fp32 saved, every other precision compared at its tolerance) and trtexec command lines."""
    comp = bundle.components[component]
    inputs, reference = folder / POLYGRAPHY_FILE, folder / FP32_OUTPUTS
    cmds: dict[str, str] = {}
    for key in comp.artifacts:
        path = bundle.artifact_path(component, key)
        base = ["polygraphy", "run", _q(path), "--onnxrt", "--load-inputs", _q(inputs)]
        if key == "fp32":
            cmds["polygraphy fp32"] = " ".join([*base, "--save-outputs", _q(reference)])
        else:
            tol = tolerance(comp.kind, key)
            cmds[f"polygraphy {key}"] = " ".join([*base, "--load-outputs", _q(reference), *tol.flags()])
    shapes = "--shapes=" + ",".join(f"{k}:{shape_text(v.shape)}" for k, v in feed.items())
    load = "--loadInputs=" + ",".join(f"{k}:{_q(p)}" for k, p in raw.items())
    for key in (k for k in TRT_PRECISIONS if k in comp.artifacts):
        path = bundle.artifact_path(component, key)
        cmds[f"trtexec {key}"] = " ".join(["trtexec", f"--onnx={_q(path)}", "--stronglyTyped",
                                           *trtexec_shape_flags(comp.inputs), shapes, load])
    return cmds


def export_inputs(bundle: Bundle | str | Path, out: str | Path, data: str | None = None, split: str = "val",
                  count: int = 8, batch: int = 1, threads: int | None = None) -> dict[str, Any]:
    """Write real inputs of every component under `out` (+ manifest.json); return the manifest."""
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    feeds = real_feeds(bundle, data, split, count, batch, threads)
    components: dict[str, Any] = {}
    for name, comp in feeds.items():
        folder = out / name
        write_polygraphy_inputs(comp.feeds, folder / POLYGRAPHY_FILE)
        raws = [write_raw(feed, folder / "trtexec" / str(i)) for i, feed in enumerate(comp.feeds)]
        components[name] = {
            "samples": comp.samples, "feeds": len(comp.feeds),
            "shapes": [{k: list(v.shape) for k, v in feed.items()} for feed in comp.feeds],
            "polygraphy_inputs": str(folder / POLYGRAPHY_FILE),
            "trtexec_inputs": [{k: str(p) for k, p in raw.items()} for raw in raws],
            "commands": component_commands(bundle, name, folder, raws[0], comp.feeds[0]),
        }
    manifest = {"bundle": str(bundle.root), "data": data or bundle.provenance.get("data") or DEFAULT_DATA,
                "split": split, "count": count, "batch": batch, "out": str(out),
                "tolerances": {kind: {k: vars(t) for k, t in table.items()} for kind, table in TOLERANCES.items()},
                "components": components}
    write_json(out / MANIFEST, manifest)
    return manifest
