"""`mmedge export-triton`: a native Triton model repository from a bundle, written atomically.

One model per component (`onnxruntime_onnx` on KIND_CPU, or `tensorrt_plan` on KIND_GPU with the
bundle's built engines), a Python-backend preprocessing model running mmedge's own preprocessing, and
an ensemble `<name>` wiring preprocessing → encoders → fusion head with the `present` mask. Every file
copied from the bundle is hash-verified first; the repository appears only once it is complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmedge.bundle import Bundle
from mmedge.errors import EngineError, InputError
from mmedge.precision import Precision, artifact_key
from mmedge.serve import pbtxt
from mmedge.serve.decode import INPUTS
from mmedge.serve.triton_preprocess import SPEC_FILE
from mmedge.specs import HEAD, TensorSpec

SHIM = '"""mmedge preprocessing for Triton (see mmedge.serve.triton_preprocess)."""\n\n' \
       "from mmedge.serve.triton_preprocess import TritonPythonModel  # noqa: F401\n"


@dataclass(frozen=True)
class RepositoryOptions:
    """What to export and how Triton batches it."""

    precision: str = "fp32"
    platform: str = "onnxruntime"  # onnxruntime | tensorrt
    max_batch: int | None = None  # None: the bundle's exported batch range
    max_queue_delay_us: int = 1000
    instances: int = 1
    name: str = "mmedge"
    gpu: str | None = None  # tensorrt: the GPU whose engines to take, when engines for several were built

    def check(self, bundle: Bundle) -> int:
        """InputError for a bad setting; the max batch size to use."""
        if self.platform not in pbtxt.PLATFORMS:
            raise InputError(f"--platform must be one of {', '.join(pbtxt.PLATFORMS)}, got {self.platform!r}")
        if self.instances < 1 or self.max_queue_delay_us < 0:
            raise InputError("--instances must be at least 1 and --max-queue-delay-us at least 0")
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise InputError(f"--name may hold letters, digits, '_' and '-' only, got {self.name!r}")
        limit = bundle_max_batch(bundle)
        if self.max_batch is not None and not 1 <= self.max_batch <= limit:
            raise InputError(f"--max-batch must be 1..{limit} (the bundle's exported batch range), "
                             f"got {self.max_batch}")
        return self.max_batch or limit


def bundle_max_batch(bundle: Bundle) -> int:
    """The largest batch every component accepts (the smallest max of their 'batch' ranges)."""
    return min(int(s.ranges.get("batch", (1, 1, 1))[2]) for c in bundle.components.values() for s in c.inputs
               if s.shape and s.shape[0] == "batch")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def engine_target(record: dict[str, Any]) -> str:
    """'<GPU> / TensorRT <version>': what a plan was built for (it runs nowhere else)."""
    return f"{record.get('gpu') or 'unknown GPU'} / TensorRT {record.get('tensorrt') or '?'}"


def choose_target(bundle: Bundle, parts: dict[str, str], gpu: str | None) -> str:
    """The one GPU/TensorRT target of the components' engines (`gpu` picks among several); EngineError else."""
    found = {engine_target(r) for comp, precision in parts.items()
             for r in bundle.engines.get(comp, {}).get(artifact_key(precision, "tensorrt"), {}).values()}
    if gpu is not None:
        found = {t for t in found if t.split(" / ")[0].lower() == gpu.lower()}
        if not found:
            raise EngineError(f"bundle {bundle.root} has no TensorRT engines built on GPU '{gpu}'; build them on "
                              f"that GPU with: mmedge build {bundle.root}")
    if len(found) > 1:
        raise EngineError(f"bundle {bundle.root} holds TensorRT engines for several targets "
                          f"({'; '.join(sorted(found))}); a plan runs only where it was built, so pick one GPU "
                          "with --gpu"
                          + (" (and keep engines of one TensorRT version)" if gpu else ""))
    return found.pop() if found else ""


