"""Attentions that misbehave on purpose (a plugin module for the tests of time limits, signals
and output checks): they hang, hang past signals, wait on a file, return NaN or a wrong shape.

Load with ``load_plugins(["misbehaving_attentions"])`` (tests/ on the import path)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import torch
from torch import Tensor

from harness.attention import Attention, Capabilities, reference_attention, register_attention

_CAPS = Capabilities(causal=True, key_padding_mask=True, cross_lengths=True,
                     time_complexity="O(N^2)", memory_complexity="O(N^2)", memory_exponent=2.0,
                     approximates_softmax=False, time_exponent=2.0)


class _Softmax(Attention):
    capabilities = _CAPS

    def softmax(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None,
                causal: bool) -> Tensor:
        return reference_attention(q, k, v, mask, causal).to(q.dtype)


@register_attention
class SleepyAttention(_Softmax):
    """Never returns: sleeps in short naps (a Python-level hang). ``stubborn`` blocks SIGALRM
    first, so only killing its process stops it (a hang inside native code)."""

    name = "sleepy"

    def __init__(self, *, stubborn: bool = False) -> None:
        super().__init__()
        self.stubborn = stubborn

    def attend(self, q, k, v, key_padding_mask, causal):
        if self.stubborn:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            time.sleep(0.05)


@register_attention
class HeldAttention(_Softmax):
    """Softmax attention that waits while the file ``hold`` exists (a cell that is still running
    when a test sends its signal, however loaded the machine)."""

    name = "held"

    def __init__(self, *, hold: str = "") -> None:
        super().__init__()
        self.hold = hold

    def attend(self, q, k, v, key_padding_mask, causal):
        while self.hold and Path(self.hold).exists():
            time.sleep(0.02)
        return self.softmax(q, k, v, key_padding_mask, causal)


@register_attention
class NanAttention(_Softmax):
    """Returns NaN for any input."""

    name = "nan_out"

    def attend(self, q, k, v, key_padding_mask, causal):
        return torch.full((*q.shape[:3], v.shape[-1]), float("nan"), dtype=q.dtype,
                          device=q.device)


@register_attention
class WrongShapeAttention(_Softmax):
    """Returns (batch, heads, seq_len, head_dim + 1)."""

    name = "wrong_shape"

    def attend(self, q, k, v, key_padding_mask, causal):
        out = self.softmax(q, k, v, key_padding_mask, causal)
        return torch.cat([out, out[..., :1]], dim=-1)
