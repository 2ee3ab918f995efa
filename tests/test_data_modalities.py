"""Image and audio tasks: Pathfinder, digits, espeak-ng speech, image/audio folders, log-mel."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.data import load_task, task_modality
from harness.data.audio import MelParams, log_mel, stack_features
from harness.data.pathfinder import PathfinderImage, draw_pathfinder
from harness.data.speech import espeak_available, synthesize

# Skipped where espeak-ng is absent, except in CI (.ci/run sets HARNESS_REQUIRE_ESPEAK=1 and
# installs it), where a missing synthesizer must fail the speech tests instead.
needs_espeak = pytest.mark.skipif(
    not espeak_available() and not os.environ.get("HARNESS_REQUIRE_ESPEAK"),
    reason="espeak-ng is not installed (apt-get install espeak-ng)")


# ----------------------------------------------------------------------------------- pathfinder
def joined(example: PathfinderImage) -> bool:
    """Flood fill (8-neighbours) over the gap-filled paths from one dot: is the other reached?"""
    solid = example.solid
    (r0, c0), target = example.dots
    seen = np.zeros_like(solid)
    queue = deque([(r0, c0)])
    seen[r0, c0] = True
    while queue:
        r, c = queue.popleft()
        if (r, c) == target:
            return True
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if 0 <= rr < solid.shape[0] and 0 <= cc < solid.shape[1] and solid[rr, cc] \
                        and not seen[rr, cc]:
                    seen[rr, cc] = True
                    queue.append((rr, cc))
    return False


@pytest.mark.parametrize("knobs", [{}, {"path_length": 6, "n_distractors": 4},
                                   {"path_length": 12, "dash_len": 1, "max_turn": 45}])
def test_pathfinder_labels_match_flood_fill(knobs) -> None:
    rng = np.random.default_rng(3)
    for i in range(30):
        example = draw_pathfinder(rng, i % 2, **knobs)
        assert joined(example) == bool(example.label), (i, knobs)
        ink = example.image > 0
        assert not (ink & ~example.solid).any()  # ink lies on the drawn paths
        for r, c in example.dots:  # the dots are drawn
            assert example.image[r - 1 : r + 2, c - 1 : c + 2].min() == 1.0
    # the check can fail: cutting a positive example's path disconnects its dots
    cut = draw_pathfinder(np.random.default_rng(0), 1)
    (r0, c0), _ = cut.dots
    cut.solid[max(r0 - 2, 0) : r0 + 3, max(c0 - 2, 0) : c0 + 3] = False
    cut.solid[r0, c0] = True
    assert not joined(cut)


def test_pathfinder_paths_are_dashed_and_tasks_are_seeded() -> None:
    example = draw_pathfinder(np.random.default_rng(1), 1, gap=1)
    assert ((example.image > 0) != example.solid).any()  # gaps between dashes
    solid_only = draw_pathfinder(np.random.default_rng(1), 1, gap=0)
    assert joined(solid_only)
    a = load_task("pathfinder", n_train=20, n_val=4, n_test=6, seed=5)
    b = load_task("pathfinder", n_train=20, n_val=4, n_test=6, seed=5)
    c = load_task("pathfinder", n_train=20, n_val=4, n_test=6, seed=6)
    assert torch.equal(a.train.pixel_values, b.train.pixel_values)
    assert torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.pixel_values, c.train.pixel_values)
    assert a.train.pixel_values.shape == (20, 1, 32, 32) and a.max_len == 1024
    assert int(a.train.labels.sum()) == 10  # balanced
    assert a.modality == task_modality("pathfinder") == "image"
    with pytest.raises(ValueError, match="could not fit"):
        load_task("pathfinder", n_train=2, n_val=2, n_test=2, size=12, path_length=20)
    with pytest.raises(ValueError, match="max_turn"):
        load_task("pathfinder", max_turn=120)


# --------------------------------------------------------------------------------------- digits
def test_digits_are_real_images_split_by_seed() -> None:
    from sklearn.datasets import load_digits

    task = load_task("digits", n_val=100, n_test=200, seed=1)
    assert task.modality == "image" and task.num_classes == 10 and task.max_len == 64
    sizes = {k: len(v) for k, v in task.splits.items()}
    assert sizes == {"train": 1797 - 300, "validation": 100, "test": 200}
    every = torch.cat([s.pixel_values for s in task.splits.values()]).reshape(1797, -1)
    reference = torch.from_numpy(load_digits().images.reshape(1797, -1) / 16.0).float()
    assert torch.equal(every.sum(0), reference.sum(0))  # the same images, none lost or repeated
    assert torch.bincount(task.test.labels).min() >= 18  # stratified
    again = load_task("digits", n_val=100, n_test=200, seed=1)
    assert torch.equal(again.test.pixel_values, task.test.pixel_values)
    big = load_task("digits", n_val=20, n_test=20, size=32)
    assert big.train.pixel_values.shape[1:] == (1, 32, 32) and big.max_len == 1024


# -------------------------------------------------------------------------------------- log-mel
def test_log_mel_puts_a_tone_in_its_mel_band_and_masks_padding() -> None:
    from transformers.audio_utils import hertz_to_mel

    params = MelParams(sample_rate=16000, n_mels=40)
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * torch.pi * 1000 * t)[None]
    feats, mask = log_mel(tone, params)
    assert feats.shape == (1, 101, 40) and bool(mask.all())
    peak = int(feats[0, 10:-10].mean(0).argmax())
    edges = np.linspace(hertz_to_mel(20.0, "slaney"), hertz_to_mel(8000.0, "slaney"), 42)
    centre = float(hertz_to_mel(1000.0, "slaney"))
    expected = int(np.argmin(np.abs(edges[1:-1] - centre)))
    assert abs(peak - expected) <= 1
    two = torch.zeros(2, 16000)
    two[0] = tone[0]
    two[1, :8000] = tone[0, :8000]
    feats, mask = log_mel(two, params, torch.tensor([16000, 8000]))
    assert int(mask[1].sum()) == 51 and not bool(feats[1, 51:].any())
    assert abs(float(feats[0].mean())) < 1e-4  # standardized per clip
    stacked, smask = stack_features([tone[0].numpy(), tone[0, :4000].numpy()], params, 60)
    assert stacked.shape == (2, 60, 40) and smask.sum(1).tolist() == [60, 26]


# --------------------------------------------------------------------------------------- speech
@needs_espeak
def test_espeak_speech_is_real_varied_and_seeded() -> None:
    words = ("yes", "no", "seven")
    clips, rate = synthesize(words, "en-us+f3", 160, 60)
    assert len(clips) == 3 and rate > 8000
    assert all(0.1 < len(c) / rate < 1.5 and float(np.abs(c).max()) > 0.05 for c in clips)
    low, _ = synthesize(words, "en-gb+m3", 160, 20)
    assert not np.array_equal(low[0][: len(clips[0])], clips[0][: len(low[0])])
    kwargs = dict(words=["yes", "no"], n_train=8, n_val=4, n_test=4, hop_ms=20)
    a, b = load_task("speech", **kwargs), load_task("speech", **kwargs)
    c = load_task("speech", **kwargs, seed=1)
    assert torch.equal(a.train.input_features, b.train.input_features)
    assert not torch.equal(a.train.input_features, c.train.input_features)
    assert a.train.input_features.shape == (8, 51, 40) and a.max_len == 51
    assert a.train.labels.tolist().count(0) == 4  # every speaker says every word
    assert a.modality == task_modality("speech") == "audio"
    with pytest.raises(ValueError, match="words"):
        load_task("speech", words=["yes"])


# -------------------------------------------------------------------------------------- folders
def write_image_folder(root: Path, splits: tuple[str, ...]) -> None:
    from PIL import Image

    for split in splits:
        for name, value in (("black", 0), ("white", 255)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(5):
                Image.new("RGB", (12, 10), (value, value, value)).save(folder / f"{i}.png")


def test_imagefolder_with_train_and_test_subfolders(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_image_folder(tmp_path, ("train", "test"))
    task = load_task("media", data_dir=str(tmp_path), data_format="imagefolder", image_size=8,
                     cache_dir=str(tmp_path / "cache"))
    assert task.modality == "image" and task.label_names == ["black", "white"]
    assert len(task.test) == 10 and len(task.train) + len(task.validation) == 10
    assert task.info["split_sources"]["test"] == "given"
    for split in task.splits.values():
        white = split.labels == 1
        assert split.pixel_values.shape[1:] == (1, 8, 8)
        assert bool((split.pixel_values[white] == 1).all())
        assert bool((split.pixel_values[~white] == 0).all())


def test_imagefolder_without_splits_holds_out_and_rgb(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_image_folder(tmp_path / "all", ("",))
    task = load_task("media", data_dir=str(tmp_path / "all"), data_format="imagefolder",
                     image_size=4, channels=3, val_fraction=0.2,
                     cache_dir=str(tmp_path / "cache"))
    assert "held out" in task.info["split_sources"]["test"]
    assert sum(len(s) for s in task.splits.values()) == 10
    assert task.train.pixel_values.shape[1:] == (3, 4, 4)
    with pytest.raises(ValueError, match="data_format"):
        load_task("media", data_dir=str(tmp_path / "all"))
    with pytest.raises(ValueError, match="not a folder"):
        load_task("media", data_dir=str(tmp_path / "missing"), data_format="imagefolder")


def write_audio_folder(root: Path, per_class: int = 4,
                       splits: tuple[str, ...] = ("train", "test")) -> None:
    import soundfile

    rate = 8000
    t = np.arange(rate // 2) / rate
    for split in splits:
        for name, freq in (("low", 300.0), ("high", 2500.0)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                wave = 0.5 * np.sin(2 * np.pi * freq * t[: len(t) - 400 * (i % 8)])
                soundfile.write(folder / f"{i}.wav", wave.astype(np.float32), rate)


def test_audiofolder_reads_wav_with_soundfile(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_audio_folder(tmp_path)
    task = load_task("media", data_dir=str(tmp_path), data_format="audiofolder", max_frames=60,
                     cache_dir=str(tmp_path / "cache"))
    assert task.modality == "audio" and task.label_names == ["high", "low"]
    assert task.test.input_features.shape == (8, 60, 40)
    lengths = sorted(task.test.attention_mask.sum(1).tolist())
    assert lengths[0] < lengths[-1] == 51  # 0.5 s clips at 10 ms hops; shorter ones shorter
    high = task.test.input_features[task.test.labels == 0, :30].mean(dim=(0, 1))
    low = task.test.input_features[task.test.labels == 1, :30].mean(dim=(0, 1))
    assert int(high.argmax()) > int(low.argmax())  # the tones land in their mel bands
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.wav").write_bytes((tmp_path / "test" / "low" / "0.wav").read_bytes())
    with pytest.raises(ValueError, match="sub-folder per class"):
        load_task("media", data_dir=str(flat), data_format="audiofolder")
