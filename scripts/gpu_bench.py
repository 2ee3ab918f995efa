"""Device benchmarks for ``scripts/gpu_check.py``: dtype sweep, standard pairs, sparse vs Flex.

Writes harness records (the results-store schema of docs/RESULTS.md) as JSON lines, so the
throughput and memory suites' own summaries (crossover length, memory exponent) apply to them:

* ``sweep``: every attention configuration of the quick profile (every registered attention plus
  its variants) x dtype x length: forward and fwd+bwd time (``throughput`` records with a
  ``dtype`` param) and peak memory (``memory`` records); summaries per dtype.
* ``pairs``: standard (sdpa) vs bare ``scaled_dot_product_attention`` and vs standard (eager),
  timed side by side, interleaved round by round.
* ``flex``: sparse vs ``torch.compile(flex_attention)`` with the block mask built from the sparse
  attention's own ``dense_mask``; the outputs are compared before timing; and sparse's own
  ``backend=flex`` vs that bare compiled call (target >= 0.95x: the wrapper's overhead).
* ``peak``: the measured matmul peak per dtype (``harness.measure.timing.peak_flops``).
* ``exact``: every non-default backend of every family (``backend_specs``) against its family's
  default kernel on the device, per dtype: outputs (forward) and gradients (fwd+bwd).

The sweep also times those backends (``--no-backends`` leaves them out) and writes each cell's
``<pass>_flops_per_s`` and ``<pass>_peak_fraction`` (the family's ``Attention.flops`` over the
measured peak in the cell's dtype), so crossovers, memory exponents and % of peak come per
backend and dtype.

    PYTHONPATH=. python scripts/gpu_bench.py --device cuda --out bench.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harness.attention import get_attention  # noqa: E402
from harness.attention._flex import flex_tile_candidates  # noqa: E402  (sparse's own tiles)
from harness.measure.memory import cuda_peak_memory, is_oom_error, measure_cpu_peak  # noqa: E402
from harness.measure.timing import TimingResult, time_callable  # noqa: E402
from harness.records import Cell, Record  # noqa: E402
from harness.suites.base import AttentionSpec, RunContext  # noqa: E402
from harness.suites.memory import MemoryParams, MemorySuite  # noqa: E402
from harness.suites.throughput import ThroughputParams, ThroughputSuite, attention_inputs  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: In this order: the targets first, the sweep takes what the time budget leaves.
SECTIONS = ("peak", "exact", "pairs", "flex", "sweep")
PASSES = ("forward", "fwd_bwd")
#: Largest relative difference allowed between sparse and FlexAttention outputs, per dtype.
FLEX_TOLERANCE = {"float32": 1e-3, "bfloat16": 3e-2, "float16": 5e-3}
#: Largest relative difference of a backend from its family's default kernel, per dtype.
BACKEND_TOLERANCE = {"float32": 1e-3, "bfloat16": 3e-2, "float16": 5e-3}
#: The non-default kernels of each family, as (name, options): ``harness check`` audits each.
BACKENDS = (
    ("standard", {"sdpa_kernel": "flash"}),
    ("standard", {"sdpa_kernel": "efficient"}),
    ("standard", {"sdpa_kernel": "cudnn"}),
    ("standard", {"sdpa_kernel": "math"}),
    ("sparse", {"backend": "flex"}),
    ("linear", {"backend": "fla"}),
)
_MEMORY_TARGET = "scripts.gpu_bench:memory_work"


class Budget:
    """A wall-clock allowance shared by every measurement of one invocation."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def spent(self) -> bool:
        return time.monotonic() > self.deadline

    @property
    def message(self) -> str:
        return f"not measured: the time budget of {self.seconds:.0f} s was spent"


def attention_specs(profile: str = "quick") -> list[AttentionSpec]:
    """Every registered attention with its defaults plus the profile's variants."""
    from harness.run.profiles import load_profile

    return load_profile(profile).attention_specs()


