"""Result types shared by every task: :class:`Split`, :class:`TaskData`, :class:`Tokenizer`.

Text tasks return token ids that are right-padded to one width ``L`` (``TaskData.max_len``) with
``pad_id``, start with a CLS token, and carry a boolean ``attention_mask`` (True = real token).
Image tasks carry ``pixel_values`` (float, (n, channels, height, width), no mask: every pixel is
real); audio tasks carry ``input_features`` (log-mel frames, float (n, L, num_mel_bins)) with an
``attention_mask`` (True = real frame). The field names are the encoder's input names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["Split", "TaskData", "TaskUnavailable", "Tokenizer", "derive_seed"]


class TaskUnavailable(RuntimeError):  # noqa: N818 - reads as a state, like TimeoutError
    """A task cannot be built on this machine (e.g. a program it needs is not installed); suites
    record its cells as skipped with this message."""


@runtime_checkable
class Tokenizer(Protocol):
    """What a task's tokenizer offers: encode new texts the way the task's data was encoded."""

    vocab_size: int
    pad_id: int
    cls_id: int

    def encode_batch(self, texts: list[str], max_len: int) -> tuple[Tensor, Tensor]:
        """(input_ids long (n, max_len), attention_mask bool (n, max_len)), CLS first."""
        ...


def _describe(x: object) -> str:
    return f"{getattr(x, 'dtype', type(x).__name__)} shape {tuple(getattr(x, 'shape', ()))}"


@dataclass
class Split:
    """One split of a task: inputs, mask, labels, and optional raw texts and group attributes.

    Exactly one input is set: ``input_ids`` (text), ``pixel_values`` (image) or
    ``input_features`` (audio); see the module doc. ``groups`` maps an attribute name (e.g.
    ``"gender"``) to one string per example.
    """

    input_ids: Tensor | None
    attention_mask: Tensor | None
    labels: Tensor
    texts: list[str] | None = None
    groups: dict[str, list[str]] | None = None
    pixel_values: Tensor | None = None
    input_features: Tensor | None = None

    @property
    def modality(self) -> str:
        """``text``, ``image`` or ``audio``: which input the split carries."""
        if self.pixel_values is not None:
            return "image"
        return "audio" if self.input_features is not None else "text"

    @property
    def inputs(self) -> Tensor:
        """The split's input tensor, whatever the modality."""
        return {"text": self.input_ids, "image": self.pixel_values,
                "audio": self.input_features}[self.modality]  # type: ignore[return-value]

    def __post_init__(self) -> None:
        given = [k for k in ("input_ids", "pixel_values", "input_features")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "Split needs exactly one of input_ids (text), pixel_values (image) or "
                f"input_features (audio), got {given or 'none'}"
            )
        if self.modality != "text":
            self._check_media()
            return
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

    def _check_media(self) -> None:
        x, mask, labels, name = self.inputs, self.attention_mask, self.labels, self.modality
        field_name = "pixel_values" if name == "image" else "input_features"
        dims = 4 if name == "image" else 3
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != dims:
            layout = "(n, channels, height, width)" if dims == 4 else "(n, frames, num_mel_bins)"
            raise ValueError(f"Split.{field_name} must be a float {layout} tensor, got "
                             f"{_describe(x)}")
        n = x.shape[0]
        if name == "image" and mask is not None:
            raise ValueError("Split.attention_mask must be None for images (every pixel is real)")
        if name == "audio" and (
            not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != x.shape[:2]
        ):
            raise ValueError(f"Split.attention_mask must be a bool (n, frames) tensor "
                             f"{tuple(x.shape[:2])}, got {_describe(mask)}")
        if not isinstance(labels, Tensor) or labels.dtype != torch.long or labels.shape != (n,):
            raise ValueError(f"Split.labels must be a 1-D torch.long tensor of length {n}, got "
                             f"{_describe(labels)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def lengths(self) -> Tensor:
        """Number of real positions per example (tokens with CLS, frames, or pixels)."""
        if self.attention_mask is None:
            pixels = int(self.inputs.shape[2] * self.inputs.shape[3])
            return torch.full((len(self),), pixels, dtype=torch.long)
        return self.attention_mask.sum(dim=1)

    def subset(self, indices: Sequence[int] | Tensor) -> Split:
        """A new split with the examples at ``indices`` (in that order)."""
        index = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        picked = index.tolist()

        def take(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[index]

        return Split(
            input_ids=take(self.input_ids),
            attention_mask=take(self.attention_mask),
            pixel_values=take(self.pixel_values),
            input_features=take(self.input_features),
            labels=self.labels[index],
            texts=None if self.texts is None else [self.texts[i] for i in picked],
            groups=None
            if self.groups is None
            else {k: [v[i] for i in picked] for k, v in self.groups.items()},
        )


@dataclass
class TaskData:
    """A loaded task: three splits plus what a model needs to be built for it.

    ``max_len`` is the padded width ``L`` of every split (CLS included; frames for audio; pixels,
    height x width, for images). Image and audio tasks have no vocabulary: ``vocab_size`` 1 and
    ``pad_id`` 0. ``info`` records provenance: generator parameters or file paths, sizes, seed,
    measured statistics.
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
            if split.modality != self.modality:
                raise ValueError(f"task {self.name!r}: {split_name} holds {split.modality} inputs,"
                                 f" train holds {self.modality}")
            if split.inputs.shape[1:] != self.train.inputs.shape[1:] and self.modality != "text":
                raise ValueError(
                    f"task {self.name!r}: {split_name} inputs are shaped "
                    f"{tuple(split.inputs.shape[1:])}, train's {tuple(self.train.inputs.shape[1:])}"
                )
            shape = split.inputs.shape
            width = int(shape[2] * shape[3]) if self.modality == "image" else int(shape[1])
            if width != self.max_len:
                raise ValueError(
                    f"task {self.name!r}: {split_name} width {width}"
                    f" differs from max_len={self.max_len}"
                )
            if len(split) and (
                int(split.labels.min()) < 0 or int(split.labels.max()) >= self.num_classes
            ):
                raise ValueError(
                    f"task {self.name!r}: {split_name} labels outside [0, {self.num_classes})"
                )
            if self.modality == "text" and len(split) and (
                int(split.input_ids.max()) >= self.vocab_size
            ):
                raise ValueError(
                    f"task {self.name!r}: {split_name} has token ids"
                    f" >= vocab_size={self.vocab_size}"
                )

    @property
    def modality(self) -> str:
        """``text``, ``image`` or ``audio`` (the splits' input)."""
        return self.train.modality

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's input shape: () for text, (C, H, W) for images, (L, mels) for audio."""
        return () if self.modality == "text" else tuple(self.train.inputs.shape[1:])

    @property
    def splits(self) -> dict[str, Split]:
        """The three splits by name."""
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def summary(self) -> dict[str, Any]:
        """Sizes and shapes in one small dict (for logs and results files)."""
        return {
            "name": self.name,
            "modality": self.modality,
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
