"""BERT-family `hf:` text encoder: the real CLI trains → exports → quantizes → evaluates; LoRA; tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_helpers import check_eval, eval_cli, export_and_quantize, pretrained_state, train_cli


@pytest.fixture(scope="module")
def bert_bundle(hf_models: dict[str, Path], manifests: dict[str, Path],
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text-only model on the tiny BERT folder (mode full), exported and quantized."""
    root = tmp_path_factory.mktemp("hf_text")
    run = train_cli(root / "run", manifests["text"], "text", f"hf:{hf_models['bert']}", "--mode", "full")
    return export_and_quantize(run, root / "bundle")


def test_bert_bundle_records_folder_tokenizer_and_parity(bert_bundle: Path, hf_models: dict[str, Path]) -> None:
    """bundle.json: the folder's own tokenizer.json (same bytes), its identity, fp32 parity ≤ 1e-4, fp16 + int8."""
    meta = json.loads((bert_bundle / "bundle.json").read_text())
    text = meta["preprocessing"]["text"]
    assert (bert_bundle / text["tokenizer"]).read_bytes() == (hf_models["bert"] / "tokenizer.json").read_bytes()
    assert text["hf"]["family"] == "bert" and text["hf"]["model_type"] == "bert"
    assert text["hf"]["path"] == str(hf_models["bert"].resolve())
    arts = meta["components"]["text"]["artifacts"]
    assert arts["fp32"]["parity"]["max_abs_diff"] <= 1e-4
    assert {"fp16", "int8"} <= set(arts)
    assert arts["int8"]["settings"]["family"] == "transformer"


def test_bert_bundle_matches_the_hf_model(bert_bundle: Path, hf_models: dict[str, Path]) -> None:
    """The exported text graph = trained projection ∘ masked mean of the fine-tuned BertModel (ORT vs torch)."""
    import onnxruntime as ort
    from safetensors.torch import load_file
    from transformers import BertModel

    from mmedge.data.tokenizer import TextTokenizer

    tok = TextTokenizer(bert_bundle / "tokenizer.json", 16)
    ids, mask = tok.encode(["a digit that is even", "hint: not a prime and smaller than five"])
    state = load_file(str(bert_bundle / "torch" / "model.safetensors"))
    prefix = "encoders.text.backbone.model."
    bert = BertModel.from_pretrained(str(hf_models["bert"]), add_pooling_layer=False).eval()
    missing, _ = bert.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                                      strict=False)
    assert not [k for k in missing if not k.startswith("pooler")]
    with torch.no_grad():
        hidden = bert(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
        weights = torch.from_numpy(mask).unsqueeze(-1).float()
        pooled = (hidden * weights).sum(1) / weights.sum(1)
        expected = pooled @ state["encoders.text.proj.weight"].T + state["encoders.text.proj.bias"]
    session = ort.InferenceSession(str(bert_bundle / "text.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    assert np.abs(got - expected.numpy()).max() <= 1e-4


def test_bert_eval_every_precision(bert_bundle: Path, manifests: dict[str, Path]) -> None:
    """`mmedge eval` runs fp32, fp16 and int8 of the bundle on the manifest's test rows."""
    check_eval(eval_cli(bert_bundle, manifests["text"]))


def test_bert_lora_trains_adapters_and_merges(hf_models: dict[str, Path], manifests: dict[str, Path],
                                              tmp_path: Path) -> None:
    """--mode lora: the BERT weights change (adapters merged into plain weights), and the run exports."""
    from safetensors.torch import load_file

    from mmedge.exporters.export_run import export_run

    run = train_cli(tmp_path / "run", manifests["text"], "text", f"hf:{hf_models['bert']}", "--mode", "lora",
                    "--lora-rank", "2")
    state = load_file(str(run / "model.safetensors"))
    assert not [k for k in state if "lora_" in k]
    original = pretrained_state(hf_models["bert"])
    key = "encoder.layer.0.attention.self.query.weight"
    trained = state[f"encoders.text.backbone.model.{key}"]
    assert not torch.equal(trained, original[key])  # the merged adapters moved the base weight
    frozen = "embeddings.word_embeddings.weight"  # no Linear: LoRA leaves it as it was
    assert torch.equal(state[f"encoders.text.backbone.model.{frozen}"], original[frozen])
    bundle = export_run(run, tmp_path / "bundle", samples=8)
    assert bundle.components["text"].artifacts["fp32"].parity["max_abs_diff"] <= 1e-4


def test_real_minilm_folder_equals_the_packaged_encoder() -> None:
    """hf:<the installed MiniLM-L6 folder> (real weights) pools exactly as the packaged 'minilm' backbone."""
    from mmedge.data.tokenizer import TextTokenizer
    from mmedge.models.hf.folder import hf_folder
    from mmedge.models.hf.text import HFTextEncoder
    from mmedge.models.pretrained import MiniLMEncoder, minilm_folder

    folder = minilm_folder()
    ours = HFTextEncoder(hf_folder(f"hf:{folder}", "text"), embed_dim=8, max_length=16).eval()
    packaged = MiniLMEncoder(embed_dim=8, max_length=16).eval()
    ids, mask = TextTokenizer(folder / "tokenizer.json", 16).encode(["a prime number and even", "hint: not odd"])
    with torch.no_grad():
        a = ours.backbone(torch.from_numpy(ids), torch.from_numpy(mask))
        b = packaged.backbone(torch.from_numpy(ids), torch.from_numpy(mask))
    assert a.shape == (2, 384) and torch.allclose(a, b, atol=1e-5)
    assert len(ours.blocks()) == len(packaged.blocks()) == 7
