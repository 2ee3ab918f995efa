"""Tokenizers that produce CLS-first, right-padded id tensors.

Three kinds, all with ``pad_id = 0`` and ``cls_id = 1``:

* :class:`ByteTokenizer` - UTF-8 bytes shifted past the specials (as in LRA's byte-level text task).
* :class:`WordTokenizer` - a closed vocabulary of whitespace- or word-split tokens (ListOps, the
  templated bias corpus); unknown tokens map to ``[UNK]``.
* :class:`SubwordTokenizer` - BPE or WordPiece trained here with HF ``tokenizers``.

``encode_batch(texts, max_len)`` prepends CLS, truncates to ``max_len`` ids (CLS included) and pads.
``save(path)`` writes JSON; :func:`load_tokenizer` reads any of them back.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "TOKENIZER_KINDS",
    "ByteTokenizer",
    "SubwordTokenizer",
    "WordTokenizer",
    "build_tokenizer",
    "load_tokenizer",
    "pack",
]

PAD, CLS, UNK = "[PAD]", "[CLS]", "[UNK]"
TRUNCATIONS = ("right", "left", "error")
TOKENIZER_KINDS = ("byte", "word", "bpe", "wordpiece")


def pack(
    sequences: Sequence[Sequence[int] | np.ndarray],
    max_len: int,
    pad_id: int,
    cls_id: int,
    truncation: str = "right",
) -> tuple[Tensor, Tensor]:
    """Prepend ``cls_id`` to each id sequence, cut to ``max_len`` and right-pad with ``pad_id``.

    ``truncation``: ``"right"`` keeps the start, ``"left"`` keeps the end, ``"error"`` raises.
    """
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2:
        raise ValueError(f"max_len must be an int >= 2 (CLS + one token), got {max_len!r}")
    keep = max_len - 1
    ids = np.full((len(sequences), max_len), pad_id, dtype=np.int64)
    ids[:, 0] = cls_id
    lengths = np.empty(len(sequences), dtype=np.int64)
    for row, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.int64)
        if seq.shape[0] > keep:
            if truncation == "error":
                raise ValueError(
                    f"example {row} has {seq.shape[0]} tokens + CLS > max_len={max_len};"
                    " raise max_len or pass truncation='right' or 'left'"
                )
            seq = seq[:keep] if truncation == "right" else seq[-keep:]
        ids[row, 1 : 1 + seq.shape[0]] = seq
        lengths[row] = 1 + seq.shape[0]
    mask = np.arange(max_len)[None, :] < lengths[:, None]
    return torch.from_numpy(ids), torch.from_numpy(mask)


class _Base:
    """Shared behaviour: ``encode_many`` (no specials) -> ``encode_batch`` (CLS, cut, pad)."""

    kind: ClassVar[str] = ""
    pad_id: int = 0
    cls_id: int = 1
    truncation: str = "right"  # default side for encode_batch; a task may set its own
    vocab_size: int

    def encode_many(self, texts: Sequence[str]) -> list[np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def encode_batch(
        self, texts: list[str], max_len: int, truncation: str | None = None
    ) -> tuple[Tensor, Tensor]:
        """(input_ids (n, max_len) long, attention_mask (n, max_len) bool), CLS first.

        ``truncation`` defaults to the tokenizer's ``truncation`` attribute (``"right"``).
        """
        if isinstance(texts, str):
            raise ValueError("encode_batch expects a list of strings, got one str; wrap it: [text]")
        side = self.truncation if truncation is None else truncation
        return pack(self.encode_many(texts), max_len, self.pad_id, self.cls_id, side)

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens per text without CLS (to choose ``max_len`` or count truncations)."""
        return np.array([len(s) for s in self.encode_many(texts)], dtype=np.int64)

    def _state(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write this tokenizer as JSON to ``path``; read it back with :func:`load_tokenizer`."""
        path = Path(path)
        path.write_text(json.dumps({"kind": self.kind, **self._state()}), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> _Base:
        """Read a tokenizer written by :meth:`save` (any kind)."""
        return load_tokenizer(path)


class ByteTokenizer(_Base):
    """UTF-8 bytes: id = byte + 2; pad 0, CLS 1; ``vocab_size`` 258."""

    kind = "byte"
    offset = 2

    def __init__(self) -> None:
        self.vocab_size = 256 + self.offset

    def encode_many(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [
            np.frombuffer(str(t).encode("utf-8"), dtype=np.uint8).astype(np.int64) + self.offset
            for t in texts
        ]

    def decode(self, ids: Iterable[int]) -> str:
        """Text from ids (specials dropped)."""
        data = bytes(int(i) - self.offset for i in ids if int(i) >= self.offset)
        return data.decode("utf-8", errors="replace")

    def _state(self) -> dict[str, Any]:
        return {}


_WORD_RE = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


class WordTokenizer(_Base):
    """A closed vocabulary: ``[PAD]`` 0, ``[CLS]`` 1, ``[UNK]`` 2, then ``tokens`` in order.

    ``split="whitespace"`` splits on spaces only (ListOps: ``[MAX`` is one token); ``"words"``
    splits words and punctuation apart. ``lowercase`` folds case before lookup.
    """

    kind = "word"

    def __init__(
        self, tokens: Sequence[str], split: str = "words", lowercase: bool = False
    ) -> None:
        if split not in ("words", "whitespace"):
            raise ValueError(f"WordTokenizer: split must be 'words' or 'whitespace', got {split!r}")
        self.split = split
        self.lowercase = bool(lowercase)
        self.vocab: list[str] = [PAD, CLS, UNK]
        seen = set(self.vocab)
        for token in tokens:
            token = token.lower() if self.lowercase else token
            if token not in seen:
                seen.add(token)
                self.vocab.append(token)
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self.unk_id = 2
        self.vocab_size = len(self.vocab)

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        split: str = "words",
        lowercase: bool = False,
        max_size: int | None = None,
        min_freq: int = 1,
    ) -> WordTokenizer:
        """Vocabulary of the tokens in ``texts``, most frequent first (ties alphabetical)."""
        probe = cls([], split=split, lowercase=lowercase)
        counts = Counter(tok for text in texts for tok in probe.split_text(text))
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 3)]
        return cls(ranked, split=split, lowercase=lowercase)

    def split_text(self, text: str) -> list[str]:
        """The tokens of ``text`` before lookup."""
        text = text.lower() if self.lowercase else text
        return text.split() if self.split == "whitespace" else _WORD_RE.findall(text)

    def encode_many(self, texts: Sequence[str]) -> list[np.ndarray]:
        index, unk = self.index, self.unk_id
        return [
            np.fromiter((index.get(t, unk) for t in self.split_text(str(text))), dtype=np.int64)
            for text in texts
        ]

    def decode(self, ids: Iterable[int]) -> str:
        """Space-joined tokens (specials dropped)."""
        return " ".join(self.vocab[int(i)] for i in ids if int(i) > 2)

    def _state(self) -> dict[str, Any]:
        return {"tokens": self.vocab[3:], "split": self.split, "lowercase": self.lowercase}


class SubwordTokenizer(_Base):
    """BPE or WordPiece from HF ``tokenizers``; specials ``[PAD]`` 0, ``[CLS]`` 1, ``[UNK]`` 2."""

    kind = "subword"

    def __init__(self, backend: Any, algorithm: str) -> None:
        self.backend = backend
        self.algorithm = algorithm
        self.vocab_size = int(backend.get_vocab_size())
        if backend.token_to_id(PAD) != 0 or backend.token_to_id(CLS) != 1:
            raise ValueError("SubwordTokenizer: backend must map [PAD] to 0 and [CLS] to 1")

    @classmethod
    def train(
        cls, texts: Sequence[str], algorithm: str = "bpe", vocab_size: int = 8000
    ) -> SubwordTokenizer:
        """Train a lowercasing BPE (``"bpe"``) or WordPiece (``"wordpiece"``) model on ``texts``."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, normalizers, pre_tokenizers, trainers

        if algorithm not in ("bpe", "wordpiece"):
            raise ValueError(
                f"SubwordTokenizer: algorithm must be 'bpe' or 'wordpiece', got {algorithm!r}"
            )
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 8:
            raise ValueError(
                f"SubwordTokenizer: vocab_size must be an int >= 8, got {vocab_size!r}"
            )
        if not texts:
            raise ValueError("SubwordTokenizer: no training texts (the train split is empty)")
        specials = [PAD, CLS, UNK]
        if algorithm == "bpe":
            backend = HFTokenizer(models.BPE(unk_token=UNK))
            trainer: Any = trainers.BpeTrainer(
                vocab_size=vocab_size, special_tokens=specials, show_progress=False
            )
        else:
            backend = HFTokenizer(models.WordPiece(unk_token=UNK))
            trainer = trainers.WordPieceTrainer(
                vocab_size=vocab_size, special_tokens=specials, show_progress=False
            )
        backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        backend.train_from_iterator(list(texts), trainer=trainer)
        return cls(backend, algorithm)

    def encode_many(self, texts: Sequence[str]) -> list[np.ndarray]:
        encodings = self.backend.encode_batch([str(t) for t in texts], add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]

    def decode(self, ids: Iterable[int]) -> str:
        """Text from ids (specials dropped)."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=True)

    def _state(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "backend": json.loads(self.backend.to_str())}


def load_tokenizer(path: str | Path) -> ByteTokenizer | WordTokenizer | SubwordTokenizer:
    """Read a tokenizer written by ``save``; ``ValueError`` for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"load_tokenizer: file not found: {path}")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        kind = state["kind"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(
            f"load_tokenizer: {path} is not a tokenizer file written by save()"
        ) from err
    if kind == "byte":
        return ByteTokenizer()
    if kind == "word":
        return WordTokenizer(state["tokens"], split=state["split"], lowercase=state["lowercase"])
    if kind == "subword":
        from tokenizers import Tokenizer as HFTokenizer

        return SubwordTokenizer(
            HFTokenizer.from_str(json.dumps(state["backend"])), state["algorithm"]
        )
    raise ValueError(f"load_tokenizer: unknown tokenizer kind {kind!r} in {path}")


def build_tokenizer(
    kind: str,
    train_texts: Sequence[str],
    vocab_size: int = 8000,
    extra_tokens: Sequence[str] = (),
    where: str = "tokenizer",
) -> ByteTokenizer | WordTokenizer | SubwordTokenizer:
    """A tokenizer of ``kind`` (one of :data:`TOKENIZER_KINDS`) fitted on ``train_texts``.

    ``"word"`` keeps the ``vocab_size`` most frequent words (lowercased) plus ``extra_tokens``.
    """
    if kind == "byte":
        return ByteTokenizer()
    if kind == "word":
        tok = WordTokenizer.from_texts(train_texts, lowercase=True, max_size=vocab_size)
        missing = [t for t in extra_tokens if t.lower() not in tok.index]
        return WordTokenizer(tok.vocab[3:] + missing, lowercase=True) if missing else tok
    if kind in ("bpe", "wordpiece"):
        return SubwordTokenizer.train(train_texts, algorithm=kind, vocab_size=vocab_size)
    raise ValueError(
        f"{where}: unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}"
    )
