"""Result types shared by every task: :class:`Split`, :class:`TaskData`, :class:`Tokenizer`.

All tasks return token ids that are right-padded to one width ``L`` (``TaskData.max_len``) with
``pad_id``, start with a CLS token, and carry a boolean ``attention_mask`` (True = real token).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["Split", "TaskData", "Tokenizer", "derive_seed"]


@runtime_checkable
class Tokenizer(Protocol):
    """What a task's tokenizer offers: encode new texts the way the task's data was encoded."""

    vocab_size: int
    pad_id: int
    cls_id: int

    def encode_batch(self, texts: list[str], max_len: int) -> tuple[Tensor, Tensor]:
        """(input_ids long (n, max_len), attention_mask bool (n, max_len)), CLS first."""
        ...


@dataclass
class Split:
    """One split of a task: padded ids, mask, labels, and optional raw texts and group attributes.

    ``groups`` maps an attribute name (e.g. ``"gender"``) to one string per example.
    """

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    texts: list[str] | None = None
    groups: dict[str, list[str]] | None = None

    def __post_init__(self) -> None:
        ids, mask, labels = self.input_ids, self.attention_mask, self.labels
        if not isinstance(ids, Tensor) or ids.dtype != torch.long or ids.dim() != 2:
            raise ValueError(
                f"Split.input_ids must be a 2-D torch.long tensor (n, L), got "
                f"{getattr(ids, 'dtype', type(ids).__name__)}"
                f" shape {tuple(getattr(ids, 'shape', ()))}"
            )
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != ids.shape:
            raise ValueError(
                "Split.attention_mask must be a bool tensor shaped like input_ids"
                f" {tuple(ids.shape)},"
                f" got {getattr(mask, 'dtype', type(mask).__name__)}"
                f" shape {tuple(getattr(mask, 'shape', ()))}"
            )
        if (
            not isinstance(labels, Tensor)
            or labels.dtype != torch.long
            or labels.shape != (ids.shape[0],)
        ):
            raise ValueError(
                f"Split.labels must be a 1-D torch.long tensor of length {ids.shape[0]}, got "
                f"{getattr(labels, 'dtype', type(labels).__name__)}"
                f" shape {tuple(getattr(labels, 'shape', ()))}"
            )
        n = ids.shape[0]
        if self.texts is not None and len(self.texts) != n:
            raise ValueError(f"Split.texts has {len(self.texts)} entries for {n} examples")
        for key, values in (self.groups or {}).items():
            if len(values) != n:
                raise ValueError(
                    f"Split.groups[{key!r}] has {len(values)} entries for {n} examples"
                )

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def lengths(self) -> Tensor:
        """Number of real tokens per example (CLS included)."""
        return self.attention_mask.sum(dim=1)

    def subset(self, indices: Sequence[int] | Tensor) -> Split:
        """A new split with the examples at ``indices`` (in that order)."""
        index = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        picked = index.tolist()
        return Split(
            input_ids=self.input_ids[index],
            attention_mask=self.attention_mask[index],
            labels=self.labels[index],
            texts=None if self.texts is None else [self.texts[i] for i in picked],
            groups=None
            if self.groups is None
            else {k: [v[i] for i in picked] for k, v in self.groups.items()},
        )


@dataclass
class TaskData:
    """A loaded task: three splits plus what a model needs to be built for it.

    ``max_len`` is the padded width ``L`` of every split (CLS included). ``info`` records
    provenance: generator parameters or file paths, sizes, seed, measured statistics.
    """

    name: str
    train: Split
    validation: Split
    test: Split
    num_classes: int
    vocab_size: int
    pad_id: int
    max_len: int
    label_names: list[str]
    tokenizer: Tokenizer | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.label_names) != self.num_classes:
            raise ValueError(
                f"task {self.name!r}: {len(self.label_names)} label_names for"
                f" num_classes={self.num_classes}"
            )
        for split_name in ("train", "validation", "test"):
            split = getattr(self, split_name)
            if split.input_ids.shape[1] != self.max_len:
                raise ValueError(
                    f"task {self.name!r}: {split_name} width {split.input_ids.shape[1]}"
                    f" differs from max_len={self.max_len}"
                )
            if len(split) and (
                int(split.labels.min()) < 0 or int(split.labels.max()) >= self.num_classes
            ):
                raise ValueError(
                    f"task {self.name!r}: {split_name} labels outside [0, {self.num_classes})"
                )
            if len(split) and int(split.input_ids.max()) >= self.vocab_size:
                raise ValueError(
                    f"task {self.name!r}: {split_name} has token ids"
                    f" >= vocab_size={self.vocab_size}"
                )

    @property
    def splits(self) -> dict[str, Split]:
        """The three splits by name."""
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def summary(self) -> dict[str, Any]:
        """Sizes and shapes in one small dict (for logs and results files)."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "vocab_size": self.vocab_size,
            "max_len": self.max_len,
            "sizes": {k: len(v) for k, v in self.splits.items()},
            "mean_length": {
                k: round(float(v.lengths.float().mean()), 2) if len(v) else 0.0
                for k, v in self.splits.items()
            },
        }


def derive_seed(seed: int, *keys: object) -> int:
    """A stable 63-bit seed from ``seed`` and labels (same inputs, same seed, on any platform)."""
    text = "/".join([str(int(seed)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def check_int(name: str, value: object, task: str, minimum: int = 0) -> int:
    """Validate an integer parameter; ``ValueError`` naming the task and parameter otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{task}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{task}: {name} must be >= {minimum}, got {value}")
    return value


def check_fraction(name: str, value: object, task: str, *, open_right: bool = False) -> float:
    """Validate a float in [0, 1] (or [0, 1) with ``open_right``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{task}: {name} must be a number in [0, 1], got {value!r}")
    value = float(value)
    upper_ok = value < 1.0 if open_right else value <= 1.0
    if not (value >= 0.0 and upper_ok):
        bound = "[0, 1)" if open_right else "[0, 1]"
        raise ValueError(f"{task}: {name} must be in {bound}, got {value}")
    return value