def backend_specs() -> list[AttentionSpec]:
    """One spec per non-default backend, labelled ``name[key=value]``."""
    out = []
    for name, opts in BACKENDS:
        shown = ",".join(f"{k}={v}" for k, v in opts.items())
        out.append(AttentionSpec(name, dict(opts), f"{name}[{shown}]"))
    return out


def unsupported(spec: AttentionSpec, device: str, mode: str = "forward") -> str | None:
    """Why ``spec`` cannot run ``mode`` on ``device`` (its family's own refusal; FlexAttention
    has no backward on CPU), or None."""
    from harness.attention import attention_class

    if mode == "fwd_bwd" and not device.startswith("cuda") and \
            spec.name == "sparse" and spec.options.get("backend") == "flex":
        return "sparse[backend=flex]: torch's FlexAttention has no backward pass on CPU"
    return attention_class(spec.name).device_support(device, dict(spec.options))


def flop_records(cell: Cell, spec: AttentionSpec, mode: str, t: TimingResult,
                 args: argparse.Namespace, dtype: str) -> list[Record]:
    """``<mode>_flops_per_s`` and ``<mode>_peak_fraction`` of one timed cell (none when the
    family declares no FLOP count)."""
    from harness.attention import attention_class, attention_options
    from harness.measure.timing import peak_flops

    cls = attention_class(spec.name)
    opts = {**attention_options(cls), **spec.options}
    work = cls.flops(args.batch, args.heads, cell.params["seq_len"], args.head_dim, opts, mode)
    if not work:
        return []
    peak = peak_flops(args.device, dtype)
    rate = work / t.median_s
    return [Record.for_cell(cell, f"{mode}_flops_per_s", value=rate, ci_low=work / t.q3_s,
                            ci_high=work / t.q1_s, interval="iqr", n=t.n, unit="FLOP/s",
                            higher_is_better=True),
            Record.for_cell(cell, f"{mode}_peak_fraction", value=rate / peak,
                            ci_low=work / t.q3_s / peak, ci_high=work / t.q1_s / peak,
                            interval="iqr", n=t.n, unit="fraction", higher_is_better=True,
                            load={"peak_flops_per_s": peak, "peak_dtype": dtype})]


def peak(args: argparse.Namespace, budget: Budget) -> list[Record]:
    """The matmul peak per dtype: the denominator of every ``<pass>_peak_fraction``."""
    from harness.measure.timing import peak_flops

    out = []
    for dtype in args.dtypes:
        cell = Cell("gpu_peak", "matmul", {}, {"dtype": dtype}, "matmul")
        try:
            value = peak_flops(args.device, dtype)
            out.append(Record.for_cell(cell, "peak_flops_per_s", value=value, n=1,
                                       unit="FLOP/s", higher_is_better=True))
            print(f"  {dtype}: {value / 1e9:.1f} GFLOP/s", flush=True)
        except Exception as err:
            out.append(_failed(cell, "peak_flops_per_s", err))
    return out


def exact(args: argparse.Namespace, budget: Budget) -> list[Record]:
    """Each backend against its family's default kernel on the device, per dtype, causal and
    not: relative error of the outputs (forward) and of the gradients (fwd+bwd) at the shortest
    length, then both timed side by side at the longest (``speed_ratio``: default / backend,
    > 1 the backend is faster; the fastest exact kernel is the device's default to name)."""
    out: list[Record] = []
    n_small, n_large = min(args.lengths), max(args.lengths)
    for spec in backend_specs():
        base = AttentionSpec(spec.name, {}, spec.name)
        for dtype in args.dtypes:
            for causal in (False, True):
                for mode in PASSES:
                    params = {"seq_len": n_small, "batch": args.batch, "dtype": dtype,
                              "pass": mode, "causal": causal}
                    cell = Cell("gpu_exact", spec.name, dict(spec.options), params, spec.label)
                    metric = "relative_error" if mode == "forward" else "grad_relative_error"
                    reason = unsupported(spec, args.device, mode) or (
                        budget.message if budget.spent() else None)
                    if reason:
                        out.append(_failed(cell, metric, reason))
                        continue
                    try:
                        out.append(_backend_error(spec, base, cell, metric, args, dtype))
                        if out[-1].status == "ok":
                            out.append(_backend_speed(spec, base, cell, args, dtype, n_large))
                    except Exception as err:
                        out.append(_failed(cell, metric, err))
                    _release(args.device)
    return out


