"""Forward time of each attention family against the implementation users would otherwise pick.

Every pair (ours, peer) is timed side by side in this one process, interleaved round by round so
that machine noise hits both sides alike; the ratio is peer median / ours median (> 1: ours is
faster). A second table compares each efficient family with standard attention (sdpa backend) on
the same inputs. CPU, batch 1, 4 heads, head_dim 64 unless told otherwise.

    PYTHONPATH=. python scripts/bench_attention.py --lengths 1024 4096 16384 --rounds 5
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.benchmark import Timer

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FAMILIES = ("standard", "sparse", "lsh", "linear")
# Options of the efficient families in the "vs standard" table (the settings).
VS_STANDARD = {
    "sparse": {"block_size": 64, "window_blocks": 3, "global_blocks": 1, "random_blocks": 3},
    "lsh": {"chunk_size": 64, "n_hashes": 1},
    "linear[favor]": {"feature_map": "favor", "n_features": 256},
    "linear[elu]": {"feature_map": "elu"},
}


def _median_time(fn: Callable[[], object], threads: int, min_run_time: float) -> float:
    """Median seconds per call of one blocked_autorange measurement."""
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def time_pair(
    ours: Callable[[], object],
    peer: Callable[[], object],
    *,
    rounds: int,
    threads: int,
    min_run_time: float,
) -> tuple[list[float], list[float]]:
    """Interleaved timings: ``rounds`` medians for each side, after one warm-up call each."""
    ours()
    peer()
    a, b = [], []
    for i in range(rounds):
        first, second = (ours, peer) if i % 2 == 0 else (peer, ours)
        t1 = _median_time(first, threads, min_run_time)
        t2 = _median_time(second, threads, min_run_time)
        if first is ours:
            a.append(t1)
            b.append(t2)
        else:
            a.append(t2)
            b.append(t1)
    return a, b


def _fmt_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:.1f}"


def _vs_standard_pairs(seq_len: int, batch: int, heads: int, head_dim: int):
    from harness.attention import get_attention

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, heads, seq_len, head_dim, generator=gen) for _ in range(3))
    standard = get_attention("standard", backend="sdpa")

    def run(attn, shared: bool) -> Callable[[], object]:
        def fn() -> object:
            with torch.no_grad():
                return attn(q, q if shared else k, v)

        return fn

    base = run(standard, False)
    out = []
    for label, options in VS_STANDARD.items():
        name = label.split("[")[0]
        attn = get_attention(name, **options)
        out.append((f"{label} vs standard(sdpa)", run(attn, attn.capabilities.shared_qk), base))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--min-run-time", type=float, default=0.5)
    parser.add_argument("--no-vs-standard", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    # Free one large block first: glibc then raises its mmap threshold (as it does after any large
    # free), so every pair runs with the same allocator state whatever ran before it. Peers that
    # allocate many temporaries are up to 25% faster in this state than in a cold process.
    warm = torch.empty(30 * 2**20 // 4)
    warm.fill_(1.0)
    del warm

    print(f"torch {torch.__version__}, threads {args.threads}, rounds {args.rounds}, "
          f"batch 1, heads 4, head_dim 64; ratio = peer median / ours median (>1: ours faster)\n")
    print("| N | pair | ours ms | peer ms | ratio |")
    print("| --- | --- | --- | --- | --- |")
    started = time.perf_counter()
    for n in args.lengths:
        pairs = []
        for family in args.families:
            module = importlib.import_module(f"scripts.bench_peers.{family}")
            pairs += module.pairs(n)
        if not args.no_vs_standard:
            pairs += _vs_standard_pairs(n, 1, 4, 64)
        for label, ours, peer in pairs:
            a, b = time_pair(ours, peer, rounds=args.rounds, threads=args.threads,
                             min_run_time=args.min_run_time)
            ratio = statistics.median(b) / statistics.median(a)
            print(f"| {n} | {label} | {_fmt_ms(a)} | {_fmt_ms(b)} | {ratio:.2f}x |", flush=True)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
