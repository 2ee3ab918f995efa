"""Throughput suite: how fast is each attention, alone and inside the encoder model?

Every timed pass runs three callables side by side, round by round
(``harness.measure.timing.time_interleaved``): the measured attention (or model), the reference
at the same shape (the run's ``reference`` attention, else ``standard`` with the ``sdpa``
backend, also where the run's reference cannot run the shape; for the reference itself, the
calibration matmul), and the calibration matmul; each ratio record names its reference
(``reference``). Each cell records the absolute times with their
raw per-round samples, ``<pass>_speed_vs_reference`` (per-round reference time / measured time:
a ratio in which the machine's drift cancels), ``calibration_gflops`` (how fast the machine
was), and the machine's load while it measured (``load``; ``noisy`` names a busy machine).
Where the family declares its FLOP count (``Attention.flops``), each pass also records
``<pass>_flops_per_s`` and ``<pass>_peak_fraction`` (of the machine's measured matmul peak in
the cell's dtype, ``harness.measure.timing.peak_flops``; the peak used is in ``load``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, PositiveFloat, PositiveInt

from harness.measure.stats import fit_power_law, median_iqr
from harness.measure.timing import (
    MIN_ROUNDS,
    InterleavedTiming,
    calibration_kernel,
    peak_flops,
    time_interleaved,
)
from harness.records import Cell, Record
from harness.suites.base import (
    AttentionSpec,
    MetricSpec,
    RunContext,
    Suite,
    SuiteParams,
    planned_model,
    register_suite,
)
from harness.suites.training import model_imports

__all__ = [
    "REFERENCE",
    "ModelThroughputParams",
    "ThroughputParams",
    "ThroughputSuite",
    "attention_inputs",
    "growing_tail",
    "is_reference",
    "merge_processes",
    "shared_budget",
    "side_reference",
]

#: The side-by-side reference when the run names none (or its own cannot run a shape).
REFERENCE = AttentionSpec("standard", {"backend": "sdpa"}, "standard")


def side_reference(ctx: RunContext) -> AttentionSpec:
    """The attention every cell is timed against side by side: the run's reference (profile
    ``reference``) when the context has its spec, else :data:`REFERENCE`."""
    spec = ctx.reference_spec
    return spec if spec is not None and ctx.is_reference(spec.label) else REFERENCE


def is_reference(name: str, options: dict, reference: AttentionSpec = REFERENCE) -> bool:
    """Whether an attention configuration is ``reference`` itself (then the calibration matmul
    stands in as its side-by-side reference)."""
    resolved = reference.resolved_options
    return name == reference.name and {**resolved, **options} == resolved

Pass = Literal["forward", "backward", "fwd_bwd"]


class ModelThroughputParams(SuiteParams):
    """Full-model measurements: training steps/s and inference tokens/s."""

    seq_lens: list[PositiveInt] = Field(default_factory=lambda: [512])
    batch: PositiveInt = 8
    hidden_size: PositiveInt = 128
    num_layers: PositiveInt = 2
    num_heads: PositiveInt = 4
    vocab_size: PositiveInt = 260
    num_labels: PositiveInt = 2


class ThroughputParams(SuiteParams):
    """Attention-layer timing sweep plus an optional full-model sweep."""

    seq_lens: list[PositiveInt] = Field(default_factory=lambda: [256, 1024, 4096])
    batch_sizes: list[PositiveInt] = Field(default_factory=lambda: [1])
    heads: PositiveInt = 4
    head_dim: PositiveInt = 64
    passes: list[Pass] = Field(default_factory=lambda: ["forward", "backward", "fwd_bwd"])
    min_run_time: PositiveFloat = 0.2
    warmup: int = Field(default=1, ge=0)
    causal: bool = False
    model: ModelThroughputParams | None = Field(default_factory=ModelThroughputParams)
    #: Lengths where time grows slower than N^this (between one length and the next) are
    #: dominated by fixed costs; the fitted time exponent starts after the last of them.
    growth_floor: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Fresh processes each cell is timed in, one after the other (``min_run_time`` is shared
    #: between them; the executor runs them, ``Suite.replicas``, the same ones for every cell).
    #: A process has its own allocator and cache state, which moves its timings
    #: by more than they move within it; with >= 2 per side ``harness compare`` tests the
    #: per-process estimates instead of the pooled samples. Use >= 3 for a release gate.
    processes: PositiveInt = 1
    #: Windows each pass is timed in within a process, the passes taking turns (``min_run_time``
    #: and ``min_rounds`` shared between them). The machine's state moves a short pass by more
    #: between windows a tenth of a second apart than between the rounds of one window (lsh
    #: forward at N=256, one thread: 1.47-2.36 ms over ten consecutive 50 ms windows of one
    #: process, docs/PERFORMANCE.md section 7); with >= 2 ``harness compare`` tests the
    #: per-window estimates, whose spread it then sees, as it does processes.
    windows: PositiveInt = 1
    #: Fewest interleaved rounds per timed pass (per process).
    min_rounds: int = Field(default=MIN_ROUNDS, ge=2)
    #: Time limit of one cell (seconds): past it the cell is stopped and recorded ``timeout``.
    timeout_s: PositiveFloat = 7200.0


def growing_tail(lengths: list[int], times: list[float], floor: float) -> int:
    """Index of the first length from which time grows at least as ``N^floor`` between every
    pair of consecutive lengths (len(lengths) - 1 when even the last step is flat)."""
    start = 0
    for i in range(len(lengths) - 1):
        local = math.log(times[i + 1] / times[i]) / math.log(lengths[i + 1] / lengths[i])
        if local < floor:
            start = i + 1
    return start


def attention_inputs(
    batch: int,
    heads: int,
    seq_len: int,
    head_dim: int,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    requires_grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random non-zero q, k, v of shape (batch, heads, seq_len, head_dim), seeded."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    shape = (batch, heads, seq_len, head_dim)
    out = []
    for _ in range(3):
        t = torch.randn(shape, generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)
        out.append(t.requires_grad_(requires_grad))
    return out[0], out[1], out[2]


def _sig(values: list[float]) -> list[float]:
    """Samples rounded to 6 significant digits (the store keeps every one)."""
    return [float(f"{v:.6g}") for v in values]


def _side_fields(timing: InterleavedTiming) -> dict:
    load = {**timing.load, "threads": timing.threads,
            "requested_threads": timing.requested_threads, "rounds": timing.rounds}
    return {"noisy": timing.noisy, "load": load}


def _metric(cell: Cell, metric: str, timing: InterleavedTiming, unit_scale: float) -> Record:
    """A time per call (median with IQR; every per-round sample kept); unit and direction from
    the metric's spec."""
    t = timing.results["measured"]
    return ThroughputSuite.record(
        cell,
        metric,
        value=t.median_s * unit_scale,
        ci_low=t.q1_s * unit_scale,
        ci_high=t.q3_s * unit_scale,
        interval="iqr",
        n=t.n,
        samples=_sig([x * unit_scale for x in t.times]),
        **_side_fields(timing),
    )


