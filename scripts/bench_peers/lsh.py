"""Side-by-side CPU benchmark: ``lsh`` attention vs transformers' Reformer ``LSHSelfAttention``.

Both sides start from the same ``(batch, N, hidden)`` hidden states and the same shared
query/key and value ``nn.Linear`` projections (ours reuses the peer's modules, then calls our
attention with ``q is k``) and return ``(batch, N, hidden)``. A second pair compares the bare
attention call with torch's ``scaled_dot_product_attention`` on the same q, k, v.
Chunk 64, 1 hash, the previous chunk only, the same bucket count on both sides; a further pair
runs the peer as users get it by default (``num_buckets=None``: transformers picks and factorizes
the bucket count, hashing less) against our default (automatic bucket count).
The peer is imported here only, never by the ``harness`` package.

    PYTHONPATH=. python -m scripts.bench_peers.lsh --lengths 1024 4096 16384 --threads 1
    PYTHONPATH=. python -m scripts.bench_peers.lsh --causal-cost --lengths 1024 4096 --threads 1
    PYTHONPATH=. python -m scripts.bench_peers.lsh --factorize-gain --lengths 16384 --threads 2
    PYTHONPATH=. python -m scripts.bench_peers.lsh --only "num_buckets=None" --threads 2

Times are medians (and interquartile ranges) of per-call means over alternating blocks; the
ratio is the median of per-round peer/ours ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from harness.attention import get_attention
from harness.attention.lsh import auto_n_buckets

CHUNK_SIZE = 64
N_HASHES = 1
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _reformer_lsh(
    seq_len: int, hidden: int, heads: int, head_dim: int, n_buckets: int | None
):
    """The peer: transformers' ``LSHSelfAttention`` in eval mode, configured like ours
    (``n_buckets=None``: the peer's default, chosen and factorized from the length per call)."""
    from transformers import ReformerConfig
    from transformers.models.reformer.modeling_reformer import LSHSelfAttention

    config = ReformerConfig(
        hidden_size=hidden,
        num_attention_heads=heads,
        attention_head_size=head_dim,
        lsh_attn_chunk_length=CHUNK_SIZE,
        num_hashes=N_HASHES,
        num_buckets=n_buckets,
        lsh_num_chunks_before=1,
        lsh_num_chunks_after=0,
        is_decoder=False,
        hash_seed=0,
        max_position_embeddings=seq_len,
    )
    return LSHSelfAttention(config).eval()


def pairs(
    seq_len: int, batch: int = 1, heads: int = 4, head_dim: int = 64, device: str = "cpu"
) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    """``[(label, ours_fn, peer_fn)]`` zero-argument closures on inputs built once.

    * ``lsh+proj vs LSHSelfAttention``: hidden states -> the peer's ``query_key`` and ``value``
      projections -> our attention with shared QK -> merged heads ``(batch, N, hidden)``; the peer
      runs the whole layer on the same hidden states.
    * ``lsh vs SDPA (bare attention)``: the attention call alone on the same q (= k) and v.
    * ``kernel floor vs LSHSelfAttention``: only the kernels an LSH layer built from torch ops
      cannot avoid (see :func:`_kernel_floor`), against the peer layer: peer / floor is the best
      ratio any torch-level LSH layer can reach here.
    * ``shared projections vs LSHSelfAttention``: the two projections alone, the part both
      layers share (``peer - projections`` is the peer's attention proper).
    * ``lsh+proj vs LSHSelfAttention (num_buckets=None)``: both sides in their default bucket
      configuration, projections included (the peer as users get it).

    Every closure runs under ``torch.no_grad()``; the peer module is in eval mode.
    """
    if seq_len < 1 or batch < 1 or heads < 1 or head_dim < 1:
        raise ValueError(
            f"pairs: seq_len, batch, heads, head_dim must be >= 1, got"
            f" {seq_len}, {batch}, {heads}, {head_dim}"
        )
    hidden = heads * head_dim
    n_buckets = auto_n_buckets(seq_len, CHUNK_SIZE)
    torch.manual_seed(0)
    with torch.no_grad():
        peer = _reformer_lsh(seq_len, hidden, heads, head_dim, n_buckets).to(device)
        ours = get_attention(
            "lsh", chunk_size=CHUNK_SIZE, n_hashes=N_HASHES, n_buckets=n_buckets, seed=0
        ).eval()
        states = torch.randn(batch, seq_len, hidden).to(device)

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, seq_len, heads, head_dim).transpose(1, 2)

        qk = split(peer.query_key(states)).contiguous()
        v = split(peer.value(states)).contiguous()

    def ours_projected() -> torch.Tensor:
        with torch.no_grad():
            qk_ = split(peer.query_key(states))
            v_ = split(peer.value(states))
            out = ours(qk_, qk_, v_)
            return out.transpose(1, 2).reshape(batch, seq_len, hidden)

    def peer_projected() -> object:
        with torch.no_grad():
            return peer(states)

    def projections() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return peer.query_key(states), peer.value(states)

    def ours_bare() -> torch.Tensor:
        with torch.no_grad():
            return ours(qk, qk, v)

    def sdpa_bare() -> torch.Tensor:
        with torch.no_grad():
            return F.scaled_dot_product_attention(qk, qk, v)

    floor = _kernel_floor(peer, states, heads, head_dim, n_buckets)
    with torch.no_grad():
        default_peer = _reformer_lsh(seq_len, hidden, heads, head_dim, None).to(device)
        default_peer.load_state_dict(peer.state_dict())  # the same projections
        default_ours = get_attention("lsh", chunk_size=CHUNK_SIZE, n_hashes=N_HASHES).eval()

    def ours_default() -> torch.Tensor:
        with torch.no_grad():
            qk_ = split(peer.query_key(states))
            v_ = split(peer.value(states))
            out = default_ours(qk_, qk_, v_)
            return out.transpose(1, 2).reshape(batch, seq_len, hidden)

    def peer_default() -> object:
        with torch.no_grad():
            return default_peer(states)

    return [
        ("lsh+proj vs LSHSelfAttention", ours_projected, peer_projected),
        ("lsh vs SDPA (bare attention)", ours_bare, sdpa_bare),
        ("kernel floor vs LSHSelfAttention", floor, peer_projected),
        ("shared projections vs LSHSelfAttention", projections, peer_projected),
        ("lsh+proj vs LSHSelfAttention (num_buckets=None)", ours_default, peer_default),
    ]


