"""Exact float64 reference attention, for tests and fidelity checks (never for speed)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["allowed_keys", "reference_attention"]


def allowed_keys(
    n_q: int,
    n_k: int,
    key_padding_mask: Tensor | None,
    causal: bool,
    device: torch.device | str = "cpu",
) -> Tensor:
    """The (batch or 1, 1, n_q, n_k) bool matrix of keys each query may see (True = visible).

    Causal alignment is top-left: query i sees keys j <= i.
    """
    allowed = torch.ones(1, 1, n_q, n_k, dtype=torch.bool, device=device)
    if causal:
        allowed = torch.tril(allowed)
    if key_padding_mask is not None:
        allowed = allowed & key_padding_mask[:, None, None, :].to(device)
    return allowed


def reference_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    key_padding_mask: Tensor | None = None,
    causal: bool = False,
    allowed: Tensor | None = None,
) -> Tensor:
    """Naive softmax(q k^T / sqrt(d)) v in float64, returned in q's dtype.

    ``allowed`` (broadcastable to (batch, heads, n_q, n_k), True = visible) restricts the keys
    further, e.g. to a sparse pattern. Queries that see no key return zeros.
    """
    qd, kd, vd = q.double(), k.double(), v.double()
    scores = qd @ kd.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = allowed_keys(q.shape[2], k.shape[2], key_padding_mask, causal, q.device)
    if allowed is not None:
        mask = mask & allowed.to(q.device)
    scores = scores.masked_fill(~mask, float("-inf"))
    empty = ~mask.any(dim=-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=-1).masked_fill(~mask, 0.0)
    return (weights @ vd).to(q.dtype)
