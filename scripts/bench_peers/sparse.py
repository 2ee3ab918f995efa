"""Side-by-side CPU benchmark: ``sparse`` attention vs transformers' BigBird block-sparse attention.

Both sides start from the same ``(batch, N, hidden)`` hidden states and the same q/k/v
``nn.Linear`` projections (ours reuses the peer's modules) and return ``(batch, N, hidden)``.
A second pair compares the bare attention call with torch's
``scaled_dot_product_attention`` on the same q, k, v, and a third with torch's FlexAttention
(``torch.compile(flex_attention)`` with a ``create_block_mask`` built from our
``dense_mask``: the same pattern, 64-token blocks). A peer that fails (FlexAttention's CPU
compile at 16384) is printed as the peer's failure. Block 64, window 3, 1 global, 3 random.
The peers are imported here only, never by the ``harness`` package.

    PYTHONPATH=. python -m scripts.bench_peers.sparse --lengths 1024 4096 16384 --threads 2
    PYTHONPATH=. python -m scripts.bench_peers.sparse --lengths 4096 16384 --threads 1 --only flex
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from harness.attention import get_attention

BLOCK_SIZE = 64
WINDOW_BLOCKS = 3
GLOBAL_BLOCKS = 1
RANDOM_BLOCKS = 3


def _bigbird(
    seq_len: int, hidden: int, heads: int
) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The peer module (eval mode) and the all-ones masks BigBirdModel would pass it."""
    from transformers import BigBirdConfig
    from transformers.models.big_bird.modeling_big_bird import (
        BigBirdBlockSparseAttention,
        BigBirdModel,
    )

    config = BigBirdConfig(
        hidden_size=hidden,
        num_attention_heads=heads,
        block_size=BLOCK_SIZE,
        num_random_blocks=RANDOM_BLOCKS,
        attention_type="block_sparse",
        max_position_embeddings=seq_len,
    )
    module = BigBirdBlockSparseAttention(config, seed=0).eval()
    ones = torch.ones(1, seq_len)
    blocked, band, from_mask, to_mask = BigBirdModel.create_masks_for_block_sparse_attn(
        ones, BLOCK_SIZE
    )
    masks = {
        "band_mask": band,
        "from_mask": from_mask,
        "to_mask": to_mask,
        "from_blocked_mask": blocked,
        "to_blocked_mask": blocked,
    }
    return module, masks


