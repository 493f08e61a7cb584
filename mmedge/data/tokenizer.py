"""WordPiece tokenizers through the `tokenizers` library: train one on the data, or load a file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mmedge.errors import InputError
from mmedge.io import atomic_path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def build_vocab(texts: Iterable[str], vocab_size: int) -> list[str]:
    """A deterministic WordPiece vocabulary: specials, every character (+ its ## form), then words by frequency.

    The `tokenizers` WordPiece trainer breaks ties in a run-dependent order, so the same data could give
    different ids (and a different trained model); counting words ourselves keeps runs reproducible.
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    pieces = [*chars, *(f"##{c}" for c in chars)]
    budget = max(vocab_size - len(SPECIAL_TOKENS) - len(pieces), 0)
    ranked = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:budget]
    return [*SPECIAL_TOKENS, *pieces, *ranked]


def train_wordpiece(texts: Iterable[str], vocab_size: int, out_path: str | Path) -> Path:
    """Build a BERT-style WordPiece tokenizer from `texts` and save tokenizer.json atomically."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = build_vocab(texts, vocab_size)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))])
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
        for text in texts:
            if not isinstance(text, str):
                raise InputError(f"text must be a str, got {type(text).__name__}")
        encodings = self.tokenizer.encode_batch(texts)
        length = pad_to or max((len(e.ids) for e in encodings), default=1)
        ids = np.full((len(texts), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.int64)
        for i, enc in enumerate(encodings):
            n = min(len(enc.ids), length)
            ids[i, :n] = enc.ids[:n]
            mask[i, :n] = 1
        return ids, mask