def factorize_pairs(
    seq_len: int, batch: int = 1, heads: int = 4, head_dim: int = 64
) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    """``[(label, factorized, whole)]``: our default layer (projections included) with the
    bucket count factorized above ``FACTORIZE_ABOVE`` (the current code) against the same layer
    hashing with one rotation of ``n_buckets / 2`` columns (the code before factorization); the
    ratio whole / factorized is the gain of factorized hashing. Same inputs, same process."""
    from harness.attention import lsh as lsh_module

    hidden = heads * head_dim
    gen = torch.Generator().manual_seed(0)
    states = torch.randn(batch, seq_len, hidden, generator=gen)
    proj_qk = torch.nn.Linear(hidden, hidden, bias=False)
    proj_v = torch.nn.Linear(hidden, hidden, bias=False)
    factorized = get_attention("lsh", chunk_size=CHUNK_SIZE, n_hashes=N_HASHES).eval()
    whole = get_attention("lsh", chunk_size=CHUNK_SIZE, n_hashes=N_HASHES).eval()

    def layer(attn, threshold: int) -> Callable[[], object]:
        def run() -> torch.Tensor:
            saved = lsh_module.FACTORIZE_ABOVE
            lsh_module.FACTORIZE_ABOVE = threshold
            try:
                with torch.no_grad():
                    qk = proj_qk(states).view(batch, seq_len, heads, head_dim).transpose(1, 2)
                    v = proj_v(states).view(batch, seq_len, heads, head_dim).transpose(1, 2)
                    return attn(qk, qk, v)
            finally:
                lsh_module.FACTORIZE_ABOVE = saved
        return run

    n_buckets = auto_n_buckets(seq_len, CHUNK_SIZE)
    label = f"lsh+proj factorized vs whole ({n_buckets} buckets)"
    return [(label, layer(factorized, lsh_module.FACTORIZE_ABOVE), layer(whole, 2**62))]


