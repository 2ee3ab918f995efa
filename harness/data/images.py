"""Image tasks and helpers: ``digits`` (scikit-learn's bundled handwritten digits) and pixel
conversion for image folders / hub datasets.

``digits`` is scikit-learn's copy of the UCI optical-recognition digits: 1,797 real 8 x 8
grayscale images of the digits 0-9, shipped with scikit-learn (offline). ``size`` resizes them
(bilinear), e.g. ``size=32`` gives LRA Image-sized 1,024-pixel sequences. Pixels are floats in
[0, 1], shaped ``(n, 1, size, size)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from harness.data.base import Split, TaskData, check_int, derive_seed
from harness.data.modality import declare_modality
from harness.data.registry import register_task

__all__ = ["load_digits", "to_pixels"]


def to_pixels(images: list[Any], size: tuple[int, int], channels: int) -> Tensor:
    """PIL images (any mode or size) -> float pixels ``(n, channels, H, W)`` in [0, 1].

    Converted to grayscale (``channels=1``) or RGB (3) and resized to ``size`` (height, width)
    with bilinear filtering.
    """
    from PIL import Image

    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise ValueError(f"images: channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    height, width = size
    out = np.zeros((len(images), height, width, channels), dtype=np.float32)
    for i, img in enumerate(images):
        if not isinstance(img, Image.Image):
            img = Image.fromarray(np.asarray(img))
        img = _plain(img).convert(mode)
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BILINEAR)
        out[i] = np.asarray(img, dtype=np.float32).reshape(height, width, channels) / 255.0
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _plain(img: Any) -> Any:
    """``img`` as L or RGB: palettes expanded, transparency composited over white, 16-bit and
    float images scaled to 8 bits (a plain ``convert`` clips them to white)."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode not in ("L", "RGB"):
        return img.convert("RGB")
    return img


@register_task("digits")
@declare_modality("image")
def load_digits(
    *, n_val: int = 200, n_test: int = 400, size: int = 8, seed: int = 0
) -> TaskData:
    """scikit-learn's digits: a seeded stratified split; the rest of the 1,797 images train."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    task = "digits"
    check_int("n_val", n_val, task, 10)
    check_int("n_test", n_test, task, 10)
    check_int("size", size, task, 2)
    check_int("seed", seed, task)
    bunch = sk_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear",
                               align_corners=False).clamp(0, 1)
    labels = bunch.target.astype(np.int64)
    if n_val + n_test > len(labels) - 100:
        raise ValueError(f"digits: n_val + n_test must leave at least 100 of {len(labels)} "
                         f"images to train, got {n_val} + {n_test}")
    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=n_test, stratify=labels,
                                  random_state=derive_seed(seed, task, "test") % 2**32)
    train, val = train_test_split(rest, test_size=n_val, stratify=labels[rest],
                                  random_state=derive_seed(seed, task, "val") % 2**32)
    parts = {"train": np.sort(train), "validation": np.sort(val), "test": np.sort(test)}
    splits = {
        name: Split(None, None, torch.from_numpy(labels[idx]), pixel_values=images[idx])
        for name, idx in parts.items()
    }
    return TaskData(
        name=task, train=splits["train"], validation=splits["validation"], test=splits["test"],
        num_classes=10, vocab_size=1, pad_id=0, max_len=size * size,
        label_names=[str(d) for d in range(10)],
        info={"source": "sklearn.datasets.load_digits", "size": size, "seed": seed,
              "sizes": {k: len(v) for k, v in splits.items()}},
    )