def _rate(cell: Cell, metric: str, timing: InterleavedTiming, work: float) -> Record:
    """A rate (work / time) with its IQR mapped through the same division; unit and direction
    from the metric's spec."""
    t = timing.results["measured"]
    return ThroughputSuite.record(
        cell,
        metric,
        value=work / t.median_s,
        ci_low=work / t.q3_s,
        ci_high=work / t.q1_s,
        interval="iqr",
        n=t.n,
        samples=_sig([work / x for x in t.times]),
        **_side_fields(timing),
    )


def _speed_vs_reference(cell: Cell, metric: str, timing: InterleavedTiming,
                        reference: AttentionSpec) -> Record:
    """Per-round reference time / measured time: > 1 means faster than the reference."""
    ratios = timing.ratio("reference", "measured")
    summary = median_iqr(ratios)
    return ThroughputSuite.record(
        cell, metric, value=summary["median"], ci_low=summary["q1"], ci_high=summary["q3"],
        interval="iqr", n=len(ratios), samples=_sig(ratios), reference=reference.label,
        **_side_fields(timing),
    )


def _beside(cell: Cell, ctx: RunContext, build, probe: str):
    """The side-by-side reference of ``cell`` and its callables (``build(spec)``; None for the
    reference itself): the run's reference, else :data:`REFERENCE` where the run's one rejects
    this shape (``build(spec)[probe]`` raises ValueError on a first call)."""
    spec = side_reference(ctx)
    if is_reference(cell.attention, cell.options, spec):
        return spec, None
    fns = build(spec)
    if spec is not REFERENCE:
        try:
            fns[probe]()
        except ValueError:  # e.g. lsh at a length shorter than its buckets allow
            spec = REFERENCE
            fns = None if is_reference(cell.attention, cell.options) else build(spec)
    return spec, fns


