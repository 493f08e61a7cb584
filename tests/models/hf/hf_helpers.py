"""Helpers of the hf: encoder tests: tiny random Hugging Face folders, one-modality manifests, CLI steps."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmedge.data.sample import Dataset

WORDS = ["a", "digit", "that", "is", "power", "of", "two", "hint", "not", "prime", "and", "smaller", "than", "five",
         "even", "odd", "larger", "number", "it", "the", "zero", "one", "three", "four", "six", "seven", "eight",
         "nine"]


def save_tokenizer(folder: Path) -> int:
    """A BERT-style WordPiece tokenizer.json built with `tokenizers` (specials, letters, words); vocab size."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    letters = sorted({c for w in WORDS for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", *letters, *(f"##{c}" for c in letters),
             *sorted(set(WORDS))]
    ids = {t: i for i, t in enumerate(dict.fromkeys(vocab))}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    tok.save(str(folder / "tokenizer.json"))
    return len(ids)


def save_model(model: object, folder: Path) -> Path:
    """save_pretrained without the library's chatter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(str(folder))  # type: ignore[attr-defined]
    return folder


def make_bert(folder: Path) -> Path:
    """BertModel: hidden 32, 2 layers, 2 heads, + its own tokenizer.json."""
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True)
    vocab = save_tokenizer(folder)
    torch.manual_seed(0)
    return save_model(BertModel(BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=2, intermediate_size=64,
                                           max_position_embeddings=64)), folder)


def make_vit(folder: Path) -> Path:
    """ViTModel 32×32, patch 8, hidden 32, 2 layers + ViTImageProcessor (bilinear, mean/std 0.5)."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    save_model(ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64)), folder)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5, 0.4, 0.3],
                      image_std=[0.25, 0.2, 0.3]).save_pretrained(str(folder))
    return folder


def make_convnext(folder: Path) -> Path:
    """ConvNextModel with two tiny stages + ConvNextImageProcessor (shortest edge 32, bicubic)."""
    import torch
    from transformers import ConvNextConfig, ConvNextImageProcessor, ConvNextModel

    torch.manual_seed(0)
    save_model(ConvNextModel(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=32)),
               folder)
    ConvNextImageProcessor(size={"shortest_edge": 32}).save_pretrained(str(folder))
    return folder


def make_wav2vec2(folder: Path, hubert: bool = False) -> Path:
    """Wav2Vec2Model (or HubertModel): 3 conv layers (stride 80), hidden 32, 2 layers + its feature extractor."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    cls, cfg_cls = (HubertModel, HubertConfig) if hubert else (Wav2Vec2Model, Wav2Vec2Config)
    torch.manual_seed(0)
    config = cfg_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
                     num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, mask_time_length=4)
    save_model(cls(config), folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(str(folder))
    return folder


def make_whisper(folder: Path) -> Path:
    """WhisperModel d_model 32, 2 encoder layers, 80 mels, 50 positions (1 s) + WhisperFeatureExtractor."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(0)
    config = WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=80,
                           max_source_positions=50, max_target_positions=16, vocab_size=64, pad_token_id=0,
                           bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, begin_suppress_tokens=None,
                           suppress_tokens=None)
    save_model(WhisperModel(config), folder)
    WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=1,
                            n_fft=400).save_pretrained(str(folder))
    return folder


MAKERS = {"bert": make_bert, "vit": make_vit, "convnext": make_convnext, "wav2vec2": make_wav2vec2,
          "whisper": make_whisper}


EPOCHS = "2"
ROWS = {"train": 48, "val": 24, "test": 24}


def write_manifest(root: Path, modality: str, splits: dict[str, Dataset]) -> Path:
    """A JSONL manifest of built-in digits samples holding only `modality` (files for images and audio)."""
    import json

    import numpy as np
    import soundfile as sf
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, n in ROWS.items():
        ds = splits[split]
        have = [s for s in ds.samples if getattr(s, modality) is not None][:n]
        for i, s in enumerate(have):
            value: object = s.text
            if modality == "image":
                value = f"{split}_{i}.png"
                Image.fromarray(np.asarray(s.image, dtype=np.uint8)).save(root / str(value))
            elif modality == "audio":
                value = f"{split}_{i}.wav"
                sf.write(str(root / str(value)), np.asarray(s.audio, dtype=np.float32), int(s.sample_rate or 0))
            rows.append({modality: value, "label": ds.labels[int(s.label or 0)], "split": split})
    path = root / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def mix_manifests(manifests: dict[str, Path], modalities: tuple[str, ...], out: Path) -> Path:
    """One manifest of the given one-modality manifests' rows (each row carries one modality)."""
    import json

    rows = []
    for modality in modalities:
        path = manifests[modality]
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if modality != "text":
                row[modality] = str(path.parent / row[modality])
            rows.append(row)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def run_cli(*args: object) -> str:
    """`mmedge ARGS…` in-process; its output, after asserting exit code 0."""
    from cli_helpers import invoke

    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return str(result.output)


def train_cli(out: Path, data: Path, modality: str, encoder: str, *extra: object) -> Path:
    """`mmedge train` of a one-modality model on `data` with `--{modality}-encoder encoder` (small, quick)."""
    run_cli("train", "--data", data, "--out", out, "--modalities", modality, f"--{modality}-encoder", encoder,
            "--epochs", EPOCHS, "--json", *extra)
    return out


def export_and_quantize(run: Path, bundle: Path) -> Path:
    """`mmedge export` (fp32 parity is checked by the exporter) then `mmedge quantize` fp16 and int8."""
    run_cli("export", run, "--out", bundle, "--samples", "16")  # data: the run's manifest
    for precision in ("fp16", "int8"):
        run_cli("quantize", bundle, "--precision", precision, "--samples", "16")
    return bundle


def eval_cli(bundle: Path, data: Path) -> list[dict[str, Any]]:
    """`mmedge eval --json` at fp32, fp16 and int8 on the manifest's test split."""
    import json

    out = run_cli("eval", bundle, "--data", data, "--split", "test", "--precision", "fp32,fp16,int8", "--batch",
                  "32", "--json")
    rows, _ = json.JSONDecoder().raw_decode(out[out.index("["):])  # stderr notes may follow (CliRunner mixes them)
    return rows  # type: ignore[no-any-return]


def check_eval(rows: list[dict[str, Any]]) -> None:
    """Three precisions evaluated on every test row; fp16 agrees with fp32, int8 agreement measured."""
    assert [r["precision"] for r in rows] == ["fp32", "fp16", "int8"], rows
    for row in rows:
        assert row["subsets"]["all"]["n"] == ROWS["test"], row
    assert rows[1]["precision_report"]["agreement_with_fp32"] >= 0.9, rows[1]["precision_report"]
    assert 0.0 <= rows[2]["precision_report"]["agreement_with_fp32"] <= 1.0


def pretrained_state(folder: Path) -> dict[str, Any]:
    """The folder's weights as transformers loads them (v5 renames some keys on load)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return dict(AutoModel.from_pretrained(str(folder)).state_dict())
