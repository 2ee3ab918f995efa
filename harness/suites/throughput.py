"""Throughput suite: how fast is each attention, alone and inside the encoder model?"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, PositiveFloat, PositiveInt

from harness.measure.stats import fit_power_law
from harness.measure.timing import time_callable
from harness.records import Cell, Record
from harness.suites.base import (
    AttentionSpec,
    MetricSpec,
    RunContext,
    Suite,
    SuiteParams,
    register_suite,
)

__all__ = [
    "ModelThroughputParams",
    "ThroughputParams",
    "ThroughputSuite",
    "attention_inputs",
    "growing_tail",
]

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


def _metric(cell: Cell, metric: str, seconds, unit_scale: float, unit: str, hib: bool) -> Record:
    return Record.for_cell(
        cell,
        metric,
        value=seconds.median_s * unit_scale,
        ci_low=seconds.q1_s * unit_scale,
        ci_high=seconds.q3_s * unit_scale,
        interval="iqr",
        n=seconds.n,
        unit=unit,
        higher_is_better=hib,
    )


def _rate(cell: Cell, metric: str, timing, work: float, unit: str) -> Record:
    """A rate (work / time) with its IQR mapped through the same division."""
    return Record.for_cell(
        cell,
        metric,
        value=work / timing.median_s,
        ci_low=work / timing.q3_s,
        ci_high=work / timing.q1_s,
        interval="iqr",
        n=timing.n,
        unit=unit,
        higher_is_better=True,
    )


@register_suite
class ThroughputSuite(Suite):
    name = "throughput"
    description = "forward / backward / train-step speed per attention and sequence length"
    Params = ThroughputParams
    version = 1
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
        MetricSpec("time_exponent", "time exponent", "exponent", False, summary=True,
                   description="slope of log time vs log N over the lengths where time grows"),
        MetricSpec("crossover_seq_len", "faster than the reference from N", "tokens", False,
                   summary=True, description="shortest measured length from which the forward"
                   " pass stays faster than the reference's; null: never"),
    )

    def plan(
        self, params: ThroughputParams, attentions: list[AttentionSpec], seeds: list[int]
    ) -> list[Cell]:
        cells = []
        for spec in attentions:
            for batch in params.batch_sizes:
                for n in params.seq_lens:
                    cells.append(spec.cell(self.name, {"kind": "attention", "seq_len": n,
                                                       "batch": batch}))
            if params.model is not None:
                for n in params.model.seq_lens:
                    cells.append(spec.cell(self.name, {"kind": "model", "seq_len": n,
                                                       "batch": params.model.batch}))
        return cells

    def cell_weight(self, cell: Cell) -> float:
        return float(cell.params["seq_len"] * cell.params["batch"]) ** 1.2

    def run_cell(self, cell: Cell, params: ThroughputParams, ctx: RunContext) -> list[Record]:
        if cell.params["kind"] == "model":
            return self._run_model(cell, params, ctx)
        return self._run_attention(cell, params, ctx)

    def _timer(self, params: ThroughputParams, ctx: RunContext):
        def run(fn, label: str):
            return time_callable(
                fn,
                device=ctx.device,
                threads=ctx.threads,
                warmup=params.warmup,
                min_run_time=params.min_run_time,
                label=label,
            )

        return run

    def _run_attention(
        self, cell: Cell, params: ThroughputParams, ctx: RunContext
    ) -> list[Record]:
        attn = AttentionSpec(cell.attention, cell.options, cell.label).build().to(ctx.device)
        n, batch = cell.params["seq_len"], cell.params["batch"]
        tokens = float(n * batch)
        q, k, v = attention_inputs(batch, params.heads, n, params.head_dim, device=ctx.device,
                                   requires_grad=True)
        shared = attn.capabilities.shared_qk
        keys = q if shared else k
        causal = params.causal
        timer = self._timer(params, ctx)
        records: list[Record] = []

        if "forward" in params.passes:
            def forward():
                with torch.no_grad():
                    return attn(q, keys, v, causal=causal)

            t = timer(forward, f"{cell.label} forward N={n}")
            records.append(_metric(cell, "forward_ms", t, 1e3, "ms", False))
            records.append(_rate(cell, "forward_tokens_per_s", t, tokens, "tokens/s"))
        grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(1)).to(q)
        inputs = (q, v) if shared else (q, k, v)
        if "backward" in params.passes:
            out = attn(q, keys, v, causal=causal)

            def backward():
                return torch.autograd.grad(out, inputs, grad_out, retain_graph=True)

            t = timer(backward, f"{cell.label} backward N={n}")
            records.append(_metric(cell, "backward_ms", t, 1e3, "ms", False))
            del out
        if "fwd_bwd" in params.passes:
            def fwd_bwd():
                o = attn(q, keys, v, causal=causal)
                return torch.autograd.grad(o, inputs, grad_out)

            t = timer(fwd_bwd, f"{cell.label} fwd_bwd N={n}")
            records.append(_metric(cell, "fwd_bwd_ms", t, 1e3, "ms", False))
            records.append(_rate(cell, "fwd_bwd_tokens_per_s", t, tokens, "tokens/s"))
        return records

    def _run_model(self, cell: Cell, params: ThroughputParams, ctx: RunContext) -> list[Record]:
        from harness.models import build_model

        mp = params.model
        assert mp is not None
        n, batch = cell.params["seq_len"], cell.params["batch"]
        torch.manual_seed(0)
        model = build_model(
            cell.attention,
            attention_options=dict(cell.options),
            vocab_size=mp.vocab_size,
            num_labels=mp.num_labels,
            max_position=n + 1,
            hidden_size=mp.hidden_size,
            num_layers=mp.num_layers,
            num_heads=mp.num_heads,
        ).to(ctx.device)
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(4, mp.vocab_size, (batch, n), generator=gen).to(ctx.device)
        mask = torch.ones(batch, n, dtype=torch.bool, device=ctx.device)
        labels = torch.randint(0, mp.num_labels, (batch,), generator=gen).to(ctx.device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        timer = self._timer(params, ctx)

        def train_step():
            opt.zero_grad(set_to_none=True)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            opt.step()

        model.train()
        t_train = timer(train_step, f"{cell.label} model train step N={n}")
        model.eval()

        def infer():
            with torch.no_grad():
                return model(input_ids=ids, attention_mask=mask).logits

        t_inf = timer(infer, f"{cell.label} model inference N={n}")
        return [
            _rate(cell, "train_steps_per_s", t_train, 1.0, "steps/s"),
            _rate(cell, "inference_tokens_per_s", t_inf, float(n * batch), "tokens/s"),
        ]

    def summarize(
        self, records: list[Record], params: ThroughputParams, ctx: RunContext
    ) -> list[Record]:
        """Time exponents per attention and pass, and the crossover length vs standard."""
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
                params={"kind": "crossover", "batch": batch}, metric="crossover_seq_len",
                value=crossover, unit="tokens", higher_is_better=False, n=len(pairs),
                label=label,
                error=None if crossover is not None else "never faster than standard in range",
            ))
        return out
