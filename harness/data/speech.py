"""``speech``: spoken words synthesized offline with espeak-ng, as log-mel frames.

Each example is one word (by default the digits "zero" to "nine"; the class is the word) spoken
by espeak-ng (the Debian package ``espeak-ng``) with a seeded speaker: an English accent
(``en-us``, ``en-gb``, Scottish, Caribbean, RP, ...), a voice variant (male/female formant sets),
a speed (words per minute) and a pitch. Every speaker says every word once, so classes are
balanced; the train, validation and test splits use disjoint speakers (a test speaker is never
heard in training). The clip is resampled to ``sample_rate``, placed at a random offset in a
``clip_seconds`` window, scaled by a random gain and mixed with white noise at a random SNR
(``snr_db`` range), then turned into standardized log-mel frames (:mod:`harness.data.audio`).

One espeak-ng call per speaker says all words with long pauses between them; the pauses (exact
digital silence in espeak-ng's output) split the recording back into words. If a split does not
give exactly one segment per word, the words of that speaker are synthesized one call each.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from io import BytesIO
from typing import Any

import numpy as np
import torch

from harness.data.audio import MelParams, resample, stack_features
from harness.data.base import Split, TaskData, TaskUnavailable, check_int, derive_seed
from harness.data.modality import declare_modality
from harness.data.registry import register_task

__all__ = ["ACCENTS", "DIGITS", "VARIANTS", "espeak_available", "load_speech", "synthesize"]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
_PAUSE_MS = 400
_MIN_GAP_S = 0.25  # silences longer than this separate words (pauses are 0.4 s)


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program is on PATH."""
    return shutil.which("espeak-ng") is not None


def _run_espeak(text: str, voice: str, speed: int, pitch: int, ssml: bool) -> tuple[
    np.ndarray, int
]:
    import soundfile

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise TaskUnavailable(
            "speech: the espeak-ng program is not installed; install the Debian package "
            "(apt-get install -y espeak-ng) or use another audio task"
        )
    cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout"]
    if ssml:
        cmd.append("-m")
    done = subprocess.run([*cmd, text], capture_output=True, check=False, timeout=60)
    if done.returncode != 0 or not done.stdout:
        raise RuntimeError(f"speech: espeak-ng failed for voice {voice!r}: "
                           f"{done.stderr.decode(errors='replace').strip()}")
    data, rate = soundfile.read(BytesIO(done.stdout), dtype="float32")
    return np.asarray(data, dtype=np.float32).reshape(-1), int(rate)


def _segments(wave: np.ndarray, rate: int) -> list[np.ndarray]:
    """Non-silent stretches of ``wave`` separated by more than ``_MIN_GAP_S`` of silence."""
    loud = np.abs(wave) > 1e-4
    if not loud.any():
        return []
    idx = np.flatnonzero(loud)
    gaps = np.flatnonzero(np.diff(idx) > _MIN_GAP_S * rate)
    starts = np.concatenate([[idx[0]], idx[gaps + 1]])
    ends = np.concatenate([idx[gaps], [idx[-1]]]) + 1
    return [wave[s:e] for s, e in zip(starts, ends, strict=True)]


@lru_cache(maxsize=4096)
def synthesize(words: tuple[str, ...], voice: str, speed: int, pitch: int) -> tuple[
    tuple[np.ndarray, ...], int
]:
    """One recording per word of ``words`` by espeak-ng ``voice`` (e.g. ``"en-us+f3"``).

    ``speed`` in words per minute, ``pitch`` 0-99. Returns the clips (trimmed to speech) and the
    sample rate. Cached per argument tuple.
    """
    pause = f"<break time='{_PAUSE_MS}ms'/>"
    text = "<speak>" + pause.join(words) + "</speak>"
    wave, rate = _run_espeak(text, voice, speed, pitch, ssml=True)
    parts = _segments(wave, rate)
    if len(parts) != len(words):  # a word with an inner pause: one call per word
        parts = []
        for word in words:
            single, rate = _run_espeak(word, voice, speed, pitch, ssml=False)
            found = _segments(single, rate)
            parts.append(np.concatenate(found) if found else single)
    return tuple(parts), rate


def _speakers(n: int, seed: int, speeds: Sequence[int], pitches: Sequence[int]) -> list[
    tuple[str, int, int]
]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        voice = f"{ACCENTS[rng.integers(len(ACCENTS))]}+{VARIANTS[rng.integers(len(VARIANTS))]}"
        out.append((voice, int(rng.integers(speeds[0], speeds[1] + 1)),
                    int(rng.integers(pitches[0], pitches[1] + 1))))
    return out


