"""Standard (full softmax) attention: the exact O(N^2) baseline and reference."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.attention.base import Attention, Capabilities, pass_factor, register_attention
from harness.attention.reference import allowed_keys

__all__ = ["StandardAttention"]

_BACKENDS = ("sdpa", "eager")
#: torch SDPA kernels ``sdpa_kernel`` can pin; ``auto`` lets torch choose per call.
SDPA_KERNELS = ("auto", "flash", "efficient", "cudnn", "math")
#: Kernels torch has only for CUDA (flash and math also run on CPU).
CUDA_ONLY_KERNELS = ("efficient", "cudnn")


def _sdpa_backend(kernel: str):
    from torch.nn.attention import SDPBackend

    return {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[kernel]


@register_attention
class StandardAttention(Attention):
    """softmax(q k^T / sqrt(d)) v over all keys.

    ``backend="sdpa"`` calls ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels
    where the device has them); ``backend="eager"`` materializes the N x N weights explicitly.
    ``sdpa_kernel`` pins torch's SDPA kernel (``auto``: torch chooses; ``flash``, ``math`` on
    CPU and CUDA; ``efficient``, ``cudnn`` on CUDA only, refused with ``ValueError`` elsewhere).
    A pinned kernel that cannot take a call (dtype, mask) raises ``ValueError`` naming it.
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

    backend_options: ClassVar[tuple[str, ...]] = ("sdpa_kernel",)
    flops_formula = "4·B·H·N²·d forward (halved when causal); backward 2.5x forward"

    def __init__(self, *, backend: str = "sdpa", sdpa_kernel: str = "auto") -> None:
        super().__init__()
        if backend not in _BACKENDS:
            raise ValueError(f"standard: backend must be one of {_BACKENDS}, got {backend!r}")
        if sdpa_kernel not in SDPA_KERNELS:
            raise ValueError(f"standard: sdpa_kernel must be one of {SDPA_KERNELS}, got"
                             f" {sdpa_kernel!r}")
        if sdpa_kernel != "auto" and backend != "sdpa":
            raise ValueError(f"standard: sdpa_kernel={sdpa_kernel!r} pins a kernel of the sdpa"
                             f" backend; drop it or use backend='sdpa' (got {backend!r})")
        self.backend = backend
        self.sdpa_kernel = sdpa_kernel

    @classmethod
    def device_support(cls, device: str, options: dict[str, Any]) -> str | None:
        kernel = options.get("sdpa_kernel", "auto")
        if kernel in CUDA_ONLY_KERNELS and not str(device).startswith("cuda"):
            return (f"standard: sdpa_kernel={kernel!r} is a CUDA-only kernel of torch's SDPA;"
                    f" on {device} use sdpa_kernel='auto', 'flash' or 'math'")
        return None

    @classmethod
    def flops(cls, batch: int, heads: int, n: int, head_dim: int,
              options: dict[str, Any] | None = None, pass_: str = "forward", *,
              causal: bool = False) -> float:
        forward = 4.0 * batch * heads * n * n * head_dim * (0.5 if causal else 1.0)
        return forward * pass_factor(pass_)

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
            if self.sdpa_kernel != "auto":
                out = self._pinned(q, k, v, mask, causal)
            elif mask is None:
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

    def _pinned(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None,
                causal: bool) -> Tensor:
        """SDPA with the kernel ``sdpa_kernel`` names, and no other."""
        from torch.nn.attention import sdpa_kernel

        problem = self.device_support(str(q.device), {"sdpa_kernel": self.sdpa_kernel})
        if problem:
            raise ValueError(problem)
        try:
            with sdpa_kernel([_sdpa_backend(self.sdpa_kernel)]):
                if mask is None:
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        except RuntimeError as err:
            if "No available kernel" not in str(err) and "No viable backend" not in str(err):
                raise
            raise ValueError(
                f"standard: sdpa_kernel={self.sdpa_kernel!r} cannot run this call (dtype"
                f" {q.dtype}, head_dim {q.shape[-1]}, {'a mask' if mask is not None else 'no mask'}"
                f", {q.device}); use sdpa_kernel='auto' to let torch choose") from None
