"""Standard (full softmax) attention: the exact O(N^2) baseline and reference."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.attention.base import Attention, Capabilities, register_attention
from harness.attention.reference import allowed_keys

__all__ = ["StandardAttention"]

_BACKENDS = ("sdpa", "eager")


@register_attention
class StandardAttention(Attention):
    """softmax(q k^T / sqrt(d)) v over all keys.

    ``backend="sdpa"`` calls ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels
    where the device has them); ``backend="eager"`` materializes the N x N weights explicitly.
    """

    name = "standard"
    capabilities = Capabilities(
        causal=True,
        key_padding_mask=True,
        cross_lengths=True,
        time_complexity="O(N^2)",
        memory_complexity="O(N^2)",
        memory_exponent=2.0,
    )

    def __init__(self, *, backend: str = "sdpa") -> None:
        super().__init__()
        if backend not in _BACKENDS:
            raise ValueError(f"standard: backend must be one of {_BACKENDS}, got {backend!r}")
        self.backend = backend

    @property
    def claimed_memory(self) -> tuple[str, float]:
        if self.backend == "sdpa":
            # torch's fused kernels (flash / memory-efficient, on CPU and CUDA) never hold the
            # N x N weights; only its math fallback does.
            return "O(N) with a fused SDPA kernel (O(N^2) in torch's math fallback)", 1.0
        return super().claimed_memory

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, causal: bool
    ) -> Tensor:
        n_q, n_k = q.shape[2], k.shape[2]
        mask = None
        empty = None
        if key_padding_mask is not None:
            mask = allowed_keys(n_q, n_k, key_padding_mask, causal, q.device)
            empty = ~mask.any(dim=-1, keepdim=True)
            # Rows that see nothing attend to everything, then are zeroed: no NaN, no NaN grads.
            mask = mask | empty
        if self.backend == "sdpa":
            if mask is None:
                out = F.scaled_dot_product_attention(q, k, v, is_causal=causal and n_q > 0)
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
            if mask is None and causal:
                mask = allowed_keys(n_q, n_k, None, True, q.device)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=-1)
            out = weights @ v
        if empty is not None:
            out = out.masked_fill(empty, 0.0)
        return out