def _check_range(name: str, value: Any, low: float, high: float) -> tuple[float, float]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not low <= value[0] <= value[1] <= high
    ):
        raise ValueError(f"speech: {name} must be [low, high] with {low} <= low <= high <= "
                         f"{high}, got {value!r}")
    return value[0], value[1]


def _place_in_noise(wave: np.ndarray, window: int, rng: np.random.Generator,
                    snr_range: Sequence[float]) -> np.ndarray:
    """``wave`` (at most ``window`` samples) at a random offset of a ``window``-sample clip, at a
    random gain in [0.3, 1], with white noise at a random SNR (dB) drawn from ``snr_range``."""
    out = np.zeros(window, dtype=np.float32)
    offset = int(rng.integers(0, window - len(wave) + 1))
    out[offset : offset + len(wave)] = wave * rng.uniform(0.3, 1.0)
    power = float(np.mean(out[offset : offset + len(wave)] ** 2)) + 1e-12
    snr = rng.uniform(*snr_range)
    out += rng.normal(0.0, np.sqrt(power / 10 ** (snr / 10)), window).astype(np.float32)
    return out


@register_task("speech")
@declare_modality("audio")
def load_speech(
    *,
    words: Sequence[str] = DIGITS,
    n_train: int = 1000,
    n_val: int = 200,
    n_test: int = 400,
    speeds: Sequence[int] = (120, 220),
    pitches: Sequence[int] = (20, 80),
    snr_db: Sequence[float] = (5.0, 30.0),
    clip_seconds: float = 1.0,
    sample_rate: int = 16000,
    n_mels: int = 40,
    hop_ms: float = 10.0,
    win_ms: float = 25.0,
    seed: int = 0,
) -> TaskData:
    """Spoken-word classification (module doc). Split sizes are rounded up to whole speakers
    (each says every word once). Frames: ``clip_seconds * 1000 / hop_ms + 1``."""
    task = "speech"
    words = tuple(str(w).strip() for w in words)
    if len(words) < 2 or len(set(words)) != len(words) or not all(
        w.replace("-", "").replace("'", "").isalpha() for w in words
    ):
        raise ValueError(f"speech: words must be at least 2 distinct single words, got {words}")
    sizes = {"train": check_int("n_train", n_train, task, 1),
             "validation": check_int("n_val", n_val, task, 1),
             "test": check_int("n_test", n_test, task, 1)}
    check_int("seed", seed, task)
    speed_range = _check_range("speeds", speeds, 80, 450)
    pitch_range = _check_range("pitches", pitches, 0, 99)
    snr_range = _check_range("snr_db", snr_db, -20, 100)
    if not 0.2 <= float(clip_seconds) <= 10:
        raise ValueError(f"speech: clip_seconds must be in [0.2, 10], got {clip_seconds}")
    mel = MelParams(sample_rate=sample_rate, n_mels=n_mels, win_ms=win_ms, hop_ms=hop_ms)
    mel.check(task)
    window = round(float(clip_seconds) * sample_rate)
    frames = mel.frames(window)

    splits: dict[str, Split] = {}
    info_speakers: dict[str, int] = {}
    truncated = 0
    for split_name, n in sizes.items():
        n_speakers = -(-n // len(words))
        speakers = _speakers(n_speakers, derive_seed(seed, task, "speakers", split_name),
                             [int(v) for v in speed_range], [int(v) for v in pitch_range])
        with ThreadPoolExecutor(max_workers=4) as pool:
            spoken = list(pool.map(lambda s: synthesize(words, *s), speakers))
        rng = np.random.default_rng(derive_seed(seed, task, "mix", split_name))
        waves, labels = [], []
        for clips, rate in spoken:
            for label, clip in enumerate(clips):
                wave = resample(clip, rate, sample_rate)
                if len(wave) > window:
                    truncated += 1
                    wave = wave[:window]
                waves.append(_place_in_noise(wave, window, rng, snr_range))
                labels.append(label)
        feats, mask = stack_features(waves, mel, frames)
        splits[split_name] = Split(None, mask, torch.tensor(labels, dtype=torch.long),
                                   input_features=feats)
        info_speakers[split_name] = n_speakers
    return TaskData(
        name=task,
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        num_classes=len(words),
        vocab_size=1,
        pad_id=0,
        max_len=frames,
        label_names=list(words),
        info={"words": list(words), "speakers": info_speakers, "speeds": list(speed_range),
              "pitches": list(pitch_range), "snr_db": list(snr_range),
              "clip_seconds": clip_seconds, "sample_rate": sample_rate, "n_mels": n_mels,
              "hop_ms": hop_ms, "win_ms": win_ms, "frames": frames, "truncated": truncated,
              "seed": seed, "sizes": {k: len(v) for k, v in splits.items()},
              "synthesizer": "espeak-ng"},
    )