def engine_file(bundle: Bundle, component: str, precision: str, target: str | None = None
                ) -> tuple[Path, dict[str, Any]]:
    """The newest TensorRT plan of a component built for `target` (sha256-checked) + its record; EngineError if none."""
    key = artifact_key(precision, "tensorrt")
    records = [r for r in bundle.engines.get(component, {}).get(key, {}).values()
               if target is None or engine_target(r) == target]
    if not records:
        where = f" built for {target}" if target else ""
        raise EngineError(f"bundle {bundle.root} has no {key} TensorRT engine{where} for '{component}'; build it on "
                          f"the target GPU with: mmedge build {bundle.root} --precision {key} --components {component}")
    record = max(records, key=lambda r: str(r.get("built_at", "")))
    path = bundle.path(str(record["plan"]))
    if not path.is_file() or _sha256(path) != record["sha256"]:
        raise EngineError(f"engine {path} is missing or altered since it was built; rebuild with: mmedge build "
                          f"{bundle.root} --precision {key} --components {component} --force")
    return path, record


def preprocess_tensors(bundle: Bundle) -> tuple[list[pbtxt.Fields], list[pbtxt.Fields]]:
    """Inputs (BYTES text/image/audio) and outputs (every encoder input + present) of the preprocessing model."""
    inputs = [pbtxt.tensor(name, "bytes", [1]) for name in INPUTS]
    outputs = [pbtxt.spec_tensor(s) for m in bundle.modalities for s in bundle.components[m].inputs]
    outputs.append(pbtxt.spec_tensor(_present(bundle)))
    return inputs, outputs


def _present(bundle: Bundle) -> TensorSpec:
    return next(s for s in bundle.components[HEAD].inputs if s.name == "present")


def model_names(bundle: Bundle, name: str) -> dict[str, str]:
    """Repository model name per part: `<name>_preprocess`, `<name>_<component>`."""
    return {"preprocess": f"{name}_preprocess", **{c: f"{name}_{c}" for c in [*bundle.modalities, HEAD]}}


def ensemble_steps(bundle: Bundle, names: dict[str, str]) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """preprocess → each encoder → fusion head; tensors are named after the graph inputs/outputs."""
    pre_out = [s.name for m in bundle.modalities for s in bundle.components[m].inputs] + ["present"]
    steps = [(names["preprocess"], {n: n for n in INPUTS}, {n: n for n in pre_out})]
    for m in bundle.modalities:
        comp = bundle.components[m]
        steps.append((names[m], {s.name: s.name for s in comp.inputs}, {s.name: s.name for s in comp.outputs}))
    head = bundle.components[HEAD]
    steps.append((names[HEAD], {s.name: s.name for s in head.inputs}, {s.name: s.name for s in head.outputs}))
    return steps


def write_models(bundle: Bundle, root: Path, opts: RepositoryOptions, max_batch: int,
                 target: str | None = None) -> dict[str, str]:
    """Every model folder under `root` (tensorrt: the plans built for `target`); {model name: source or role}."""
    names, kind = model_names(bundle, opts.name), pbtxt.KINDS[opts.platform]
    settings = pbtxt.batching(max_batch, opts.max_queue_delay_us, opts.instances, kind)
    written: dict[str, str] = {}
    backend = "tensorrt" if opts.platform == "tensorrt" else "onnxruntime"  # int8 → that backend's int8 flavour
    for comp, key in Precision.parse(opts.precision).resolve(bundle, backend).items():
        folder = root / names[comp] / "1"
        folder.mkdir(parents=True)
        spec = bundle.components[comp]
        if opts.platform == "tensorrt":
            src, _ = engine_file(bundle, comp, key, target)
        else:
            src = bundle.artifact_path(comp, key)  # confined and sha256-verified
        shutil.copyfile(src, folder / pbtxt.model_file(opts.platform))
        (folder.parent / "config.pbtxt").write_text(
            pbtxt.component_config(names[comp], opts.platform, spec.inputs, spec.outputs, settings), encoding="utf-8")
        written[names[comp]] = src.name
    _write_preprocess(bundle, root / names["preprocess"], max_batch, opts)
    written[names["preprocess"]] = "python backend (mmedge.serve.triton_preprocess)"
    _write_ensemble(bundle, root / opts.name, max_batch, names)
    written[opts.name] = "ensemble"
    return written