def _flex(
    ours: torch.nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> Callable[[], object]:
    """The FlexAttention peer: compiled ``flex_attention`` with a block mask made from our dense
    pattern (compiled on its first call; a compile failure surfaces there)."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    seq_len = q.shape[2]
    dense = ours.dense_mask(seq_len).to(q.device)

    def mask_mod(b, h, q_idx, kv_idx):
        return dense[q_idx, kv_idx]

    block_mask = create_block_mask(mask_mod, None, None, seq_len, seq_len, device=str(q.device),
                                   BLOCK_SIZE=BLOCK_SIZE)
    compiled = torch.compile(flex_attention)

    def flex_bare() -> object:
        with torch.no_grad():
            return compiled(q, k, v, block_mask=block_mask)

    return flex_bare


def pairs(
    seq_len: int, batch: int = 1, heads: int = 4, head_dim: int = 64, device: str = "cpu"
) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    """``[(label, ours_fn, peer_fn)]`` zero-argument closures on inputs built once.

    * ``sparse+proj vs BigBirdBlockSparseAttention``: hidden states -> same q/k/v projections ->
      attention -> ``(batch, N, hidden)`` on both sides.
    * ``sparse vs SDPA``: the bare attention call on the same q, k, v.
    * ``sparse vs FlexAttention``: the bare call vs compiled FlexAttention, same pattern.

    Every closure runs under ``torch.no_grad()``; the peer module is in eval mode.
    """
    if seq_len % BLOCK_SIZE:
        raise ValueError(
            f"seq_len must be a multiple of {BLOCK_SIZE} (BigBird requires it), got {seq_len}"
        )
    hidden = heads * head_dim
    torch.manual_seed(0)
    with torch.no_grad():
        peer, masks = _bigbird(seq_len, hidden, heads)
        peer = peer.to(device)
        peer_masks = {
            name: m.expand(batch, *m.shape[1:]).contiguous().to(device) for name, m in masks.items()
        }
        ours = get_attention(
            "sparse",
            block_size=BLOCK_SIZE,
            window_blocks=WINDOW_BLOCKS,
            global_blocks=GLOBAL_BLOCKS,
            random_blocks=RANDOM_BLOCKS,
        ).eval()
        states = torch.randn(batch, seq_len, hidden).to(device)

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, seq_len, heads, head_dim).transpose(1, 2)

        q, k, v = (split(proj(states)).contiguous() for proj in (peer.query, peer.key, peer.value))

    def ours_projected() -> torch.Tensor:
        with torch.no_grad():
            q_, k_, v_ = (split(p(states)) for p in (peer.query, peer.key, peer.value))
            return ours(q_, k_, v_).transpose(1, 2).reshape(batch, seq_len, hidden)

    def peer_projected() -> object:
        with torch.no_grad():
            return peer(states, **peer_masks)

    def ours_bare() -> torch.Tensor:
        with torch.no_grad():
            return ours(q, k, v)

    def sdpa_bare() -> torch.Tensor:
        with torch.no_grad():
            return F.scaled_dot_product_attention(q, k, v)

    return [
        ("sparse+proj vs BigBirdBlockSparseAttention", ours_projected, peer_projected),
        ("sparse vs SDPA (bare attention)", ours_bare, sdpa_bare),
        ("sparse vs FlexAttention (compiled, bare)", ours_bare, _flex(ours, q, k, v)),
    ]


def _median_ms(fn: Callable[[], object], threads: int, min_run_time: float) -> float:
    timer = Timer("fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def main(argv: list[str] | None = None) -> None:
    """Print N, ours ms, peer ms and peer/ours ratio (> 1: ours is faster) for each pair."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=5, help="alternating ours/peer rounds")
    parser.add_argument("--min-run-time", type=float, default=0.5, help="seconds per measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=["bigbird", "sdpa", "flex"], default=None,
                        help="run one pair only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"device={args.device} threads={args.threads} batch=1 heads=4 head_dim=64"
        f" block={BLOCK_SIZE} window={WINDOW_BLOCKS} global={GLOBAL_BLOCKS}"
        f" random={RANDOM_BLOCKS} torch={torch.__version__}; medians over {args.rounds}"
        " alternating rounds (each round: median of a blocked_autorange)"
    )
    print(f"{'pair':<44} {'N':>6} {'ours ms':>9} {'peer ms':>9} {'peer/ours':>9}  ratio range")
    for seq_len in args.lengths:
        for label, ours_fn, peer_fn in pairs(seq_len, device=args.device):
            key = "flex" if "Flex" in label else "sdpa" if "SDPA" in label else "bigbird"
            if args.only and key != args.only:
                continue
            ours_fn()
            try:
                peer_fn()  # warm-up (and FlexAttention's compile)
            except Exception as err:  # the peer's failure, recorded, not ours
                first = str(err).strip().splitlines()[0][:100] if str(err).strip() else ""
                print(f"{label:<44} {seq_len:>6} peer failed: {type(err).__name__}: {first}",
                      flush=True)
                continue
            ours_ms, peer_ms, ratios = [], [], []
            for _ in range(args.rounds):
                ours_ms.append(_median_ms(ours_fn, args.threads, args.min_run_time))
                peer_ms.append(_median_ms(peer_fn, args.threads, args.min_run_time))
                ratios.append(peer_ms[-1] / ours_ms[-1])
            print(
                f"{label:<44} {seq_len:>6} {statistics.median(ours_ms):>9.1f}"
                f" {statistics.median(peer_ms):>9.1f} {statistics.median(ratios):>9.2f}"
                f"  [{min(ratios):.2f}, {max(ratios):.2f}]",
                flush=True,
            )


if __name__ == "__main__":
    main()
