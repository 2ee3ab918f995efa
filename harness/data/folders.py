"""``media``: image or audio classification from a local folder or a hub dataset (HF ``datasets``).

Local folders use the ``datasets`` builders ``imagefolder`` / ``audiofolder``: one sub-folder per
class (``DIR/cat/1.png``), or a ``metadata.csv``/``metadata.jsonl`` with a label column; top-level
``train/``, ``test/`` (and ``validation/``) folders become those splits. Missing splits are held
out of train, seeded, as for text (:mod:`harness.data.text`). A hub ``dataset`` (e.g. ``cifar10``,
``speech_commands:v0.02``) needs a network; its image or audio column is found from its features.

Images (PNG, JPEG, BMP, GIF: the first frame, TIFF, WebP; any mode and size) become float pixels
``(n, channels, H, W)`` in [0, 1] resized to ``image_size`` (grayscale by default, as in LRA's
Image task; ``channels=3`` keeps colour; palette images are expanded, transparency is composited
over white, 16-bit images are scaled to 8 bits). Audio (WAV 8-bit unsigned, 16, 24 and 32-bit,
FLAC, OGG; mono or multi-channel at any rate) is averaged to mono and resampled. Audio is read
without the
``datasets`` audio decoder (it needs torchcodec and FFmpeg): files are decoded with ``soundfile``
(WAV, FLAC, OGG), resampled to ``sample_rate`` and turned into standardized log-mel frames
(:mod:`harness.data.audio`), cut or padded to ``max_frames``.

:func:`check_media_folder` is the pre-flight check of a local folder (before a run dir exists):
layout (class sub-folders, optional split folders, no nesting), at least two classes, no empty
class folder, media of the named format, every file readable (and at most ``MAX_PIXELS``), and
sizes a benchmark can score (the text rule). An unreadable file stops the run naming each file and
why, unless ``skip_bad_files`` (then the loader leaves the same files out and ``info`` lists them).
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.data.audio import MelParams, read_audio, stack_features
from harness.data.base import Split, TaskData, check_fraction, check_int
from harness.data.images import to_pixels
from harness.data.modality import declare_modality
from harness.data.registry import register_task
from harness.data.text import (
    SPLITS,
    _cap_splits,
    _fill_missing_splits,
    _label_map,
    _load_hub,
    _quiet_datasets,
    _restore,
)

__all__ = ["DATA_FORMATS", "MAX_PIXELS", "check_media_folder", "load_media", "read_folder"]

#: Larger images are refused (a decompression bomb, or a photo far beyond any benchmark size).
MAX_PIXELS = 50_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_LIST_BAD = 20  # bad files named in one message

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
            _layout(path, data_format)  # a layout problem (e.g. audio read as images) says so
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


def _kind_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def _layout(path: Path, data_format: str) -> dict[str, dict[str, list[Path]]]:
    """``{split: {class: [files]}}`` of a local folder (``""`` for no split folders); a
    ``ValueError`` names the folder for every layout problem."""
    kind, other = ("image", "audio") if data_format == "imagefolder" else ("audio", "image")
    suffixes = IMAGE_SUFFIXES if kind == "image" else _AUDIO_SUFFIXES
    others = _AUDIO_SUFFIXES if kind == "image" else IMAGE_SUFFIXES
    every = [p for p in path.rglob("*") if p.is_file()]
    mine = [p for p in every if p.suffix.lower() in suffixes]
    if not mine:
        found = [p for p in every if p.suffix.lower() in others]
        hint = (f" (found {len(found)} {other} file(s): did you mean --data-format"
                f" {other}folder?)" if found else "")
        example = "cat/1.png" if kind == "image" else "yes/1.wav"
        raise ValueError(f"media: no {kind} files found in {path}{hint}; put them in one"
                         f" sub-folder per class, e.g. {path}/{example}")
    subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = [p for p in subdirs if p.name.lower() in _SPLIT_NAMES]
    roots = {_SPLIT_NAMES[p.name.lower()]: p for p in split_dirs} if split_dirs else {"": path}
    out: dict[str, dict[str, list[Path]]] = {}
    for split, root in roots.items():
        loose = _kind_files(root, suffixes)
        if loose:
            raise ValueError(f"media: {len(loose)} {kind} file(s) directly in {root} (e.g."
                             f" {loose[0].name}); put each class in its own sub-folder, e.g."
                             f" {root}/CLASS/{loose[0].name}")
        classes: dict[str, list[Path]] = {}
        for folder in sorted(p for p in root.iterdir() if p.is_dir()
                             and not p.name.startswith(".")):
            nested = sorted(q for q in folder.iterdir() if q.is_dir()
                            and any(f.suffix.lower() in suffixes for f in q.rglob("*")))
            if nested:
                raise ValueError(f"media: nested folders are not supported: class folder"
                                 f" {folder} holds sub-folder {nested[0]}; put each class's files"
                                 f" directly in {root}/CLASS/")
            files = _kind_files(folder, suffixes)
            if not files:
                raise ValueError(f"media: class folder {folder} holds no {kind} files; add"
                                 " files or remove the folder")
            classes[folder.name] = files
        if split in ("", "train") and len(classes) < 2:
            raise ValueError(f"media: only one class found in {root} ({', '.join(classes)});"
                             " need >= 2 class sub-folders")
        out[split or "train"] = classes
    if "train" not in out:
        raise ValueError(f"media: {path} has split folders ({', '.join(roots)}) but no train/")
    return out


def _check_image(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                return f"{w} x {h} = {w * h:,} pixels, over the limit of {MAX_PIXELS:,}"
            img.load()
    except Exception as err:  # PIL raises many kinds (UnidentifiedImageError, OSError, ...)
        return f"{type(err).__name__}: {err}"
    return None


def _check_audio(path: Path) -> str | None:
    import soundfile

    try:
        data, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    if data.size == 0:
        return "no samples"
    return None


def check_media_folder(data_dir: str | Path, data_format: str, *, skip_bad_files: bool = False,
                       val_fraction: float = 0.1) -> dict[str, Any]:
    """Pre-flight check of a local image/audio folder (module doc); ``ValueError`` names the
    folder or each bad file. Returns files per split and class and the skipped files."""
    from harness.data.text import MIN_CLASS_ROWS, MIN_SPLIT_ROWS

    if data_format not in DATA_FORMATS:
        raise ValueError(f"media: data_format must be one of {DATA_FORMATS}, got {data_format!r}")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise ValueError(f"media: data_dir {path} is not a folder")
    layout = _layout(path, data_format)
    check = _check_image if data_format == "imagefolder" else _check_audio
    bad = [(f, why) for classes in layout.values() for files in classes.values() for f in files
           if (why := check(f)) is not None]
    if bad and not skip_bad_files:
        listing = "; ".join(f"{f}: {why}" for f, why in bad[:_LIST_BAD])
        more = f" (and {len(bad) - _LIST_BAD} more)" if len(bad) > _LIST_BAD else ""
        raise ValueError(f"media: {len(bad)} unreadable file(s) in {path}: {listing}{more};"
                         " fix or remove them, or pass --skip-bad-files (profile"
                         " data.skip_bad_files) to leave them out")
    skipped = {f for f, _ in bad}
    counts = {split: {c: sum(f not in skipped for f in files) for c, files in classes.items()}
              for split, classes in layout.items()}
    for classes in counts.values():
        empty = [c for c, n in classes.items() if n == 0]
        if empty:
            raise ValueError(f"media: class folder(s) {', '.join(empty)} of {path} hold no"
                             " readable files after skipping bad files")
    sizes = {s: sum(c.values()) for s, c in counts.items()}
    held = [s for s in ("validation", "test") if s not in sizes]
    n_hold = max(1, round(val_fraction * sizes["train"])) if held else 0
    final = {s: sizes.get(s, n_hold) for s in ("validation", "test")}
    final["train"] = sizes["train"] - n_hold * len(held)
    small = [f"{s} has {n}" for s, n in final.items() if n < MIN_SPLIT_ROWS]
    if small:
        raise ValueError(f"media: too few files to benchmark on in {path} ({', '.join(small)};"
                         f" each split needs at least {MIN_SPLIT_ROWS} after holding out"
                         " validation/test from train); add files")
    rare = [f"{c!r}: {n}" for c, n in counts["train"].items() if n < MIN_CLASS_ROWS]
    if rare:
        raise ValueError(f"media: too few train files of class {', '.join(rare)} in {path}"
                         f" (each class needs at least {MIN_CLASS_ROWS}); add files or drop"
                         " the class")
    return {"data_dir": str(path), "files": counts,
            "skipped_files": [{"path": str(f), "reason": why} for f, why in bad]}


def _image_of(value: Any) -> Any:
    """A PIL image from a ``datasets`` Image value (decoded, or ``{path, bytes}``)."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):
        data = value.get("bytes")
        img = Image.open(BytesIO(data) if data else value["path"])
        if img.size[0] * img.size[1] > MAX_PIXELS:
            raise ValueError(f"{img.size[0]} x {img.size[1]} pixels, over the limit of"
                             f" {MAX_PIXELS:,}")
        img.load()
        return img
    return Image.fromarray(np.asarray(value))


