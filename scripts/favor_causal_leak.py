"""Causal FAVOR: how far later tokens move earlier outputs, the error against an explicit
unstabilized FAVOR, and the forward time; for this tree and, optionally, another linear.py.

    PYTHONPATH=. python scripts/favor_causal_leak.py [--before OLD/harness/attention/linear.py]

Leak: the largest change of outputs before position 29 (float64, N=48, 20 seeds) when q, k, v
after it change (q + 3, k - 2, v redrawn x 5), as ``harness check``'s causality check does.
Time: causal forward, float32, batch 1, 4 heads, head_dim 64, 1 thread, the two versions
interleaved round by round (median of 7 rounds).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch

from harness.attention.linear import LinearAttention, favor_projection


def _leak(attn: torch.nn.Module, n: int = 48, cut: int = 29) -> float:
    worst = 0.0
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(2, 2, n, 16, generator=g, dtype=torch.float64) for _ in range(3))
        base = attn(q, k, v, causal=True)
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        q2[:, :, cut:] += 3.0
        k2[:, :, cut:] -= 2.0
        v2[:, :, cut:] = torch.randn_like(v2[:, :, cut:]) * 5
        out = attn(q2, k2, v2, causal=True)
        worst = max(worst, float((out[:, :, :cut] - base[:, :, :cut]).abs().max()))
    return worst


def _exact(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """Unstabilized float64 FAVOR, causal, as an explicit masked matrix."""
    d = q.shape[-1]
    p = proj * d**-0.25

    def phi(x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x @ p.T - (x * x).sum(-1, keepdim=True) * 0.5 * d**-0.5)

    a = (phi(q) @ phi(k).transpose(-1, -2)).tril()
    return a @ v / a.sum(-1, keepdim=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="another version's harness/attention/linear.py")
    args = parser.parse_args()
    versions = {"this tree": LinearAttention(feature_map="favor")}
    if args.before:
        spec = importlib.util.spec_from_file_location("linear_before", args.before)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        source = Path(args.before).read_text(encoding="utf-8").replace("@register_attention", "")
        exec(compile(source, args.before, "exec"), module.__dict__)  # not registered twice
        versions = {"before": module.LinearAttention(feature_map="favor"), **versions}
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 300, 16, generator=g, dtype=torch.float64) * 0.5
               for _ in range(3))
    ref = _exact(q, k, v, favor_projection(256, 16, 0))
    for name, attn in versions.items():
        err = float((attn(q, k, v, causal=True) - ref).abs().max())
        print(f"{name}: leak {_leak(attn):.3g}; max |out - explicit favor| {err:.3g}")
    torch.set_num_threads(1)
    for n in (1024, 4096):
        g = torch.Generator().manual_seed(0)
        x = [torch.randn(1, 4, n, 64, generator=g) for _ in range(3)]
        times: dict[str, list[float]] = {name: [] for name in versions}
        with torch.no_grad():
            for attn in versions.values():
                attn(*x, causal=True)
            for _ in range(7):
                for name, attn in versions.items():
                    start = time.perf_counter()
                    attn(*x, causal=True)
                    times[name].append(time.perf_counter() - start)
        shown = ", ".join(f"{name} {statistics.median(t) * 1e3:.1f} ms"
                          for name, t in times.items())
        print(f"N={n} causal forward: {shown}")


if __name__ == "__main__":
    main()
