"""Side-by-side speed of the ``linear`` attention (favor, 256 features) against its peers.

Peers: performer-pytorch's ``FastAttention`` (same feature count, non-causal) and bare
``torch.nn.functional.scaled_dot_product_attention``. Both sides get the very same q, k, v of shape
(batch, heads, N, head_dim); no projections are included on either side.

    PYTHONPATH=. python -m scripts.bench_peers.linear --lengths 1024 4096 16384 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from harness.attention import get_attention

N_FEATURES = 256


def _inputs(
    seq_len: int, batch: int, heads: int, head_dim: int, device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator(device="cpu").manual_seed(seq_len)
    shape = (batch, heads, seq_len, head_dim)
    # Random unit-variance inputs (never zeros), fixed per length.
    return tuple(torch.randn(shape, generator=gen).to(device) for _ in range(3))  # type: ignore[return-value]


def pairs(
    seq_len: int, batch: int = 1, heads: int = 4, head_dim: int = 64, device: str = "cpu"
) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    """``[(label, ours_fn, peer_fn)]``: zero-argument closures over inputs built once.

    Every closure runs under ``torch.no_grad()``. Needs ``performer-pytorch`` (``peers`` extra).
    """
    try:
        from performer_pytorch import FastAttention
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "scripts/bench_peers/linear.py needs performer-pytorch: pip install performer-pytorch"
            " (or the project's `peers` extra)"
        ) from err
    q, k, v = _inputs(seq_len, batch, heads, head_dim, device)
    ours = get_attention("linear", feature_map="favor", n_features=N_FEATURES, seed=0).to(device)
    with torch.no_grad():
        ours(q, k, v)  # draw the projection once, outside the timed calls
    with torch.random.fork_rng(devices=[]):  # its projection comes from the global RNG
        torch.manual_seed(0)
        peer = FastAttention(dim_heads=head_dim, nb_features=N_FEATURES, causal=False).to(device)

    def run_ours() -> object:
        with torch.no_grad():
            return ours(q, k, v)

    def run_performer() -> object:
        with torch.no_grad():
            return peer(q, k, v)

    def run_sdpa() -> object:
        with torch.no_grad():
            return F.scaled_dot_product_attention(q, k, v)

    return [
        ("linear-favor256 vs performer FastAttention", run_ours, run_performer),
        ("linear-favor256 vs torch SDPA", run_ours, run_sdpa),
    ]


def _timer(fn: Callable[[], object], threads: int) -> benchmark.Timer:
    return benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)


def compare(
    ours_fn: Callable[[], object],
    peer_fn: Callable[[], object],
    threads: int = 1,
    rounds: int = 3,
    min_run_time: float = 0.3,
) -> tuple[float, float]:
    """Median ms of ``ours_fn`` and ``peer_fn``, timed in alternating rounds.

    Alternating the two sides spreads slow drifts of a shared machine's load over both.
    """
    ours_fn(), peer_fn()  # warm-up
    ours_t, peer_t = _timer(ours_fn, threads), _timer(peer_fn, threads)
    ours_ms: list[float] = []
    peer_ms: list[float] = []
    for _ in range(rounds):
        ours_ms.append(ours_t.blocked_autorange(min_run_time=min_run_time).median * 1e3)
        peer_ms.append(peer_t.blocked_autorange(min_run_time=min_run_time).median * 1e3)
    return statistics.median(ours_ms), statistics.median(peer_ms)


def main(argv: list[str] | None = None) -> None:
    """Print N, ours ms, peer ms and peer/ours ratio (> 1 means ours is faster) per pair."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"device={args.device} threads={args.threads} batch={args.batch} heads={args.heads} "
        f"head_dim={args.head_dim} torch={torch.__version__}"
    )
    print(f"{'pair':<44} {'N':>6} {'ours ms':>10} {'peer ms':>10} {'peer/ours':>9}")
    for n in args.lengths:
        for label, ours_fn, peer_fn in pairs(n, args.batch, args.heads, args.head_dim, args.device):
            ours_ms, peer_ms = compare(
                ours_fn, peer_fn, args.threads, args.rounds, args.min_run_time
            )
            print(
                f"{label:<44} {n:>6} {ours_ms:>10.2f} {peer_ms:>10.2f} {peer_ms / ours_ms:>9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
