"""Every backend of every family against its family's default kernel, side by side (CPU/CUDA).

For each (family, backend) and length: the relative difference of the outputs from the default
kernel's (the same inputs), then both timed in one process, interleaved round by round
(``harness.measure.timing.time_interleaved``); the ratio is the median of per-round default /
backend times (> 1: the backend is faster), so a shared machine's drift cancels. A backend the
device cannot run is printed with its family's reason. The fastest exact kernel per device is
the default to name (docs/PERFORMANCE.md, "Kernels near the limit").

    PYTHONPATH=. python scripts/bench_backends.py --lengths 1024 4096 --threads 2
    PYTHONPATH=. python scripts/bench_backends.py --families lsh --lengths 1024 4096 16384
    HARNESS_FLEX_COMPILE=0 PYTHONPATH=. python scripts/bench_backends.py   # eager FlexAttention
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harness.attention import attention_class, get_attention  # noqa: E402
from harness.measure.timing import time_interleaved  # noqa: E402

#: (family, options of the backend); the default kernel is the family with the same options
#: less its ``backend_options``.
BACKENDS = (
    ("standard", {"sdpa_kernel": "flash"}),
    ("standard", {"sdpa_kernel": "math"}),
    ("standard", {"sdpa_kernel": "efficient"}),
    ("standard", {"sdpa_kernel": "cudnn"}),
    ("sparse", {"backend": "flex"}),
    ("lsh", {"backend": "flex"}),
    ("lsh", {"backend": "flex", "n_hashes": 2}),
    ("linear", {"backend": "fla"}),
)
#: Longest sequence timed on an eager (unfused) FlexAttention path, which holds N x N scores.
EAGER_MAX_LEN = 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--min-run-time", type=float, default=1.0)
    p.add_argument("--min-rounds", type=int, default=10)
    p.add_argument("--causal", action="store_true")
    p.add_argument("--families", nargs="+", default=None,
                   help="only these families' backends (default: all)")
    args = p.parse_args(argv)
    known = sorted({name for name, _ in BACKENDS})
    unknown = sorted(set(args.families or ()) - set(known))
    if unknown:
        p.error(f"--families: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.device}, {args.threads} threads, batch 1,"
          f" {args.heads} heads, head_dim {args.head_dim}, forward, causal={args.causal};"
          f" ratio = median of per-round default/backend times (> 1: backend faster)")
    print(f"{'backend':<32} {'N':>6} {'rel. diff':>10} {'default ms':>11} {'backend ms':>11}"
          f" {'ratio [IQR]':>20}  kernel")
    for name, options in BACKENDS:
        if args.families and name not in args.families:
            continue
        cls = attention_class(name)
        base_options = {key: value for key, value in options.items()
                        if key not in cls.backend_options}
        label = f"{name}[{','.join(f'{k}={v}' for k, v in options.items())}]"
        reason = attention_class(name).device_support(args.device, options)
        if reason:
            print(f"{label:<32} {'-':>6} refused: {reason}")
            continue
        for n in args.lengths:
            gen = torch.Generator().manual_seed(0)
            q, k, v = (torch.randn(1, args.heads, n, args.head_dim, generator=gen)
                       .to(args.device) for _ in range(3))
            mine = get_attention(name, **options).to(args.device)
            base = get_attention(name, **base_options).to(args.device)
            kernel = getattr(mine, "kernel", "")
            if "eager" in kernel and n > EAGER_MAX_LEN:
                print(f"{label:<32} {n:>6} skipped: {kernel} materializes N x N scores",
                      flush=True)
                continue
            with torch.no_grad():
                started = time.perf_counter()
                out = mine(q, k, v, causal=args.causal)  # the first call compiles, if it does
                first = time.perf_counter() - started
                ref = base(q, k, v, causal=args.causal)
            diff = float((out - ref).norm() / ref.norm())

            def run(attn=mine, q=q, k=k, v=v):
                with torch.no_grad():
                    return attn(q, k, v, causal=args.causal)

            def run_base(attn=base, q=q, k=k, v=v):
                with torch.no_grad():
                    return attn(q, k, v, causal=args.causal)

            timing = time_interleaved({"backend": run, "default": run_base}, device=args.device,
                                      threads=args.threads, min_run_time=args.min_run_time,
                                      min_rounds=args.min_rounds, adapt_threads=False)
            ratios = timing.ratio("default", "backend")
            q1, med, q3 = statistics.quantiles(ratios, n=4)
            kernel = getattr(mine, "kernel", "")  # how the timed calls ran
            print(f"{label:<32} {n:>6} {diff:>10.1e}"
                  f" {timing.results['default'].median_s * 1e3:>11.2f}"
                  f" {timing.results['backend'].median_s * 1e3:>11.2f}"
                  f" {med:>7.2f} [{q1:.2f}-{q3:.2f}]  {kernel} (first call {first:.1f} s)"
                  + (f"; {timing.noisy}" if timing.noisy else ""), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