def merge_processes(runs: list[list[Record]], kind: str = "processes") -> list[Record]:
    """One record per metric from the same cell timed in several processes (or windows,
    ``kind``): the samples pooled in order with ``sample_groups`` giving each group's count
    (a run's own groups kept: processes of windows), median and IQR over the pool, ``noisy`` if
    any group was, the first group's load with every group's ``rounds`` and ``groups`` naming
    what a group is."""
    if len(runs) == 1:
        return runs[0]
    merged = []
    for records in zip(*runs, strict=True):
        first = records[0]
        if any(r.metric != first.metric for r in records):
            raise ValueError(f"{kind} disagree on the records of {first.display}")
        if first.samples is None or any(r.status != "ok" or r.samples is None for r in records):
            failed = next((r for r in records if r.status != "ok"), first)
            merged.append(failed)
            continue
        pooled = [x for r in records for x in r.samples]  # type: ignore[union-attr]
        summary = median_iqr(pooled)
        noisy = "; ".join(sorted({r.noisy for r in records if r.noisy})) or None
        inner = (first.load or {}).get("groups")
        load = {**(first.load or {}), "groups": f"{kind} of {inner}" if inner else kind,
                "rounds": [(r.load or {}).get("rounds") for r in records]}
        groups = [g for r in records for g in (r.sample_groups or [len(r.samples)])]  # type: ignore[arg-type]
        merged.append(replace(first, value=summary["median"], ci_low=summary["q1"],
                              ci_high=summary["q3"], n=len(pooled), samples=pooled,
                              sample_groups=groups, noisy=noisy, load=load))
    return merged


def _window(w: int, params: ThroughputParams) -> str:
    return f" window {w + 1}/{params.windows}" if params.windows > 1 else ""


def shared_budget(params: ThroughputParams, k: int, floor: int = 4) -> ThroughputParams:
    """``params`` for one of ``k`` processes or windows sharing a pass's timing budget (at
    least ``floor`` rounds each)."""
    return params.model_copy(update={"min_run_time": params.min_run_time / k,
                                     "min_rounds": max(floor, math.ceil(params.min_rounds / k))})


#: Fewest rounds of one timing window: the gate tests the windows' estimates (best decile of a
#: time, median of a ratio), not their rounds.
WINDOW_MIN_ROUNDS = 2


def _flop_records(cell: Cell, name: str, timing: InterleavedTiming, flops: float,
                  calibration_flops: float, device: str) -> list[Record]:
    """``<pass>_flops_per_s`` and ``<pass>_peak_fraction``. The peak is the measured matmul peak
    in the cell's dtype (CPU: never below the calibration matmul's best round in this very
    timing, so a peak taken at a busy moment cannot inflate the fraction)."""
    dtype = str(cell.params.get("dtype", "float32"))
    peak = peak_flops(device, dtype, threads=timing.threads)
    if not device.startswith("cuda") and dtype == "float32":
        best = min(timing.results["calibration"].times)
        peak = max(peak, calibration_flops / best)
    rate = _rate(cell, f"{name}_flops_per_s", timing, flops)
    fraction = _rate(cell, f"{name}_peak_fraction", timing, flops / peak)
    fraction.load = {**(fraction.load or {}), "peak_flops_per_s": float(f"{peak:.6g}"),
                     "peak_dtype": dtype}
    return [rate, fraction]


