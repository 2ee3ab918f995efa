"""``media``: image or audio classification from a local folder or a hub dataset (HF ``datasets``).

Local folders use the ``datasets`` builders ``imagefolder`` / ``audiofolder``: one sub-folder per
class (``DIR/cat/1.png``), or a ``metadata.csv``/``metadata.jsonl`` with a label column; top-level
``train/``, ``test/`` (and ``validation/``) folders become those splits. Missing splits are held
out of train, seeded, as for text (:mod:`harness.data.text`). A hub ``dataset`` (e.g. ``cifar10``,
``speech_commands:v0.02``) needs a network; its image or audio column is found from its features.

Images become float pixels ``(n, channels, H, W)`` in [0, 1] resized to ``image_size`` (grayscale
by default, as in LRA's Image task; ``channels=3`` keeps colour). Audio is read without the
``datasets`` audio decoder (it needs torchcodec and FFmpeg): files are decoded with ``soundfile``
(WAV, FLAC, OGG), resampled to ``sample_rate`` and turned into standardized log-mel frames
(:mod:`harness.data.audio`), cut or padded to ``max_frames``.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.data.audio import MelParams, read_audio, stack_features
from harness.data.base import Split, TaskData, check_fraction, check_int, derive_seed
from harness.data.images import to_pixels
from harness.data.modality import declare_modality
from harness.data.registry import register_task
from harness.data.text import (
    SPLITS,
    _fill_missing_splits,
    _label_map,
    _load_hub,
    _quiet_datasets,
    _restore,
    _sample,
    _take,
)

__all__ = ["DATA_FORMATS", "load_media", "read_folder"]

DATA_FORMATS = ("imagefolder", "audiofolder")
_SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation",
                "val": "validation", "dev": "validation", "test": "test"}


def read_folder(data_dir: str | Path, data_format: str, cache_dir: str | None = None) -> dict[
    str, Any
]:
    """``{split: Dataset}`` of a local image/audio folder through the ``datasets`` builder."""
    if data_format not in DATA_FORMATS:
        raise ValueError(f"media: data_format must be one of {DATA_FORMATS}, got {data_format!r}")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise ValueError(f"media: data_dir {path} is not a folder")
    datasets, was_disabled = _quiet_datasets()
    try:
        kwargs: dict[str, Any] = {"data_dir": str(path), "cache_dir": cache_dir}
        if data_format == "audiofolder":
            kwargs["features"] = _audio_path_features(path, datasets)
        try:
            loaded = datasets.load_dataset(data_format, **kwargs)
        except Exception as err:
            raise ValueError(f"media: cannot read {path} as {data_format}: {err}") from None
    finally:
        _restore(datasets, was_disabled)
    return dict(loaded)


_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def _audio_path_features(path: Path, datasets: Any) -> Any:
    """Features that keep audio as file paths: ``datasets``' Audio feature encodes through
    torchcodec (FFmpeg), which this harness does not need; files are read with soundfile."""
    files = [p for p in path.rglob("*") if p.suffix.lower() in _AUDIO_SUFFIXES]
    if any(p.name.startswith("metadata.") for p in path.rglob("metadata.*")):
        raise ValueError(f"media: {path} has a metadata file; audio folders are read by class "
                         "sub-folder (DIR/[train/]CLASS/clip.wav) here")
    parents = {p.parent for p in files}
    bad = sorted(str(p) for p in parents if p == path or p.name.lower() in _SPLIT_NAMES)
    if not files or bad:
        where = f" (files directly in {', '.join(bad)})" if bad else ""
        raise ValueError(f"media: {path} needs audio files in one sub-folder per class, e.g. "
                         f"{path}/yes/1.wav or {path}/train/yes/1.wav{where}")
    names = sorted({p.name for p in parents})
    return datasets.Features({"audio": datasets.Value("string"),
                              "label": datasets.ClassLabel(names=names)})


def _media_column(ds: Any, wanted: str | None, kind: str) -> str:
    import datasets

    feature_type = datasets.Image if kind == "image" else datasets.Audio
    names = list(ds.column_names)
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"media: column {wanted!r} not found; columns: {', '.join(names)}")
        return wanted
    if kind == "audio" and "audio" in names and not isinstance(ds.features["audio"],
                                                                  feature_type):
        return "audio"  # a local folder read as file paths
    found = [n for n, f in ds.features.items() if isinstance(f, feature_type)]
    if not found:
        raise ValueError(f"media: no {kind} column in the dataset (columns: {', '.join(names)}); "
                         f"pass the {kind} column's name")
    return found[0]


def _label_column(ds: Any, wanted: str | None) -> str:
    import datasets

    names = list(ds.column_names)
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"media: label_column {wanted!r} not found; columns: "
                             f"{', '.join(names)}")
        return wanted
    if "label" in names:
        return "label"
    found = [n for n, f in ds.features.items() if isinstance(f, datasets.ClassLabel)]
    if not found:
        raise ValueError(f"media: no label column (columns: {', '.join(names)}); pass "
                         "label_column, or put each class in its own sub-folder")
    return found[0]


def _modality(ds: Any, data_format: str | None) -> str:
    import datasets

    if data_format is not None:
        return "image" if data_format == "imagefolder" else "audio"
    kinds = {type(f) for f in ds.features.values()}
    if datasets.Image in kinds:
        return "image"
    if datasets.Audio in kinds:
        return "audio"
    raise ValueError(f"media: the dataset has no image or audio column (features: "
                     f"{', '.join(ds.features)})")


def _decode_audio(value: dict[str, Any] | str, sample_rate: int) -> np.ndarray:
    """A file path or an undecoded ``datasets`` Audio value (path and/or bytes) -> waveform."""
    if isinstance(value, str):
        return read_audio(value, sample_rate)
    data = value.get("bytes")
    source = BytesIO(data) if data else value.get("path")
    if source is None:
        raise ValueError("media: an audio row has neither bytes nor a path")
    return read_audio(source, sample_rate)  # type: ignore[arg-type]


@register_task("media")
@declare_modality("image", "audio")
def load_media(
    *,
    data_dir: str | None = None,
    data_format: str | None = None,
    dataset: str | Sequence[str] | None = None,
    media_column: str | None = None,
    label_column: str | None = None,
    image_size: int = 32,
    channels: int = 1,
    sample_rate: int = 16000,
    n_mels: int = 40,
    hop_ms: float = 10.0,
    win_ms: float = 25.0,
    max_frames: int = 101,
    val_fraction: float = 0.1,
    max_train: int | None = None,
    max_eval: int | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
) -> TaskData:
    """Image or audio classification from ``data_dir`` (with ``data_format``) or a hub
    ``dataset`` (module doc). The modality follows the data: ``imagefolder`` or an Image column
    gives pixels, ``audiofolder`` or an Audio column log-mel frames."""
    task = "media"
    if (data_dir is None) == (dataset is None):
        raise ValueError("media: pass exactly one of data_dir= (a local folder, with "
                         "data_format imagefolder or audiofolder) or dataset= (a hub name)")
    check_int("image_size", image_size, task, 2)
    check_int("max_frames", max_frames, task, 2)
    check_int("seed", seed, task)
    val_fraction = check_fraction("val_fraction", val_fraction, task, open_right=True)
    if val_fraction <= 0:
        raise ValueError("media: val_fraction must be > 0 to hold out missing splits from train")
    for name, cap in (("max_train", max_train), ("max_eval", max_eval)):
        if cap is not None:
            check_int(name, cap, task, 1)
    mel = MelParams(sample_rate=sample_rate, n_mels=n_mels, win_ms=win_ms, hop_ms=hop_ms)
    mel.check(task)
    if data_dir is not None:
        if data_format is None:
            raise ValueError("media: data_dir needs data_format: imagefolder or audiofolder")
        loaded = read_folder(data_dir, data_format, cache_dir)
        source: dict[str, Any] = {"data_dir": str(data_dir), "data_format": data_format}
    else:
        hub, name = _load_hub(dataset, cache_dir)  # type: ignore[arg-type]
        loaded = hub
        source = {"dataset": name, "hub_splits": list(hub)}
    splits_in: dict[str, Any] = {}
    for split, ds in loaded.items():
        canonical = _SPLIT_NAMES.get(split.lower())
        if canonical and canonical not in splits_in:
            splits_in[canonical] = ds
    if "train" not in splits_in:
        raise ValueError(f"media: no train split (splits: {', '.join(loaded)}); put the data in "
                         "class sub-folders, or in train/ and test/")
    first = splits_in["train"]
    kind = _modality(first, data_format if data_dir is not None else None)
    column = _media_column(first, media_column, kind)
    label_col = _label_column(first, label_column)
    feature = first.features.get(label_col)
    class_names = list(getattr(feature, "names", None) or []) or None

    raw: dict[str, tuple[list[Any], list[Any]]] = {}
    for split, ds in splits_in.items():
        if kind == "audio" and data_dir is None:
            import datasets

            ds = ds.cast_column(column, datasets.Audio(decode=False))
        raw[split] = (list(ds[column]), list(ds[label_col]))
    if len(raw["train"][0]) < 3:
        raise ValueError(f"media: the train split has {len(raw['train'][0])} items; need >= 3")
    sources = _fill_missing_splits(raw, val_fraction, seed)
    caps = {"train": max_train, "validation": max_eval, "test": max_eval}
    for split in SPLITS:
        index = _sample(len(raw[split][0]), caps[split], derive_seed(seed, task, "cap", split))
        raw[split] = _take(raw[split], index)
    mapping, label_names = _label_map(raw, class_names)

    splits: dict[str, Split] = {}
    for split in SPLITS:
        items, labels = raw[split]
        y = torch.tensor([mapping[v] for v in labels], dtype=torch.long)
        if kind == "image":
            pixels = to_pixels(items, (image_size, image_size), channels)
            splits[split] = Split(None, None, y, pixel_values=pixels)
        else:
            waves = [_decode_audio(v, sample_rate) for v in items]
            feats, mask = stack_features(waves, mel, max_frames)
            splits[split] = Split(None, mask, y, input_features=feats)
    width = image_size * image_size if kind == "image" else max_frames
    return TaskData(
        name=task, train=splits["train"], validation=splits["validation"], test=splits["test"],
        num_classes=len(label_names), vocab_size=1, pad_id=0, max_len=width,
        label_names=label_names,
        info={"source": source, "modality": kind, "columns": {"media": column,
              "label": label_col}, "split_sources": sources, "seed": seed,
              "sizes": {s: len(splits[s]) for s in SPLITS},
              "label_map": {str(k): v for k, v in mapping.items()},
              **({"image_size": image_size, "channels": channels} if kind == "image" else
                 {"sample_rate": sample_rate, "n_mels": n_mels, "hop_ms": hop_ms,
                  "win_ms": win_ms, "max_frames": max_frames, "decoder": "soundfile"})},
    )