def _write_preprocess(bundle: Bundle, folder: Path, max_batch: int, opts: RepositoryOptions) -> None:
    version = folder / "1"
    version.mkdir(parents=True)
    (version / "model.py").write_text(SHIM, encoding="utf-8")
    spec = bundle.preprocessing.to_json()
    if bundle.preprocessing.text is not None:  # the verified tokenizer, next to the spec
        tok = bundle.verified_path(bundle.preprocessing.text.tokenizer, "preprocessing.text.tokenizer")
        shutil.copyfile(tok, version / "tokenizer.json")
        spec["text"]["tokenizer"] = "tokenizer.json"
    payload = {"modalities": list(bundle.modalities), "requires_all": bundle.requires_all_modalities,
               "preprocessing": spec, "labels": list(bundle.labels)}
    (version / SPEC_FILE).write_text(json.dumps(payload, indent=2), encoding="utf-8")
    inputs, outputs = preprocess_tensors(bundle)
    # Preprocessing runs on CPU whatever the platform: it decodes files and tokenizes.
    settings = pbtxt.batching(max_batch, opts.max_queue_delay_us, opts.instances, "KIND_CPU")
    (folder / "config.pbtxt").write_text(pbtxt.python_config(folder.name, inputs, outputs, settings), encoding="utf-8")


def _write_ensemble(bundle: Bundle, folder: Path, max_batch: int, names: dict[str, str]) -> None:
    (folder / "1").mkdir(parents=True)  # Triton wants a version folder, even empty, for an ensemble
    inputs = [pbtxt.tensor(name, "bytes", [1]) for name in INPUTS]
    outputs = [pbtxt.spec_tensor(s) for s in bundle.components[HEAD].outputs]
    text = pbtxt.ensemble_config(folder.name, max_batch, inputs, outputs, ensemble_steps(bundle, names))
    (folder / "config.pbtxt").write_text(text, encoding="utf-8")


def export_repository(bundle: str | Path | Bundle, out: str | Path, opts: RepositoryOptions) -> dict[str, Any]:
    """Write the repository at `out` (which must not exist) atomically; a summary for the CLI."""
    loaded = Bundle.coerce(bundle)
    max_batch = opts.check(loaded)
    out = Path(out)
    if out.exists():
        raise InputError(f"{out} already exists; choose a new --out folder (a model repository is written whole)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        target = None
        if opts.platform == "tensorrt":
            target = choose_target(loaded, Precision.parse(opts.precision).resolve(loaded, "tensorrt"), opts.gpu)
        models = write_models(loaded, tmp, opts, max_batch, target)
        (tmp / "README.md").write_text(readme(loaded, opts, max_batch, models, target), encoding="utf-8")
        tmp.rename(out)  # the commit point: the repository appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"repository": str(out), "models": list(models), "ensemble": opts.name, "platform": opts.platform,
            "precision": str(opts.precision), "max_batch": max_batch, "command": serve_command(out)}


def serve_command(out: Path) -> str:
    """The tritonserver command line for the repository."""
    return f"tritonserver --model-repository {out.resolve()}"


def readme(bundle: Bundle, opts: RepositoryOptions, max_batch: int, models: dict[str, str],
           target: str | None = None) -> str:
    """README.md of the repository: what is in it, which GPU/TensorRT its plans need, how to run and call it."""
    rows = "\n".join(f"| `{name}` | {src} |" for name, src in models.items())
    gpu_note = (f"\nThe TensorRT plans were built for **{target}** and run only on that GPU model with that "
                "TensorRT version (rebuild elsewhere with `mmedge build`).\n" if target else "")
    labels = ", ".join(bundle.labels)
    return f"""# Triton model repository for `{bundle.name}` (written by mmedge export-triton)

Platform: `{pbtxt.PLATFORMS[opts.platform]}` ({pbtxt.KINDS[opts.platform]}), precision `{opts.precision}`,
max batch {max_batch}, dynamic batching (max queue delay {opts.max_queue_delay_us} µs), {opts.instances}
instance(s) per model. Modalities: {', '.join(bundle.modalities)}. Labels (logit order): {labels}.

| model | from |
| --- | --- |
{rows}

## Run

From this folder (the preprocessing model runs on Triton's Python backend and imports mmedge, so
install it in the server's Python: `pip install mmedge`, torch-free; or put it on `PYTHONPATH`):

    tritonserver --model-repository $PWD

or in NVIDIA's container (add `pip install mmedge` to the image first):

    docker run --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v $PWD:/models \\
        nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository /models
{gpu_note}
## Call

Send `text`, `image` and `audio` as BYTES tensors of shape [rows, 1] (UTF-8 text; encoded image and
audio files). All three inputs are required by the ensemble: an empty element (b"") means that
modality is absent for that row. The output `logits` [rows, {len(bundle.labels)}]: softmax → probabilities,
argmax → label index. See docs/serving.md in mmedge for a tritonclient example.
"""