def _name_of(value: Any, split: str, row: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("path"):
        return str(value["path"])
    return f"{split} row {row}"


def _decode_items(kind: str, split: str, items: list[Any], labels: list[Any], *,
                  image_size: int, channels: int, sample_rate: int, skip: bool,
                  skipped: list[dict[str, str]]) -> tuple[list[Any], list[Any]]:
    """Each item decoded (pixels ``(channels, H, W)`` or a waveform); a bad item raises naming
    it, or is left out (and listed in ``skipped``) with ``skip``."""
    out, kept = [], []
    for row, (value, y) in enumerate(zip(items, labels, strict=True)):
        try:
            if kind == "image":
                decoded: Any = to_pixels([_image_of(value)], (image_size, image_size),
                                         channels)[0]
            else:
                decoded = _decode_audio(value, sample_rate)
        except Exception as err:
            name = _name_of(value, split, row)
            reason = str(err).removeprefix(f"cannot read audio file {name}: ")
            if not skip:
                raise ValueError(f"media: cannot read {kind} file {name}: {reason}; fix or"
                                 " remove it, or pass --skip-bad-files") from None
            skipped.append({"path": name, "reason": reason})
            continue
        out.append(decoded)
        kept.append(y)
    return out, kept


def _read_media_source(data_dir: str | None, data_format: str | None,
                       dataset: str | Sequence[str] | None,
                       cache_dir: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The splits of a local folder (``data_dir`` in ``data_format``) or of a hub ``dataset``,
    and the description of that source for the task's info."""
    if data_dir is not None:
        if data_format is None:
            raise ValueError("media: data_dir needs data_format: imagefolder or audiofolder")
        loaded = read_folder(data_dir, data_format, cache_dir)
        return loaded, {"data_dir": str(data_dir), "data_format": data_format}
    hub, name = _load_hub(dataset, cache_dir)  # type: ignore[arg-type]
    return hub, {"dataset": name, "hub_splits": list(hub)}


def _canonical_splits(loaded: dict[str, Any]) -> dict[str, Any]:
    """``loaded``'s splits under the names train/validation/test (the first of each's aliases
    wins; others are ignored); an error when there is no train split."""
    splits_in: dict[str, Any] = {}
    for split, ds in loaded.items():
        canonical = _SPLIT_NAMES.get(split.lower())
        if canonical and canonical not in splits_in:
            splits_in[canonical] = ds
    if "train" not in splits_in:
        raise ValueError(f"media: no train split (splits: {', '.join(loaded)}); put the data in "
                         "class sub-folders, or in train/ and test/")
    return splits_in


def _undecoded(ds: Any, kind: str, column: str, *, from_hub: bool) -> Any:
    """``ds`` with its media column left as file bytes or paths (decoded here, one file at a
    time, so a bad file can be named or skipped): a hub's audio, and any Image column."""
    import datasets

    if kind == "audio" and from_hub:
        return ds.cast_column(column, datasets.Audio(decode=False))
    if kind == "image" and isinstance(ds.features.get(column), datasets.Image):
        return ds.cast_column(column, datasets.Image(decode=False))
    return ds


def _media_split(kind: str, items: list[Any], labels: list[Any], mapping: dict[Any, int], *,
                 channels: int, image_size: int, mel: MelParams, max_frames: int) -> Split:
    """A split of decoded items: stacked pixels (image) or padded log-mel frames with their
    mask (audio), labels mapped to class indices."""
    y = torch.tensor([mapping[v] for v in labels], dtype=torch.long)
    if kind == "image":
        pixels = torch.stack(items) if items else torch.zeros(0, channels, image_size, image_size)
        return Split(None, None, y, pixel_values=pixels)
    feats, mask = stack_features(items, mel, max_frames)
    return Split(None, mask, y, input_features=feats)


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
    skip_bad_files: bool = False,
    cache_dir: str | None = None,
) -> TaskData:
    """Image or audio classification from ``data_dir`` (with ``data_format``) or a hub
    ``dataset`` (module doc). The modality follows the data: ``imagefolder`` or an Image column
    gives pixels, ``audiofolder`` or an Audio column log-mel frames. An unreadable file raises
    ``ValueError`` naming it, or with ``skip_bad_files`` is left out (``info["skipped_files"]``)."""
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
    loaded, source = _read_media_source(data_dir, data_format, dataset, cache_dir)
    splits_in = _canonical_splits(loaded)
    first = splits_in["train"]
    kind = _modality(first, data_format if data_dir is not None else None)
    column = _media_column(first, media_column, kind)
    label_col = _label_column(first, label_column)
    feature = first.features.get(label_col)
    class_names = list(getattr(feature, "names", None) or []) or None

    raw: dict[str, tuple[list[Any], list[Any]]] = {}
    skipped: list[dict[str, str]] = []
    for split, ds in splits_in.items():
        ds = _undecoded(ds, kind, column, from_hub=data_dir is None)
        raw[split] = _decode_items(kind, split, list(ds[column]), list(ds[label_col]),
                                   image_size=image_size, channels=channels,
                                   sample_rate=sample_rate, skip=skip_bad_files,
                                   skipped=skipped)
    if len(raw["train"][0]) < 3:
        raise ValueError(f"media: the train split has {len(raw['train'][0])} items; need >= 3")
    sources = _fill_missing_splits(raw, val_fraction, seed)
    _cap_splits(raw, max_train, max_eval, seed, task)
    mapping, label_names = _label_map(raw, class_names)

    splits = {split: _media_split(kind, *raw[split], mapping, channels=channels,
                                  image_size=image_size, mel=mel, max_frames=max_frames)
              for split in SPLITS}
    width = image_size * image_size if kind == "image" else max_frames
    return TaskData(
        name=task, train=splits["train"], validation=splits["validation"], test=splits["test"],
        num_classes=len(label_names), vocab_size=1, pad_id=0, max_len=width,
        label_names=label_names,
        info={"source": source, "modality": kind, "columns": {"media": column,
              "label": label_col}, "split_sources": sources, "seed": seed,
              "sizes": {s: len(splits[s]) for s in SPLITS},
              "label_map": {str(k): v for k, v in mapping.items()},
              "skipped_files": skipped,
              **({"image_size": image_size, "channels": channels} if kind == "image" else
                 {"sample_rate": sample_rate, "n_mels": n_mels, "hop_ms": hop_ms,
                  "win_ms": win_ms, "max_frames": max_frames, "decoder": "soundfile"})},
    )