def _attend(spec: AttentionSpec, device: str, causal: bool):
    attn = spec.build().to(device)

    def call(q, k, v):
        return attn(q, k, v, causal=causal)

    call.capabilities = attn.capabilities  # type: ignore[attr-defined]
    return call


def _backend_error(spec: AttentionSpec, base: AttentionSpec, cell: Cell, metric: str,
                   args: argparse.Namespace, dtype: str) -> Record:
    p = cell.params
    results = []
    for s in (spec, base):
        attn = _attend(s, args.device, p["causal"])
        q, k, v = _inputs(attn, p["seq_len"], args.batch, args.heads, args.head_dim,
                          DTYPES[dtype], args.device, p["pass"] == "fwd_bwd")
        got = make_pass(attn, q, k, v, p["pass"])()
        got = got if isinstance(got, torch.Tensor) else torch.cat([g.flatten() for g in got])
        results.append(got.double())
    mine, ref = results
    err = float((mine - ref).norm() / ref.norm())
    tol = BACKEND_TOLERANCE[dtype] * (1 if p["pass"] == "forward" else 3)
    ok = err <= tol
    print(f"  {spec.label} {dtype} causal={p['causal']} {p['pass']}: {err:.2e}", flush=True)
    return Record.for_cell(cell, metric, value=err, n=1, unit="ratio", higher_is_better=False,
                           status="ok" if ok else "error",
                           error=None if ok else f"{spec.label} differs from {spec.name}'s"
                           f" default kernel by {err:.2e} (> {tol:g})")


def _backend_speed(spec: AttentionSpec, base: AttentionSpec, cell: Cell,
                   args: argparse.Namespace, dtype: str, n: int) -> Record:
    p = cell.params
    fns = {}
    for key, s in (("backend", spec), ("default", base)):
        attn = _attend(s, args.device, p["causal"])
        q, k, v = _inputs(attn, n, args.batch, args.heads, args.head_dim, DTYPES[dtype],
                          args.device, p["pass"] == "fwd_bwd")
        fns[key] = make_pass(attn, q, k, v, p["pass"])
    t = interleaved(fns, device=args.device, rounds=args.rounds, min_run_time=args.min_run_time,
                    warmup=max(2, args.warmup))
    record = _ratio_record(spec.label, {**p, "seq_len": n}, t["backend"], t["default"], None,
                           f"{spec.name} (default kernel)")
    record.suite = "gpu_exact"
    print(f"  {spec.label} {dtype} causal={p['causal']} {p['pass']} N={n}: default/backend"
          f" {record.value:.2f}x", flush=True)
    return record


def _inputs(spec_attn, n: int, batch: int, heads: int, head_dim: int, dtype: torch.dtype,
            device: str, grad: bool):
    q, k, v = attention_inputs(batch, heads, n, head_dim, device=device, dtype=dtype,
                               requires_grad=grad)
    return q, (q if spec_attn.capabilities.shared_qk else k), v


def make_pass(attn, q, keys, v, mode: str) -> Callable[[], object]:
    """The zero-argument work of one pass: ``forward`` (no grad) or ``fwd_bwd`` (autograd)."""
    if mode == "forward":
        def forward() -> object:
            with torch.no_grad():
                return attn(q, keys, v)

        return forward
    inputs = tuple({id(t): t for t in (q, keys, v)}.values())
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(1)).to(q)

    def fwd_bwd() -> object:
        return torch.autograd.grad(attn(q, keys, v), inputs, grad_out)

    return fwd_bwd


