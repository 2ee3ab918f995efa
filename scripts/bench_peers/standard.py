"""Side-by-side CPU benchmark: ``standard`` (sdpa backend) vs bare torch SDPA on the same q, k, v.

The harness wrapper adds input validation and the contract's masking rules; this pair shows
what that costs.

    PYTHONPATH=. python -m scripts.bench_peers.standard
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from harness.attention import get_attention


def pairs(
    seq_len: int, batch: int = 1, heads: int = 4, head_dim: int = 64, device: str = "cpu"
) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    """``[(label, ours_fn, peer_fn)]``: standard(sdpa) vs bare SDPA, no grad, same inputs."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(batch, heads, seq_len, head_dim, generator=gen).to(device) for _ in range(3)
    )
    ours = get_attention("standard", backend="sdpa")

    def ours_fn() -> torch.Tensor:
        with torch.no_grad():
            return ours(q, k, v)

    def peer_fn() -> torch.Tensor:
        with torch.no_grad():
            return F.scaled_dot_product_attention(q, k, v)

    return [("standard(sdpa) vs bare SDPA", ours_fn, peer_fn)]


if __name__ == "__main__":
    from scripts.bench_attention import main

    main(["--families", "standard"])