def _calibration(cell: Cell, timings: list[InterleavedTiming], flops: float) -> Record:
    """GFLOP/s of the calibration matmul over every round of the cell: the machine's speed."""
    rates = [flops / t / 1e9 for timing in timings
             for t in timing.results["calibration"].times]
    summary = median_iqr(rates)
    noisy = "; ".join(sorted({t.noisy for t in timings if t.noisy})) or None
    return ThroughputSuite.record(
        cell, "calibration_gflops", value=summary["median"], ci_low=summary["q1"],
        ci_high=summary["q3"], interval="iqr", n=len(rates), samples=_sig(rates), noisy=noisy,
        load=_side_fields(timings[0])["load"],
    )


@register_suite
class ThroughputSuite(Suite):
    name = "throughput"
    description = "forward / backward / train-step speed per attention and sequence length"
    Params = ThroughputParams
    resource = "timing"
    run_keys = ("device", "threads")
    reference_metrics: ClassVar[dict[str, str]] = {
        "forward_ms": "forward_speed_vs_reference",
        "forward_tokens_per_s": "forward_speed_vs_reference",
        "backward_ms": "backward_speed_vs_reference",
        "fwd_bwd_ms": "fwd_bwd_speed_vs_reference",
        "fwd_bwd_tokens_per_s": "fwd_bwd_speed_vs_reference",
        "train_steps_per_s": "train_step_speed_vs_reference",
        "inference_tokens_per_s": "inference_speed_vs_reference",
    }
    # 2: interleaved with a reference and a calibration matmul, raw samples; 3: a run that names
    # no thread count times with all cores but one, malloc thresholds fixed (timing module)
    version = 3
    section = "harness.report.sections.throughput:render"
    metrics = (
        MetricSpec("forward_ms", "forward time", "ms", False, headline=True,
                   description="attention layer alone: median time per forward call, IQR"),
        MetricSpec("backward_ms", "backward time", "ms", False),
        MetricSpec("fwd_bwd_ms", "forward + backward time", "ms", False),
        MetricSpec("forward_tokens_per_s", "forward tokens/s", "tokens/s", True),
        MetricSpec("fwd_bwd_tokens_per_s", "forward + backward tokens/s", "tokens/s", True),
        MetricSpec("train_steps_per_s", "train steps/s (full model)", "steps/s", True),
        MetricSpec("inference_tokens_per_s", "inference tokens/s (full model)", "tokens/s",
                   True),
        MetricSpec("forward_speed_vs_reference", "forward speed vs reference", "x", True,
                   description="per round: reference time / this time, timed side by side"),
        MetricSpec("backward_speed_vs_reference", "backward speed vs reference", "x", True),
        MetricSpec("fwd_bwd_speed_vs_reference", "forward + backward speed vs reference", "x",
                   True),
        MetricSpec("train_step_speed_vs_reference", "train step speed vs reference", "x", True),
        MetricSpec("inference_speed_vs_reference", "inference speed vs reference", "x", True),
        # FLOP rates and % of peak are the gated times seen another way (the peak is measured
        # per run): shown, never judged a second time by compare (gated=False)
        MetricSpec("forward_flops_per_s", "forward FLOP rate", "FLOP/s", True, gated=False,
                   description="the family's declared FLOPs (Attention.flops) / median time"),
        MetricSpec("backward_flops_per_s", "backward FLOP rate", "FLOP/s", True, gated=False),
        MetricSpec("fwd_bwd_flops_per_s", "forward + backward FLOP rate", "FLOP/s", True,
                   gated=False),
        MetricSpec("forward_peak_fraction", "forward % of peak", "fraction", True,
                   format="percent", gated=False,
                   description="FLOP rate / the machine's measured matmul peak in the cell's"
                   " dtype (load.peak_flops_per_s)"),
        MetricSpec("backward_peak_fraction", "backward % of peak", "fraction", True,
                   format="percent", gated=False),
        MetricSpec("fwd_bwd_peak_fraction", "forward + backward % of peak", "fraction", True,
                   format="percent", gated=False),
        MetricSpec("calibration_gflops", "calibration matmul speed", "GFLOP/s",
                   description="how fast the machine was: a fixed matmul timed beside each pass"),
        MetricSpec("time_exponent", "time exponent", "exponent", False, summary=True,
                   description="slope of log time vs log N over the lengths where time grows"),
        MetricSpec("crossover_seq_len", "faster than the reference from N", "tokens", False,
                   summary=True, description="shortest measured length from which the forward"
                   " pass stays faster than the reference's; null: never"),
    )

    def plan(
        self, params: ThroughputParams, attentions: list[AttentionSpec], seeds: list[int]
    ) -> list[Cell]:
        # everything that defines a measurement is in the cell's parameters, so two runs are
        # compared only where they measured the same thing (device and threads: run.json)
        shape = {"heads": params.heads, "head_dim": params.head_dim, "dtype": "float32",
                 "causal": params.causal}
        cells = []
        if (model := planned_model()) is not None:  # a user's model: whole, capped lengths
            from harness.models.user import planned_lengths

            lengths, extra = planned_lengths(model, params.seq_lens)
            return [spec.cell(self.name, {"kind": "model", "seq_len": n, "batch": batch,
                                          "dtype": "float32", **extra})
                    for spec in attentions for batch in params.batch_sizes for n in lengths]
        # the attentions take turns length by length, so an attention's cells lie seconds
        # apart: a few seconds' state of the machine lands in one of its cells, not in all
        # (harness compare asks a one-process regression to show in two cells)
        for batch in params.batch_sizes:
            for n in params.seq_lens:
                for spec in attentions:
                    cells.append(spec.cell(self.name, {"kind": "attention", "seq_len": n,
                                                       "batch": batch, **shape}))
        if params.model is not None:
            mp = params.model
            for n in mp.seq_lens:
                for spec in attentions:
                    cells.append(spec.cell(self.name, {
                        "kind": "model", "seq_len": n, "batch": mp.batch,
                        "hidden_size": mp.hidden_size, "num_layers": mp.num_layers,
                        "num_heads": mp.num_heads, "dtype": "float32"}))
        return cells

    def cell_weight(self, cell: Cell) -> float:
        return float(cell.params["seq_len"] * cell.params["batch"]) ** 1.2

    def imports(self, cell: Cell, user_model: bool) -> tuple[str, ...]:
        """A model cell builds the encoder (or the user's model); attention cells need nothing
        more."""
        return model_imports(user_model) if cell.params["kind"] == "model" else ()

    def upgrade_params(self, params: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
        if params.get("kind") == "model":
            model = {**{k: f.default for k, f in ModelThroughputParams.model_fields.items()},
                     **(section.get("model") or {})}
            extra = {k: model[k] for k in ("hidden_size", "num_layers", "num_heads")}
        else:
            extra = {k: section.get(k, ThroughputParams.model_fields[k].default)
                     for k in ("heads", "head_dim", "causal")}
        return {**params, **{k: v for k, v in extra.items() if k not in params},
                "dtype": params.get("dtype", "float32")}

    def replicas(self, params: ThroughputParams) -> int:
        """``processes``: the executor times each cell once in each of that many worker
        processes (the same ones for every cell of the run), one after the other."""
        return params.processes

    def replica_params(self, params: ThroughputParams, i: int, k: int) -> ThroughputParams:
        """Each process gets its share of the timing budget (``shared_budget``)."""
        return shared_budget(params, k).model_copy(update={"processes": 1})

    def merge_replicas(self, runs: list[list[Record]]) -> list[Record]:
        """The processes' records pooled (``merge_processes``)."""
        return merge_processes(runs)

    def run_cell(self, cell: Cell, params: ThroughputParams, ctx: RunContext) -> list[Record]:
        """One process's timing of ``cell`` (``processes`` is the executor's: see
        :meth:`replicas`)."""
        if cell.params["kind"] == "model":
            return self._run_model(cell, params, ctx)
        return self._run_attention(cell, params, ctx)

    def _timer(self, params: ThroughputParams, ctx: RunContext, calibration):
        """Time ``measured`` side by side with ``reference`` (or the calibration matmul when
        None) and the calibration matmul. Given ``after`` (the same pass's earlier window),
        the block sizes are known (no probe call) and, unless ``fresh`` (e.g. a new graph to
        run backward through), the callables are warm (no warm-up)."""
        def run(measured, reference, label: str, after: InterleavedTiming | None = None,
                fresh: bool = False) -> InterleavedTiming:
            fns = {"measured": measured, "reference": reference or calibration,
                   "calibration": calibration}
            numbers = ({k: r.number_per_run for k, r in after.results.items()}
                       if after is not None else None)
            return time_interleaved(
                fns,
                device=ctx.device,
                threads=ctx.threads,
                warmup=params.warmup if after is None or fresh else 0,
                min_run_time=params.min_run_time,
                min_rounds=params.min_rounds,
                label=label,
                numbers=numbers,
            )

        return run

    def _run_attention(
        self, cell: Cell, params: ThroughputParams, ctx: RunContext
    ) -> list[Record]:
        n, batch = cell.params["seq_len"], cell.params["batch"]
        tokens = float(n * batch)
        q, k, v = attention_inputs(batch, params.heads, n, params.head_dim, device=ctx.device,
                                   requires_grad=True)
        grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(1)).to(q)
        causal = params.causal
        calibration, flops = calibration_kernel(ctx.device)

        def passes(spec: AttentionSpec) -> dict:
            """The three timed passes of one attention on the shared inputs."""
            attn = spec.build().to(ctx.device)
            shared = attn.capabilities.shared_qk
            keys = q if shared else k
            inputs = (q, v) if shared else (q, k, v)
            out = {}

            def forward():
                with torch.no_grad():
                    return attn(q, keys, v, causal=causal)

            def make_backward():
                graph = attn(q, keys, v, causal=causal)

                def backward():
                    return torch.autograd.grad(graph, inputs, grad_out, retain_graph=True)

                return backward

            def fwd_bwd():
                o = attn(q, keys, v, causal=causal)
                return torch.autograd.grad(o, inputs, grad_out)

            out["forward"], out["backward"], out["fwd_bwd"] = forward, make_backward, fwd_bwd
            return out

        spec = AttentionSpec(cell.attention, cell.options, cell.label)
        mine = passes(spec)
        built = spec.build()
        resolved = built.options
        side, ref = _beside(cell, ctx, passes, "forward")
        timer = self._timer(shared_budget(params, params.windows, WINDOW_MIN_ROUNDS), ctx,
                            calibration)
        windows = []
        first: dict[str, InterleavedTiming] = {}
        for w in range(params.windows):  # the passes take turns, window by window
            records: list[Record] = []
            timings: list[InterleavedTiming] = []
            for name in ("forward", "backward", "fwd_bwd"):
                if name not in params.passes:
                    continue
                fn, ref_fn = mine[name], ref[name] if ref else None
                if name == "backward":  # each backward needs its own retained graph
                    fn, ref_fn = fn(), ref_fn() if ref_fn else None
                t = timer(fn, ref_fn, f"{cell.label} {name} N={n}{_window(w, params)}",
                          first.get(name), fresh=name == "backward")
                first.setdefault(name, t)
                timings.append(t)
                records.append(_metric(cell, f"{name}_ms", t, 1e3))
                if name != "backward":
                    records.append(_rate(cell, f"{name}_tokens_per_s", t, tokens))
                records.append(_speed_vs_reference(cell, f"{name}_speed_vs_reference", t, side))
                work = type(built).flops(batch, params.heads, n, params.head_dim, resolved, name,
                                         causal=causal)
                if work:
                    records += _flop_records(cell, name, t, float(work), flops, ctx.device)
                del fn, ref_fn
            if timings:
                records.append(_calibration(cell, timings, flops))
            windows.append(records)
        records = merge_processes(windows, "windows")
        kernel = getattr(built, "kernel", None)  # read after the timing: a compile may fail
        if kernel:  # which kernel ran (e.g. FlexAttention compiled or eager)
            for r in records:
                r.load = {**(r.load or {}), "kernel": kernel}
        return records

    def _run_model(self, cell: Cell, params: ThroughputParams, ctx: RunContext) -> list[Record]:
        from harness.models import build_model

        mp = params.model or ModelThroughputParams()  # unused with a user's model
        n, batch = cell.params["seq_len"], cell.params["batch"]
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(4, mp.vocab_size, (batch, n), generator=gen).to(ctx.device)
        mask = torch.ones(batch, n, dtype=torch.bool, device=ctx.device)
        labels = torch.randint(0, mp.num_labels, (batch,), generator=gen).to(ctx.device)

        def steps(spec: AttentionSpec):
            if ctx.model is not None:  # a user's transformers model (harness.models.user)
                from harness.models.user import timing_steps

                return timing_steps(ctx.model, spec, n, batch, ctx.device)
            torch.manual_seed(0)
            model = build_model(
                spec.name,
                attention_options=dict(spec.options),
                vocab_size=mp.vocab_size,
                num_labels=mp.num_labels,
                max_position=n + 1,
                hidden_size=mp.hidden_size,
                num_layers=mp.num_layers,
                num_heads=mp.num_heads,
            ).to(ctx.device)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def train_step():
                model.train()
                opt.zero_grad(set_to_none=True)
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                loss.backward()
                opt.step()

            def infer():
                model.eval()
                with torch.no_grad():
                    return model(input_ids=ids, attention_mask=mask).logits

            return train_step, infer

        calibration, flops = calibration_kernel(ctx.device)
        timer = self._timer(shared_budget(params, params.windows, WINDOW_MIN_ROUNDS), ctx,
                            calibration)
        train, infer = steps(AttentionSpec(cell.attention, cell.options, cell.label))
        side, ref = _beside(cell, ctx, lambda spec: dict(zip(("train", "infer"), steps(spec),
                                                            strict=True)), "infer")
        ref_train, ref_infer = (ref["train"], ref["infer"]) if ref else (None, None)
        windows: list[list[Record]] = []
        t_train = t_inf = None
        for w in range(params.windows):  # training and inference take turns
            at = f"N={n}{_window(w, params)}"
            t_train = timer(train, ref_train, f"{cell.label} model train step {at}", t_train)
            t_inf = timer(infer, ref_infer, f"{cell.label} model inference {at}", t_inf)
            windows.append([
                _rate(cell, "train_steps_per_s", t_train, 1.0),
                _speed_vs_reference(cell, "train_step_speed_vs_reference", t_train, side),
                _rate(cell, "inference_tokens_per_s", t_inf, float(n * batch)),
                _speed_vs_reference(cell, "inference_speed_vs_reference", t_inf, side),
                _calibration(cell, [t_train, t_inf], flops),
            ])
        return merge_processes(windows, "windows")

    def summarize(
        self, records: list[Record], params: ThroughputParams, ctx: RunContext
    ) -> list[Record]:
        """Time exponents per attention and pass, and the crossover length vs the reference."""
        return self._exponents(records, params) + self._crossover(records, ctx)

    def _exponents(self, records: list[Record], params: ThroughputParams) -> list[Record]:
        """``time_exponent``: slope of log time vs log N (t-based 95% interval), fitted only over
        the lengths where time grows (:func:`growing_tail`); shorter lengths are
        constant-dominated. With fewer than two growing lengths there is no exponent
        (``status: skipped``, with the reason); a negative slope cannot be shown, since time rises
        at every fitted step."""
        groups: dict[tuple[str, str, int], list[Record]] = {}
        for r in records:
            if r.suite == self.name and r.metric in ("forward_ms", "backward_ms", "fwd_bwd_ms") \
                    and r.status == "ok" and r.value and r.params.get("kind") == "attention":
                key = (r.label or r.attention, r.metric, r.params["batch"])
                groups.setdefault(key, []).append(r)
        out = []
        for (label, metric, batch), rows in sorted(groups.items()):
            rows = sorted(rows, key=lambda r: r.params["seq_len"])
            lengths = [r.params["seq_len"] for r in rows]
            times = [float(r.value) for r in rows]  # type: ignore[arg-type]
            first = rows[0]
            base = {"suite": self.name, "attention": first.attention, "options": first.options,
                    "params": {"kind": "exponent", "pass": metric.removesuffix("_ms"),
                               "batch": batch},
                    "metric": "time_exponent", "unit": "exponent", "label": label}
            if len(rows) < 2:
                continue
            start = growing_tail(lengths, times, params.growth_floor)
            used = lengths[start:]
            dropped = lengths[:start]
            note = (f"constant-dominated below N={used[0]}: fitted over {used}" if dropped
                    and len(used) >= 2 else None)
            if len(used) < 2:
                out.append(Record(**base, status="skipped", n=len(used), error=(
                    f"constant-dominated at these lengths ({lengths[0]}-{lengths[-1]}): time"
                    f" grows slower than N^{params.growth_floor:g}; measure longer inputs")))
                continue
            fit = fit_power_law(used, times[start:])  # time rises at every step: slope >= 0
            out.append(Record(**base, higher_is_better=False, error=note,
                              **fit.estimate().record_fields()))
        return out

    def _crossover(self, records: list[Record], ctx: RunContext) -> list[Record]:
        """Crossover length: from which measured N on is each variant faster than standard?"""
        fwd = [r for r in records if r.metric == "forward_ms" and r.status == "ok"
               and r.value is not None and r.params.get("kind") == "attention"]
        baseline = {
            (r.params["batch"], r.params["seq_len"]): r.value
            for r in fwd
            if ctx.is_reference(r.label or r.attention)
        }
        if not baseline:
            return []
        by_label: dict[tuple[str, int], list[Record]] = {}
        for r in fwd:
            by_label.setdefault((r.label or r.attention, r.params["batch"]), []).append(r)
        out = []
        for (label, batch), rows in sorted(by_label.items()):
            if ctx.is_reference(label):
                continue
            rows = sorted(rows, key=lambda r: r.params["seq_len"])
            pairs = [(r.params["seq_len"], r.value, baseline.get((batch, r.params["seq_len"])))
                     for r in rows]
            pairs = [p for p in pairs if p[2] is not None]
            crossover = None
            for i, (n, _, _) in enumerate(pairs):
                if all(ours < base for _, ours, base in pairs[i:]):
                    crossover = n
                    break
            first = rows[0]
            out.append(Record(
                suite=self.name, attention=first.attention, options=first.options,
                params={"kind": "crossover", "batch": batch,
                        **{k: first.params[k] for k in ("heads", "head_dim", "dtype", "causal")
                           if k in first.params}},
                metric="crossover_seq_len",
                value=crossover, unit="tokens", higher_is_better=False, n=len(pairs),
                label=label,
                error=None if crossover is not None else
                f"never faster than {ctx.reference} in range",
            ))
        return out
