"""Audio front-end helpers: read WAV files, resample, and turn waveforms into log-mel frames.

Log-mel frames come from ``torch.stft`` (Hann window) and the mel filter bank of
``transformers.audio_utils.mel_filter_bank`` (Slaney-style, as the transformers feature extractors
use), then ``log(mel + 1e-6)`` and a per-clip standardization (zero mean, unit variance over the
clip's real frames). WAV files are read with ``soundfile`` and resampled with
``scipy.signal.resample_poly``; no audio decoder from ``datasets`` (torchcodec / FFmpeg) is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from math import gcd
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["MelParams", "log_mel", "read_audio", "resample", "stack_features"]


@dataclass(frozen=True)
class MelParams:
    """Log-mel settings: ``sample_rate`` Hz, window ``win_ms`` and hop ``hop_ms`` milliseconds."""

    sample_rate: int = 16000
    n_mels: int = 40
    win_ms: float = 25.0
    hop_ms: float = 10.0
    f_min: float = 20.0
    f_max: float | None = None

    def check(self, where: str) -> None:
        if self.sample_rate < 1000 or self.n_mels < 1 or self.hop_ms <= 0 or self.win_ms <= 0:
            raise ValueError(
                f"{where}: mel settings need sample_rate >= 1000, n_mels >= 1 and positive "
                f"win_ms/hop_ms, got {self}"
            )
        if self.win_ms < self.hop_ms:
            raise ValueError(f"{where}: win_ms ({self.win_ms}) must be >= hop_ms ({self.hop_ms})")

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:
        return max(1, round(self.sample_rate * self.hop_ms / 1000))

    @property
    def n_fft(self) -> int:
        return 1 << (self.win_length - 1).bit_length()

    def frames(self, n_samples: int) -> int:
        """Frames of a clip of ``n_samples`` (``torch.stft`` with ``center=True``)."""
        return n_samples // self.hop_length + 1


@lru_cache(maxsize=8)
def _filters(params: MelParams) -> Tensor:
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(
        num_frequency_bins=params.n_fft // 2 + 1,
        num_mel_filters=params.n_mels,
        min_frequency=params.f_min,
        max_frequency=params.f_max or params.sample_rate / 2,
        sampling_rate=params.sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(np.asarray(bank, dtype=np.float32))  # (freq, mels)


def log_mel(waves: Tensor, params: MelParams, lengths: Tensor | None = None) -> tuple[
    Tensor, Tensor
]:
    """Log-mel frames ``(n, frames, n_mels)`` and a frame mask ``(n, frames)`` of ``waves``.

    ``waves`` is ``(n, samples)`` float at ``params.sample_rate``, right-padded; ``lengths`` (in
    samples) marks the real part of each row (default: all of it). Each clip is standardized over
    its real frames; padded frames are zero.
    """
    if waves.dim() != 2 or not waves.is_floating_point():
        raise ValueError(f"log_mel: waves must be a float (n, samples) tensor, got "
                         f"{waves.dtype} {tuple(waves.shape)}")
    n, samples = waves.shape
    if lengths is None:
        lengths = torch.full((n,), samples, dtype=torch.long)
    window = torch.hann_window(params.win_length, dtype=torch.float32)
    spec = torch.stft(waves.float(), n_fft=params.n_fft, hop_length=params.hop_length,
                      win_length=params.win_length, window=window, center=True,
                      return_complex=True)
    power = spec.abs().pow(2).transpose(1, 2)  # (n, frames, freq)
    mel = torch.log(power @ _filters(params) + 1e-6)
    frames = mel.shape[1]
    real = torch.clamp(lengths // params.hop_length + 1, 1, frames)
    mask = torch.arange(frames)[None, :] < real[:, None]
    keep = mask[..., None].float()
    count = keep.sum(dim=(1, 2), keepdim=True) * params.n_mels
    mean = (mel * keep).sum(dim=(1, 2), keepdim=True) / count
    var = (((mel - mean) * keep) ** 2).sum(dim=(1, 2), keepdim=True) / count
    out = (mel - mean) / torch.sqrt(var + 1e-5) * keep
    return out.contiguous(), mask


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``wave`` (samples,) from ``rate`` to ``target`` Hz (polyphase filter, scipy)."""
    if rate == target:
        return wave
    from scipy.signal import resample_poly

    g = gcd(int(rate), int(target))
    return resample_poly(wave, target // g, rate // g).astype(np.float32)


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """A mono float32 waveform of the WAV/FLAC/OGG file at ``path``, resampled to ``sample_rate``.

    Read with ``soundfile`` (libsndfile); multi-channel files are averaged to mono.
    """
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises its own LibsndfileError / RuntimeError
        raise ValueError(f"cannot read audio file {path}: {err}") from None
    return resample(data.mean(axis=1), int(rate), sample_rate)


def stack_features(
    waves: Sequence[np.ndarray], params: MelParams, max_frames: int, chunk: int = 256
) -> tuple[Tensor, Tensor]:
    """Log-mel frames of clips of any length, cut or right-padded to ``max_frames`` frames.

    Returns ``(features (n, max_frames, n_mels), mask (n, max_frames))``; computed ``chunk``
    clips at a time.
    """
    out = torch.zeros(len(waves), max_frames, params.n_mels)
    out_mask = torch.zeros(len(waves), max_frames, dtype=torch.bool)
    limit = max(1, (max_frames - 1) * params.hop_length)
    for start in range(0, len(waves), chunk):
        part_waves = waves[start : start + chunk]
        samples = max(1, min(max(len(w) for w in part_waves), limit))
        batch = torch.zeros(len(part_waves), samples)
        lengths = torch.ones(len(part_waves), dtype=torch.long)
        for i, w in enumerate(part_waves):
            clip = torch.as_tensor(np.asarray(w, dtype=np.float32)[:samples])
            batch[i, : len(clip)] = clip
            lengths[i] = max(len(clip), 1)
        feats, mask = log_mel(batch, params, lengths)
        width = min(max_frames, feats.shape[1])
        stop = start + len(part_waves)
        out[start:stop, :width], out_mask[start:stop, :width] = feats[:, :width], mask[:, :width]
    return out, out_mask
