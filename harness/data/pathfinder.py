"""``pathfinder``: LRA's Pathfinder, generated here: are the two dots joined by one path?

Following Linsley et al. (2018) as used by the Long Range Arena: on a ``size`` x ``size`` canvas
(32 x 32 = 1,024 pixels in LRA), two long curvy *dashed* paths of ``path_length`` dashes are drawn,
plus ``n_distractors`` short dashed paths. Two dots (3 x 3 squares) mark path ends: in a positive
example both ends of one path, in a negative example one end of each long path. Paths turn by up to
``max_turn`` degrees between dashes; each dash is ``dash_len`` pixels long, followed by a ``gap``.
Longer paths and more distractors are harder (LRA's Pathfinder uses 6, 9 and 14 dashes).

Different paths never touch (not even diagonally), so a flood fill over the paths with their gaps
filled in (``PathfinderImage.solid``) joins the two dots exactly when the label is 1. Classes are
balanced per split; everything is seeded and offline. Pixels are 0 (background) or 1 (ink).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from harness.data.base import Split, TaskData, check_int, derive_seed
from harness.data.modality import declare_modality
from harness.data.registry import register_task

__all__ = ["PathfinderImage", "draw_pathfinder", "load_pathfinder"]

_TRIES = 200


@dataclass
class PathfinderImage:
    """One drawn example: ``image`` (float, 0/1), ``solid`` (paths with gaps filled, + dots),
    ``dots`` ((row, col) centres of the two dots) and ``label`` (1 = joined)."""

    image: np.ndarray
    solid: np.ndarray
    dots: tuple[tuple[int, int], tuple[int, int]]
    label: int


def _dilate(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one pixel in all 8 directions."""
    padded = np.pad(mask, 1)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def _dot(size: int, centre: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    r, c = centre
    mask[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = True
    return mask


def _shape(
    rng: np.random.Generator, n_dashes: int, dash_len: int, gap: int, max_turn: float
) -> tuple[np.ndarray, np.ndarray]:
    """A random dashed path at the origin: integer (row, col) points of its trace (in order) and
    whether each point is ink (on a dash) or a gap."""
    turns = np.radians(rng.uniform(-max_turn, max_turn, n_dashes))
    turns[0] = rng.uniform(0, 2 * math.pi)
    angles = np.cumsum(turns)
    dirs = np.stack([np.sin(angles), np.cos(angles)], axis=1)  # (n, 2)
    step = dash_len + gap
    starts = np.concatenate([np.zeros((1, 2)), np.cumsum(step * dirs[:-1], axis=0)])
    ts = np.arange(0.0, step + 1e-9, 0.5)
    points = starts[:, None, :] + ts[None, :, None] * dirs[:, None, :]  # (n, T, 2)
    on_dash = ts < dash_len if gap else np.ones_like(ts, dtype=bool)
    ink = np.broadcast_to(on_dash, points.shape[:2]).copy()
    keep = np.ones_like(ink)
    keep[-1] = on_dash  # the path ends with a dash
    return np.rint(points[keep]).astype(np.int64), ink[keep]


def _place(
    rng: np.random.Generator, occupied: np.ndarray, size: int, n_dashes: int, dash_len: int,
    gap: int, max_turn: float, dots: int,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]] | None:
    """A path (with ``dots`` dots at its ends) kept clear of ``occupied``: (ink, body, start,
    end) masks and end points, or None when none fits."""
    blocked = _dilate(occupied)
    margin = 2  # room for a 3 x 3 dot at either end
    for _ in range(_TRIES):
        points, ink_sel = _shape(rng, n_dashes, dash_len, gap, max_turn)
        low, high = points.min(axis=0), points.max(axis=0)
        span = high - low
        if (span > size - 1 - 2 * margin).any():
            continue
        if dots and np.abs(points[0] - points[-1]).max() <= 4:  # dots would merge
            continue
        for _ in range(8):  # a few positions for this shape
            offset = rng.integers(margin - low, size - margin - high)
            where = points + offset
            ink = np.zeros((size, size), dtype=bool)
            ink[where[ink_sel, 0], where[ink_sel, 1]] = True
            body = np.zeros((size, size), dtype=bool)
            body[where[:, 0], where[:, 1]] = True
            start = (int(where[0, 0]), int(where[0, 1]))
            end = (int(where[-1, 0]), int(where[-1, 1]))
            for centre in (start, end)[:dots]:
                body |= _dot(size, centre)
            if not (body & blocked).any():
                return ink, body, start, end
    return None


def draw_pathfinder(
    rng: np.random.Generator,
    label: int,
    *,
    size: int = 32,
    path_length: int = 9,
    n_distractors: int = 2,
    dash_len: int = 2,
    gap: int = 1,
    max_turn: float = 30.0,
) -> PathfinderImage:
    """Draw one example with the given ``label`` (see the module doc)."""
    for _ in range(_TRIES):
        occupied = np.zeros((size, size), dtype=bool)
        image = np.zeros((size, size), dtype=bool)
        dot_centres: list[tuple[int, int]] = []
        ok = True
        # the two long paths: positive = both dots on the first; negative = one dot on each
        for index in range(2):
            dots = (2 if index == 0 else 0) if label else 1
            placed = _place(rng, occupied, size, path_length, dash_len, gap, max_turn, dots)
            if placed is None:
                ok = False
                break
            ink, body, start, end = placed
            image |= ink
            occupied |= body
            for centre in (start, end)[:dots]:
                image |= _dot(size, centre)
                dot_centres.append(centre)
        short = max(1, path_length // 3)
        for _ in range(n_distractors if ok else 0):
            placed = _place(rng, occupied, size, short, dash_len, gap, max_turn, 0)
            if placed is None:
                ok = False
                break
            image |= placed[0]
            occupied |= placed[1]
        if ok:
            return PathfinderImage(image.astype(np.float32), occupied,
                                   (dot_centres[0], dot_centres[1]), int(label))
    raise ValueError(
        f"pathfinder: could not fit 2 paths of {path_length} dashes and {n_distractors} "
        f"distractors on a {size}x{size} canvas; lower path_length or n_distractors, or raise size"
    )


@register_task("pathfinder")
@declare_modality("image")
def load_pathfinder(
    *,
    n_train: int = 2000,
    n_val: int = 200,
    n_test: int = 500,
    size: int = 32,
    path_length: int = 9,
    n_distractors: int = 2,
    dash_len: int = 2,
    gap: int = 1,
    max_turn: float = 30.0,
    seed: int = 0,
) -> TaskData:
    """Pathfinder images ``(n, 1, size, size)`` with balanced 0/1 labels (module doc)."""
    task = "pathfinder"
    sizes = {"train": check_int("n_train", n_train, task, 2),
             "validation": check_int("n_val", n_val, task, 2),
             "test": check_int("n_test", n_test, task, 2)}
    check_int("size", size, task, 12)
    check_int("path_length", path_length, task, 1)
    check_int("n_distractors", n_distractors, task, 0)
    check_int("dash_len", dash_len, task, 1)
    check_int("gap", gap, task, 0)
    check_int("seed", seed, task)
    if isinstance(max_turn, bool) or not isinstance(max_turn, (int, float)) or not (
        0 <= max_turn <= 90
    ):
        raise ValueError(f"pathfinder: max_turn must be in [0, 90] degrees, got {max_turn!r}")
    knobs = {"size": size, "path_length": path_length, "n_distractors": n_distractors,
             "dash_len": dash_len, "gap": gap, "max_turn": float(max_turn)}
    splits = {}
    for name, n in sizes.items():
        rng = np.random.default_rng(derive_seed(seed, task, name))
        labels = np.arange(n) % 2
        rng.shuffle(labels)
        images = np.stack([draw_pathfinder(rng, int(y), **knobs).image for y in labels])
        splits[name] = Split(None, None, torch.from_numpy(labels.astype(np.int64)),
                             pixel_values=torch.from_numpy(images)[:, None])
    return TaskData(
        name=task, train=splits["train"], validation=splits["validation"], test=splits["test"],
        num_classes=2, vocab_size=1, pad_id=0, max_len=size * size,
        label_names=["disconnected", "connected"],
        info={**knobs, "seed": seed, "sizes": {k: len(v) for k, v in splits.items()}},
    )