def causal_pairs(
    seq_len: int, batch: int = 1, heads: int = 4, head_dim: int = 64, n_hashes: int = N_HASHES
) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    """Causal mode's cost: ``[(label, non-causal fn, causal fn)]`` on the same q (= k) and v,
    forward and forward + backward; the printed ratio is causal / non-causal time."""
    torch.manual_seed(0)
    attn = get_attention("lsh", chunk_size=CHUNK_SIZE, n_hashes=n_hashes).eval()
    qk, v = (torch.randn(batch, heads, seq_len, head_dim) for _ in range(2))
    qg, vg = (t.clone().requires_grad_(True) for t in (qk, v))

    def forward(causal: bool) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return attn(qk, qk, v, causal=causal)
        return run

    def fwd_bwd(causal: bool) -> Callable[[], object]:
        def run() -> object:
            attn(qg, qg, vg, causal=causal).sum().backward()
            qg.grad = vg.grad = None
        return run

    tag = f"{n_hashes} hash{'es' if n_hashes > 1 else ''}"
    return [
        (f"lsh causal/non-causal fwd, {tag}", forward(False), forward(True)),
        (f"lsh causal/non-causal fwd+bwd, {tag}", fwd_bwd(False), fwd_bwd(True)),
    ]


def _kernel_floor(
    peer: torch.nn.Module, states: torch.Tensor, heads: int, head_dim: int, n_buckets: int
) -> Callable[[], torch.Tensor]:
    """The irreducible part of a one-round LSH layer made of torch kernels, as a closure.

    It runs the two shared projections, the hash projection ``x @ R`` (one (head_dim,
    n_buckets / 2) rotation per head), the sorted-row gathers of q and v (with a fixed random
    order), the fused attention over (chunk, previous chunk) windows with a mask, and the gather
    back to original order. It skips bucket selection, sorting, key normalization and index
    arithmetic, so it is a lower bound on any such layer's time, not a working layer.
    """
    batch, seq_len, _ = states.shape
    C = CHUNK_SIZE
    nc = -(-seq_len // C)
    G = batch * heads
    gen = torch.Generator().manual_seed(0)
    rot = torch.randn(heads, 1, head_dim, n_buckets // 2, generator=gen)
    proj = torch.empty(batch, heads, 1, seq_len, n_buckets // 2)
    order = torch.stack([torch.randperm(seq_len, generator=gen) for _ in range(G)])
    order = torch.cat([order, order[:, : nc * C - seq_len]], dim=1)  # fill the last chunk
    # Rows of the (batch * N * heads, head_dim) projection output, in sorted order per head.
    head = torch.arange(G) % heads + torch.arange(G) // heads * seq_len * heads
    index = torch.cat([torch.zeros(C, dtype=torch.long), (order * heads + head[:, None]).view(-1)])
    back = torch.argsort(order[:, :seq_len], dim=1) + (torch.arange(G) * nc * C)[:, None]
    back = back.view(batch, heads, seq_len).transpose(1, 2).reshape(-1)
    mask = torch.zeros(1, nc, C, 2 * C)
    mask[:, 0, :, :C] = float("-inf")
    windows = (G, nc, 2 * C, head_dim), (nc * C * head_dim, C * head_dim, head_dim, 1)

    def floor() -> torch.Tensor:
        with torch.no_grad():
            qk = peer.query_key(states)
            v = peer.value(states)
            split = qk.view(batch, seq_len, heads, head_dim).transpose(1, 2)
            torch.matmul(split.unsqueeze(2), rot, out=proj)
            q_rows = qk.view(-1, head_dim).index_select(0, index)
            v_rows = v.view(-1, head_dim).index_select(0, index)
            out = F.scaled_dot_product_attention(
                q_rows[C:].view(G, nc, C, head_dim),
                q_rows.as_strided(*windows),
                v_rows.as_strided(*windows),
                attn_mask=mask,
            )
            rows = out.reshape(G * nc * C, head_dim)
            return rows.index_select(0, back).view(batch, seq_len, heads * head_dim)

    return floor


def _block_ms(timer: Timer, number: int) -> float:
    """Mean milliseconds per call over one block of ``number`` calls."""
    return timer.timeit(number).mean * 1e3


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return q1, q2, q3


def compare(
    ours_fn: Callable[[], object],
    peer_fn: Callable[[], object],
    threads: int,
    rounds: int,
    block_seconds: float,
    clock: str = "wall",
) -> dict[str, list[float]]:
    """Time ``ours_fn`` and ``peer_fn`` in alternating blocks (paired, so load drifts cancel).

    Each side is warmed up, its block size calibrated to about ``block_seconds``, then ``rounds``
    blocks are run per side, alternating. ``clock="cpu"`` times with the process CPU clock, which a
    busy shared machine disturbs far less than wall time (meaningful with one thread). Returns
    per-block ms for each side and per-round ratios peer / ours.
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    timers = [
        Timer("fn()", globals={"fn": fn}, num_threads=threads, timer=CLOCKS[clock])
        for fn in (ours_fn, peer_fn)
    ]
    numbers = []
    for timer in timers:
        timer.timeit(1)  # warm-up
        once = max(timer.timeit(1).mean, 1e-6)
        numbers.append(max(1, int(block_seconds / once)))
    ours_ms, peer_ms = [], []
    for _ in range(rounds):
        ours_ms.append(_block_ms(timers[0], numbers[0]))
        peer_ms.append(_block_ms(timers[1], numbers[1]))
    return {
        "ours": ours_ms,
        "peer": peer_ms,
        "ratio": [p / o for o, p in zip(ours_ms, peer_ms, strict=True)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--threads", type=int, default=1, help="fixed torch thread count")
    parser.add_argument("--rounds", type=int, default=10, help="alternating ours/peer blocks")
    parser.add_argument("--block-seconds", type=float, default=0.3, help="seconds per block")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or process CPU time (steadier on a busy machine)")
    parser.add_argument("--skip-sdpa-above", type=int, default=16384,
                        help="skip the SDPA pair for longer sequences (it is O(N^2))")
    parser.add_argument("--causal-cost", action="store_true",
                        help="time causal vs non-causal lsh instead (ratio: causal / non-causal)")
    parser.add_argument("--n-hashes", type=int, default=N_HASHES, help="with --causal-cost")
    parser.add_argument("--factorize-gain", action="store_true",
                        help="time factorized vs whole-count hashing of our layer instead"
                        " (ratio: whole / factorized)")
    parser.add_argument("--only", default=None,
                        help="run only the pairs whose label contains this text")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, CPU,"
          f" threads={args.threads}, batch 1, 4 heads, head_dim 64, chunk {CHUNK_SIZE},"
          f" {N_HASHES} hash; {args.clock} clock; {args.rounds} alternating blocks of"
          f" ~{args.block_seconds}s per side")
    print(f"{'pair':<48} {'N':>6} {'ours ms [IQR]':>22} {'peer ms [IQR]':>22}"
          f" {'peer/ours [IQR]':>20}")
    for seq_len in args.lengths:
        if args.factorize_gain:
            chosen = factorize_pairs(seq_len)
        elif args.causal_cost:
            chosen = causal_pairs(seq_len, n_hashes=args.n_hashes)
        else:
            chosen = pairs(seq_len)
        for label, ours_fn, peer_fn in chosen:
            if "SDPA" in label and seq_len > args.skip_sdpa_above:
                continue
            if args.only is not None and args.only not in label:
                continue
            result = compare(
                ours_fn, peer_fn, args.threads, args.rounds, args.block_seconds, args.clock
            )
            cells = []
            for key in ("ours", "peer", "ratio"):
                q1, q2, q3 = _quartiles(result[key])
                cells.append(f"{q2:.2f} [{q1:.2f}-{q3:.2f}]" if key == "ratio"
                             else f"{q2:.1f} [{q1:.1f}-{q3:.1f}]")
            print(f"{label:<48} {seq_len:>6} {cells[0]:>22} {cells[1]:>22} {cells[2]:>20}",
                  flush=True)


if __name__ == "__main__":
    main()