def memory_work(name: str, options: dict[str, Any], seq_len: int, batch: int, heads: int,
                head_dim: int, mode: str, dtype: str, device: str = "cpu") -> Callable[[], object]:
    """Inputs of one memory cell in ``dtype`` (allocated before the peak is reset) and its work.

    A short warm-up call first puts one-off allocations (kernel caches, workspaces) into the
    baseline rather than the measured peak.
    """
    attn = get_attention(name, **options).to(device)
    grad = mode == "fwd_bwd"
    warm = _inputs(attn, min(seq_len, 128), batch, heads, head_dim, DTYPES[dtype], device, grad)
    make_pass(attn, *warm, mode)()
    del warm
    return make_pass(attn, *_inputs(attn, seq_len, batch, heads, head_dim, DTYPES[dtype],
                                    device, grad), mode)


def peak_bytes(
    kwargs: dict[str, Any], device: str, budget_bytes: int
) -> tuple[str, int | None, str | None]:
    """``(status, peak, error)`` of one memory cell: allocator peak on CUDA, new process on CPU."""
    if device.startswith("cuda"):
        try:
            peak = cuda_peak_memory(memory_work(**kwargs, device=device), device)
        except Exception as err:
            if not is_oom_error(err):
                raise
            torch.cuda.empty_cache()
            return "oom", None, f"{type(err).__name__}: {err}"[:300]
        if peak > budget_bytes:
            return "oom", None, f"peak {peak} B over the budget of {budget_bytes} B"
        return "ok", peak, None
    result = measure_cpu_peak(_MEMORY_TARGET, kwargs, budget_bytes=budget_bytes, timeout_s=300,
                              launcher="forkserver")
    if result.status == "error":
        raise RuntimeError(result.error or "memory measurement failed")
    return result.status if result.status == "ok" else "oom", result.peak_bytes, result.error


def _timing_record(cell: Cell, metric: str, t: TimingResult) -> Record:
    return Record.for_cell(cell, metric, value=t.median_s * 1e3, ci_low=t.q1_s * 1e3,
                           ci_high=t.q3_s * 1e3, interval="iqr", n=t.n, unit="ms",
                           higher_is_better=False)


def _failed(cell: Cell, metric: str, err: BaseException | str) -> Record:
    if isinstance(err, str):
        return Record.for_cell(cell, metric, status="skipped", error=err)
    status = "oom" if is_oom_error(err) else "error"
    return Record.for_cell(cell, metric, status=status, error=f"{type(err).__name__}: {err}"[:500])


