"""Sliding-window softmax attention: query i sees keys j with |i - j| <= window (causal: j in
[i - window, i]), computed over query blocks of ``window`` tokens, each against its block and the
neighbouring ones, so no N x N matrix is built."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.attention import Attention, Capabilities, register_attention

__all__ = ["SlidingWindowAttention"]


@register_attention
class SlidingWindowAttention(Attention):
    """Softmax over the keys within ``window`` positions of each query (a local band)."""

    name = "sliding_window"
    capabilities = Capabilities(
        causal=True,
        key_padding_mask=True,
        cross_lengths=False,
        time_complexity="O(N * window)",
        memory_complexity="O(N * window)",
        memory_exponent=1.0,
        approximates_softmax=True,
        time_exponent=1.0,
    )

    def __init__(self, *, window: int = 32) -> None:
        super().__init__()
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"sliding_window: window must be an int >= 1, got {window!r}")
        self.window = window

    @classmethod
    def exact_options(cls, seq_len: int) -> dict[str, int]:
        """A window as long as the sequence: full softmax attention."""
        return {"window": seq_len}

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, causal: bool
    ) -> Tensor:
        B, H, N, d = q.shape
        w = min(self.window, N)
        nb = -(-N // w)
        pad = nb * w - N
        # Blocks of w queries; block b sees key blocks b-1, b, b+1 (3w keys).
        qb = F.pad(q, (0, 0, 0, pad)).view(B, H, nb, w, d)
        kp = F.pad(k, (0, 0, w, pad + w))
        vp = F.pad(v, (0, 0, w, pad + w))
        kb = kp.unfold(2, 3 * w, w).transpose(-1, -2)  # (B, H, nb, 3w, d)
        vb = vp.unfold(2, 3 * w, w).transpose(-1, -2)
        qpos = torch.arange(nb * w, device=q.device).view(nb, w, 1)
        kpos = (torch.arange(nb, device=q.device).view(nb, 1, 1) * w - w
                + torch.arange(3 * w, device=q.device).view(1, 1, 3 * w))
        gap = qpos - kpos
        allowed = (kpos >= 0) & (kpos < N) & (gap <= w) & (gap >= (0 if causal else -w))
        allowed = allowed.expand(B, 1, nb, w, 3 * w)
        if key_padding_mask is not None:
            real = F.pad(key_padding_mask, (w, pad + w), value=False)
            real = real.unfold(1, 3 * w, w)  # (B, nb, 3w)
            allowed = allowed & real[:, None, :, None, :]
        empty = ~allowed.any(dim=-1, keepdim=True)
        scores = (qb @ kb.transpose(-1, -2)) * (1.0 / math.sqrt(d))
        scores = scores.masked_fill(~(allowed | empty), float("-inf"))
        out = torch.softmax(scores, dim=-1) @ vb
        out = out.masked_fill(empty, 0.0)
        return out.reshape(B, H, nb * w, -1)[:, :, :N]
