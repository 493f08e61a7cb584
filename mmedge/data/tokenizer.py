"""WordPiece tokenizers through the `tokenizers` library: train one on the data, or load a file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mmedge.errors import InputError
from mmedge.io_utils import atomic_path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def train_wordpiece(texts: Iterable[str], vocab_size: int, out_path: str | Path) -> Path:
    """Train a BERT-style WordPiece tokenizer on `texts` and save tokenizer.json atomically."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=1)
    tok.train_from_iterator(sorted(set(texts)) or ["empty"], trainer=trainer)  # sorted: deterministic
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")),
                                                 ("[SEP]", tok.token_to_id("[SEP]"))])
    with atomic_path(out_path) as tmp:
        tok.save(str(tmp))
    return Path(out_path)


class TextTokenizer:
    """Loads tokenizer.json and encodes batches to int64 input_ids / attention_mask."""

    def __init__(self, path: str | Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        path = Path(path)
        if not path.is_file():
            raise InputError(f"tokenizer file not found: {path}")
        self.tokenizer = Tokenizer.from_file(str(path))
        # tokenizer.json files may carry their own padding/truncation (MiniLM's pads to 128): set ours.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_length)
        self.max_length = max_length
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    @property
    def vocab_size(self) -> int:
        """Size of the vocabulary including special tokens."""
        return int(self.tokenizer.get_vocab_size())

    def encode(self, texts: list[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Encode to (input_ids, attention_mask) int64 [B, L], L = longest (or `pad_to`)."""
        encodings = self.tokenizer.encode_batch(texts)
        length = pad_to or max((len(e.ids) for e in encodings), default=1)
        ids = np.full((len(texts), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.int64)
        for i, enc in enumerate(encodings):
            n = min(len(enc.ids), length)
            ids[i, :n] = enc.ids[:n]
            mask[i, :n] = 1
        return ids, mask