def _release(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def sweep(args: argparse.Namespace, specs: list[AttentionSpec], budget: Budget) -> list[Record]:
    """Forward / fwd+bwd time and peak memory per attention x dtype x length, plus summaries."""
    records: list[Record] = []
    for dtype in args.dtypes:
        rows: list[Record] = []
        for spec in specs:
            for n in args.lengths:
                params = {"kind": "attention", "seq_len": n, "batch": args.batch, "dtype": dtype}
                t_cell = spec.cell("throughput", params)
                for mode in PASSES:
                    metric = f"{mode}_ms"
                    reason = unsupported(spec, args.device, mode) or (
                        budget.message if budget.spent() else None)
                    if reason:
                        rows.append(_failed(t_cell, metric, reason))
                        continue
                    try:
                        attn = spec.build().to(args.device)
                        work = make_pass(attn, *_inputs(attn, n, args.batch, args.heads,
                                                        args.head_dim, DTYPES[dtype],
                                                        args.device, mode == "fwd_bwd"), mode)
                        t = time_callable(work, device=args.device, warmup=args.warmup,
                                          min_run_time=args.min_run_time,
                                          label=f"{spec.label} {mode} N={n} {dtype}")
                        rows.append(_timing_record(t_cell, metric, t))
                        rows += flop_records(t_cell, spec, mode, t, args, dtype)
                    except Exception as err:
                        rows.append(_failed(t_cell, metric, err))
                    work = attn = None  # type: ignore[assignment]
                    _release(args.device)
                    m_cell = spec.cell("memory", {"mode": mode, "seq_len": n, "batch": args.batch,
                                                  "dtype": dtype})
                    if reason or budget.spent():
                        rows.append(_failed(m_cell, "peak_bytes", reason or budget.message))
                        continue
                    kwargs = {"name": spec.name, "options": dict(spec.options), "seq_len": n,
                              "batch": args.batch, "heads": args.heads,
                              "head_dim": args.head_dim, "mode": mode, "dtype": dtype}
                    try:
                        status, peak, error = peak_bytes(kwargs, args.device, args.memory_budget)
                        rows.append(Record.for_cell(m_cell, "peak_bytes", value=peak, n=1,
                                                    unit="bytes", higher_is_better=False,
                                                    status=status, error=error))
                    except Exception as err:
                        rows.append(_failed(m_cell, "peak_bytes", err))
                    _release(args.device)
                print(f"  {dtype} {spec.label} N={n}: "
                      + ", ".join(f"{r.metric}={_fmt(r)}" for r in rows[-8:]
                                  if not r.metric.endswith("flops_per_s")), flush=True)
        records += rows + summarize_sweep(rows, args, dtype)
    return records


def _fmt(r: Record) -> str:
    if r.status != "ok" or r.value is None:
        return r.status
    if r.unit == "fraction":
        return f"{r.value * 100:.1f}%"
    return f"{r.value / 2**20:.1f}MiB" if r.unit == "bytes" else f"{r.value:.3g}{r.unit or ''}"


def summarize_sweep(rows: list[Record], args: argparse.Namespace, dtype: str) -> list[Record]:
    """The suites' own summaries on one dtype's records: crossover lengths and memory exponents."""
    ctx = RunContext(device=args.device, memory_budget=args.memory_budget)
    out: list[Record] = []
    tparams = ThroughputParams(seq_lens=args.lengths, batch_sizes=[args.batch], model=None)
    timing = [r for r in rows if r.suite == "throughput"]
    suite = ThroughputSuite()
    # Time exponents per pass, and the forward crossover, as the suite writes them.
    for r in suite.summarize(timing, tparams, ctx):
        if r.metric == "crossover_seq_len":
            r.params = {**r.params, "pass": "forward"}
        out.append(r)
    # The suite's crossover rule is defined on forward times: apply it to fwd+bwd times too.
    as_forward = [dataclasses.replace(r, metric="forward_ms") for r in timing
                  if r.metric == "fwd_bwd_ms"]
    for r in suite.summarize(as_forward, tparams, ctx):
        if r.metric == "crossover_seq_len":
            r.metric = "crossover_seq_len_fwd_bwd"
            r.params = {**r.params, "pass": "fwd_bwd"}
            out.append(r)
    mparams = MemoryParams(seq_lens=args.lengths, batch=args.batch, heads=args.heads,
                           head_dim=args.head_dim, modes=list(PASSES))
    out += MemorySuite().summarize([r for r in rows if r.suite == "memory"], mparams, ctx)
    for r in out:
        r.params = {**r.params, "dtype": dtype}
    return out


def interleaved(fns: dict[str, Callable[[], object]], *, device: str, rounds: int,
                min_run_time: float, warmup: int) -> dict[str, list[float]]:
    """Per-call medians (s) of each function, ``rounds`` times, alternating the order each round
    so that drift on the machine hits every side alike."""
    names = list(fns)
    medians: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            t = time_callable(fns[name], device=device, warmup=warmup if i == 0 else 1,
                              min_run_time=min_run_time, label=name)
            medians[name].append(t.median_s)
    return medians


def _ratio_record(label: str, params: dict[str, Any], ours: list[float], peer: list[float],
                  target: float | None, other: str) -> Record:
    """``peer / ours`` of the median times (> 1: ours faster), with both medians in ``error``-free
    params so that the summary can print them."""
    ratio = statistics.median(peer) / statistics.median(ours)
    spread = [p / o for o, p in zip(ours, peer, strict=True)]
    return Record(
        suite="gpu_pairs", attention=label.split("[")[0], options={}, label=label,
        params={**params, "vs": other, "ours_ms": statistics.median(ours) * 1e3,
                "peer_ms": statistics.median(peer) * 1e3,
                **({"target": target} if target is not None else {})},
        metric="speed_ratio", value=ratio, ci_low=min(spread), ci_high=max(spread),
        n=len(spread), unit="x", higher_is_better=True,
    )


def pairs(args: argparse.Namespace, budget: Budget) -> list[Record]:
    """standard (sdpa) vs bare SDPA (target >= 0.95x) and vs standard (eager), side by side."""
    import torch.nn.functional as F

    sdpa = get_attention("standard", backend="sdpa").to(args.device)
    eager = get_attention("standard", backend="eager").to(args.device)
    out: list[Record] = []
    for dtype in args.dtypes:
        for n in args.lengths:
            for mode in PASSES:
                params = {"seq_len": n, "batch": args.batch, "dtype": dtype, "pass": mode}
                cell = Cell("gpu_pairs", "standard", {}, params, "standard")
                if budget.spent():
                    out.append(_failed(cell, "speed_ratio", budget.message))
                    continue
                try:
                    q, k, v = _inputs(sdpa, n, args.batch, args.heads, args.head_dim,
                                      DTYPES[dtype], args.device, mode == "fwd_bwd")
                    fns = {
                        "standard": make_pass(sdpa, q, k, v, mode),
                        "bare_sdpa": make_pass(F.scaled_dot_product_attention, q, k, v, mode),
                        "eager": make_pass(eager, q, k, v, mode),
                    }
                    t = interleaved(fns, device=args.device, rounds=args.rounds,
                                    min_run_time=args.min_run_time, warmup=args.warmup)
                    out.append(_ratio_record("standard", params, t["standard"], t["bare_sdpa"],
                                             0.95, "bare_sdpa"))
                    out.append(_ratio_record("standard", params, t["standard"], t["eager"],
                                             None, "standard[eager]"))
                    print(f"  {dtype} N={n} {mode}: " + ", ".join(
                        f"{r.params['vs']} {r.value:.2f}x" for r in out[-2:]), flush=True)
                except Exception as err:
                    out.append(_failed(cell, "speed_ratio", err))
                fns = q = k = v = None  # type: ignore[assignment]
                _release(args.device)
    return out


_FLEX: dict[str, Callable[..., torch.Tensor]] = {}


def flex_block_mask(sparse, seq_len: int, device: str):
    """FlexAttention block mask of exactly the pattern ``sparse.dense_mask(seq_len)`` describes,
    in tiles of the sparse attention's own block size where FlexAttention accepts them."""
    from torch.nn.attention.flex_attention import create_block_mask

    dense = sparse.dense_mask(seq_len).to(device)

    def mask_mod(b, h, q_idx, kv_idx):
        return dense[q_idx, kv_idx]

    try:
        return create_block_mask(mask_mod, None, None, seq_len, seq_len, device=device,
                                 BLOCK_SIZE=sparse.block_size)
    except Exception:  # a tile size FlexAttention refuses: its default tiles, same pattern
        return create_block_mask(mask_mod, None, None, seq_len, seq_len, device=device)


def flex_fn(compiled: bool) -> Callable[..., torch.Tensor]:
    """``flex_attention``, compiled once per process (``compiled``) or eager (tests)."""
    from torch.nn.attention.flex_attention import flex_attention

    if not compiled:
        return flex_attention
    if "compiled" not in _FLEX:
        _FLEX["compiled"] = torch.compile(flex_attention)
    return _FLEX["compiled"]


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||`` in float64."""
    out, ref = out.double(), ref.double()
    return float((out - ref).norm() / ref.norm())


def _flex_warnings() -> set[str]:
    """torch's set of FlexAttention warnings already shown in this process (its eager,
    unfused path adds ``flex_attention_performance``); an empty set when torch has none."""
    from torch.nn.attention import flex_attention as module

    return getattr(module, "_WARNINGS_SHOWN", set())


def _flex_agreement(sparse, run_flex, mask, params: dict[str, Any], dtype: str, q, k, v,
                    mode: str, args: argparse.Namespace) -> tuple[list[Record], Any]:
    """Output (forward) or gradient (fwd_bwd) agreement of FlexAttention with sparse, with the
    first tile set that compiles; returns its records and the flex call to time."""
    last: Exception | None = None
    for tiles in flex_tile_candidates(sparse.block_size, args.device):
        def flex_call(a, b, c, tiles=tiles):
            return run_flex(a, b, c, block_mask=mask, kernel_options=tiles)

        try:
            shown = _flex_warnings()
            shown.discard("flex_attention_performance")
            if mode == "forward":
                with torch.no_grad():
                    err = relative_error(flex_call(q, k, v), sparse(q, k, v))
            else:
                # make_pass draws the same seeded output gradient for both sides
                ours, theirs = (make_pass(f, q, k, v, mode)() for f in (sparse, flex_call))
                err = max(relative_error(a, b) for a, b in zip(theirs, ours, strict=True))
        except Exception as exc:  # this tile set does not compile here: the next one
            last = exc
            # Dynamo remembers the failed frame and would run the next calls unfused (eager
            # flex_attention materializes N x N): start the compiler afresh.
            torch._dynamo.reset()
            continue
        if run_flex is not flex_fn(compiled=False) and "flex_attention_performance" in shown:
            # torch warns (once) when flex_attention runs outside a compiled graph: the timing
            # would be the unfused N x N path, not FlexAttention's kernel
            raise RuntimeError("compiled flex_attention ran unfused (Dynamo fell back to eager);"
                               " its time would not be FlexAttention's kernel")
        tolerance = FLEX_TOLERANCE[dtype] * (1 if mode == "forward" else 3)
        ok = err <= tolerance
        what = "outputs" if mode == "forward" else "gradients"
        record = Record(
            suite="gpu_pairs", attention="sparse", options={}, label="sparse",
            params={**params, "vs": "flex_attention", "flex_tiles": tiles or "default"},
            metric="relative_error" if mode == "forward" else "grad_relative_error",
            value=err, unit="ratio", higher_is_better=False, n=1,
            status="ok" if ok else "error",
            error=None if ok else f"sparse and FlexAttention {what} differ by {err:.2e} (> "
            f"{tolerance:g}): not the same pattern")
        return [record], flex_call
    assert last is not None
    raise last


def _flex_pair(sparse, run_flex, mask, params: dict[str, Any], dtype: str,
               args: argparse.Namespace) -> list[Record]:
    """One (length, dtype, pass): output or gradient agreement, then the interleaved speed
    ratio."""
    n, mode = params["seq_len"], params["pass"]
    q, k, v = _inputs(sparse, n, args.batch, args.heads, args.head_dim, DTYPES[dtype],
                      args.device, mode == "fwd_bwd")
    out, flex_call = _flex_agreement(sparse, run_flex, mask, params, dtype, q, k, v, mode, args)
    fns = {"sparse": make_pass(sparse, q, k, v, mode), "flex": make_pass(flex_call, q, k, v, mode)}
    own = get_attention("sparse", backend="flex").to(args.device)
    if not args.flex_eager and args.device.startswith("cuda"):
        fns["sparse_flex"] = make_pass(own, q, k, v, mode)
    t = interleaved(fns, device=args.device, rounds=args.rounds, min_run_time=args.min_run_time,
                    warmup=max(2, args.warmup))
    out.append(_ratio_record("sparse", {**params, "flex_tiles": out[0].params["flex_tiles"]},
                             t["sparse"], t["flex"], None, "flex_attention"))
    if "sparse_flex" in t:  # the backend's own overhead over the bare compiled call
        out.append(_ratio_record("sparse[backend=flex]", {**params, "kernel": own.kernel},
                                 t["sparse_flex"], t["flex"], 0.95, "flex_attention"))
    print(f"  {dtype} N={n} {mode}: sparse vs flex {out[-1].value:.2f}x "
          f"(tiles {out[0].params['flex_tiles']})", flush=True)
    return out


def flex(args: argparse.Namespace, budget: Budget) -> list[Record]:
    """sparse vs compiled FlexAttention on the same block pattern: agreement, then speed."""
    sparse = get_attention("sparse").to(args.device)
    run_flex = flex_fn(compiled=not args.flex_eager)
    out: list[Record] = []
    for dtype in args.flex_dtypes:
        for n in args.flex_lengths:
            base = {"seq_len": n, "batch": args.batch, "dtype": dtype}
            cell = Cell("gpu_pairs", "sparse", {}, {**base, "pass": "forward"}, "sparse")
            if budget.spent():
                out.append(_failed(cell, "speed_ratio", budget.message))
                continue
            try:
                mask = flex_block_mask(sparse, n, args.device)
            except Exception as err:
                out.append(_failed(cell, "speed_ratio", err))
                continue
            for mode in PASSES if args.device.startswith("cuda") else ("forward",):
                # FlexAttention has no CPU backward: the CPU dry run checks the forward only.
                params = {**base, "pass": mode}
                if not args.flex_eager:
                    # Each (dtype, length, pass, tile set) is another compile; past Dynamo's
                    # recompile limit it runs flex_attention unfused without an error (seen on
                    # the H100: float32 at 16384 timed the N x N fallback). Start afresh.
                    torch._dynamo.reset()
                try:
                    out += _flex_pair(sparse, run_flex, mask, params, dtype, args)
                except Exception as err:
                    out.append(_failed(Cell("gpu_pairs", "sparse", {}, params, "sparse"),
                                       "speed_ratio", err))
                _release(args.device)
            mask = None
    return out


def write_records(path: Path, records: Iterable[Record]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for r in records:
            fh.write(r.to_json() + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from harness.run.profiles import parse_bytes

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", type=Path, required=True, help="JSON-lines file (appended to)")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    p.add_argument("--flex-dtypes", nargs="+", default=["bfloat16", "float32"],
                   choices=list(DTYPES))
    p.add_argument("--flex-lengths", type=int, nargs="+", default=[4096, 16384])
    p.add_argument("--flex-eager", action="store_true",
                   help="call flex_attention uncompiled (tests only: it then materializes N x N)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--min-run-time", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--memory-budget", type=parse_bytes, default="48GiB")
    p.add_argument("--time-budget", type=float, default=600.0, help="seconds for all sections")
    p.add_argument("--profile", default="quick", help="profile whose attentions are swept")
    p.add_argument("--no-backends", dest="backends", action="store_false",
                   help="sweep only the profile's attentions, not every family's backends")
    args = p.parse_args(argv)
    bad = [n for n in [*args.lengths, *args.flex_lengths] if n < 1]
    if bad or args.rounds < 1 or args.batch < 1:
        p.error(f"lengths, --rounds and --batch must be >= 1 (got lengths {bad})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_bench: --device {args.device} but torch.cuda.is_available() is False "
              f"(torch {torch.__version__}, CUDA build {torch.version.cuda})", file=sys.stderr)
        return 2
    budget = Budget(args.time_budget)
    specs = attention_specs(args.profile) + (backend_specs() if args.backends else [])
    errors = 0
    for section in args.sections:
        started = time.monotonic()
        print(f"[{section}]", flush=True)
        if section == "sweep":
            records = sweep(args, specs, budget)
        elif section == "peak":
            records = peak(args, budget)
        elif section == "exact":
            records = exact(args, budget)
        elif section == "pairs":
            records = pairs(args, budget)
        else:
            records = flex(args, budget)
        write_records(args.out, records)
        # Failures: errors, and cells the time budget left unmeasured. Summary records that are
        # skipped with a reason (a fit needing longer inputs) and oom cells are results.
        bad = [r for r in records
               if r.status == "error" or (r.status == "skipped" and r.error == budget.message)]
        # A backend this device or install cannot run is skipped with its family's reason.
        errors += len(bad)
        for r in bad:
            print(f"  {r.status}: {r.suite}/{r.label} {r.metric} {r.params}: {r.error}",
                  file=sys.stderr)
        print(f"[{section}] {len(records)} records, {len(bad)} failed or not measured, "
              f"{time.monotonic() - started:.0f} s", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
