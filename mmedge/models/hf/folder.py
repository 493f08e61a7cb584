"""`hf:PATH` encoder names: parse, check the folder, name its family (torch-free: reads JSON only).

A family is a group of `model_type`s (config.json) that share one encoder class in mmedge: the same
inputs, pooling, block layout and in-graph preprocessing. Anything else is refused up front with one
line naming the supported families, before torch or transformers is imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmedge.errors import InputError

PREFIX = "hf:"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
PREPROCESSOR_FILE = "preprocessor_config.json"

# modality → family → the config.json model_types it covers (each family is one encoder class)
FAMILIES: dict[str, dict[str, tuple[str, ...]]] = {
    "text": {"bert": ("bert", "roberta", "xlm-roberta", "electra", "distilbert")},
    "image": {"vit": ("vit", "deit"), "convnext": ("convnext", "convnextv2")},
    "audio": {"wav2vec2": ("wav2vec2", "hubert", "wavlm", "data2vec-audio"), "whisper": ("whisper",)},
}
# files besides config.json each family needs (preprocessing comes from the folder, never a guess)
NEEDS: dict[str, str] = {"text": TOKENIZER_FILE, "image": PREPROCESSOR_FILE, "audio": PREPROCESSOR_FILE}


def is_hf(name: str) -> bool:
    """True for an encoder name of the form 'hf:PATH'."""
    return name.startswith(PREFIX)


def supported(modality: str) -> str:
    """One line listing the families (and their model_types) supported for `modality`."""
    fams = FAMILIES.get(modality, {})
    return "; ".join(f"{fam} ({', '.join(types)})" for fam, types in fams.items())


@dataclass(frozen=True)
class HFFolder:
    """A checked local Hugging Face model folder for one modality."""

    modality: str
    path: Path
    family: str
    model_type: str
    config: dict[str, Any]

    def preprocessor(self) -> dict[str, Any]:
        """The folder's preprocessor_config.json (image processor / feature extractor settings)."""
        return read_json(self.path / PREPROCESSOR_FILE)

    def describe(self) -> dict[str, Any]:
        """Identity recorded in run.json and bundle.json: path as given, family and model_type."""
        return {"path": str(self.path), "family": self.family, "model_type": self.model_type}


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; InputError when it is missing or malformed."""
    if not path.is_file():
        raise InputError(f"{path.parent}: no {path.name} (save it with the model: save_pretrained(PATH))")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable JSON file ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def hf_folder(name: str, modality: str) -> HFFolder:
    """Check `hf:PATH` for `modality`: folder, config.json, a supported model_type, the preprocessing file."""
    if not is_hf(name):
        raise InputError(f"{modality} encoder '{name}' is not of the form hf:PATH")
    if modality not in FAMILIES:
        raise InputError(f"no Hugging Face encoder families for modality '{modality}'")
    raw = name[len(PREFIX):]
    if not raw.strip():
        raise InputError(f"--{modality}-encoder hf: needs a folder (hf:PATH); supported: {supported(modality)}")
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise InputError(f"--{modality}-encoder {name}: folder not found: {path}")
    config = read_json(path / CONFIG_FILE)
    model_type = str(config.get("model_type", ""))
    family = next((f for f, types in FAMILIES[modality].items() if model_type in types), None)
    if family is None:
        raise InputError(f"{path}: model_type '{model_type or '(none)'}' is not a supported {modality} encoder "
                         f"family; supported: {supported(modality)}")
    needed = path / NEEDS[modality]
    if not needed.is_file():
        raise InputError(f"{path}: a {family} {modality} encoder needs {needed.name} in the folder "
                         "(save the tokenizer/processor with the model: .save_pretrained(PATH))")
    return HFFolder(modality, path.resolve(), family, model_type, config)
