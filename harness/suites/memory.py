"""Memory-scaling suite: peak memory per attention and length, and the fitted exponent in N."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from harness.attention import get_attention
from harness.measure.memory import cuda_peak_memory, measure_cpu_peak, parse_target
from harness.measure.stats import exponent_verdict, fit_power_law
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
from harness.suites.throughput import attention_inputs

__all__ = ["MemoryParams", "MemorySuite", "memory_work"]

Mode = Literal["forward", "fwd_bwd"]
_TARGET = "harness.suites.memory:memory_work"
_USER_TARGET = "harness.models._memory:memory_work"


class MemoryParams(SuiteParams):
    """Length sweep for the peak-memory measurements."""

    seq_lens: list[PositiveInt] = Field(default_factory=lambda: [2048, 4096, 8192, 16384])
    batch: PositiveInt = 1
    heads: PositiveInt = 4
    head_dim: PositiveInt = 64
    modes: list[Mode] = Field(default_factory=lambda: ["forward", "fwd_bwd"])
    timeout_s: PositiveFloat = 300.0
    #: A claim O(N^p) holds when the fitted exponent's upper 95% bound (t quantiles) is at most
    #: p + this tolerance; an upper bound below p - tolerance reads "constant-dominated".
    exponent_tolerance: PositiveFloat = 0.3

    @field_validator("seq_lens")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seq_lens must not repeat, got {v}")
        return sorted(v)


def memory_work(
    name: str,
    options: dict[str, Any],
    seq_len: int,
    batch: int,
    heads: int,
    head_dim: int,
    mode: str,
    device: str = "cpu",
) -> Callable[[], object]:
    """Allocate the inputs of one memory cell and return the work to measure.

    Called inside the measuring process, so the inputs count in its baseline and only the
    attention's own allocations show up in the peak.
    """
    attn = get_attention(name, **options).to(device)
    grad = mode == "fwd_bwd"
    # Warm up on a short input so one-off allocations (thread pools, kernel caches) land in the
    # baseline rather than in the measured peak.
    wq, wk, wv = attention_inputs(batch, heads, min(seq_len, 128), head_dim, device=device,
                                  requires_grad=grad)
    shared = attn.capabilities.shared_qk
    wout = attn(wq, wq if shared else wk, wv)
    if grad:  # the same call as the measured one: its first use imports modules (sympy)
        wout.backward(torch.ones_like(wout))
    del wq, wk, wv, wout
    q, k, v = attention_inputs(batch, heads, seq_len, head_dim, device=device, requires_grad=grad)
    keys = q if shared else k

    def work() -> object:
        if grad:
            out = attn(q, keys, v)
            out.backward(torch.ones_like(out))
            return None
        with torch.no_grad():
            attn(q, keys, v)
        return None

    return work


@register_suite
class MemorySuite(Suite):
    name = "memory"
    description = "peak memory per length (fresh process per cell on CPU) and the N exponent"
    Params = MemoryParams
    resource = "memory"
    run_keys = ("device",)
    version = 2  # 2: claims judged as upper bounds on a t-based interval
    #: A peak is one process's: identical code moved single rows by up to +34% between runs
    #: (the allocator reuses a freed buffer in one process, maps new pages in another), and
    #: the fitted exponents with them; compare needs more than this to call a memory row a
    #: regression (docs/PERFORMANCE.md 7, "Memory rows")
    single_run_noise = 0.4
    section = "harness.report.sections.memory:render"
    metrics = (
        MetricSpec("peak_bytes", "peak memory", "bytes", False),
        MetricSpec("memory_exponent", "memory exponent", "exponent", False, headline=True,
                   summary=True, description="slope of log peak memory vs log N"),
        MetricSpec("claimed_exponent", "claimed exponent", "exponent", summary=True),
        MetricSpec("exponent_matches_claim", "claim holds (upper bound)", "bool", summary=True,
                   description="1: the exponent's upper 95% bound is within the claim +"
                   " tolerance; 0: above it; null: inconclusive"),
        MetricSpec("constant_dominated", "constant-dominated at these lengths", "flag",
                   summary=True, description="informational: grows much slower than claimed"),
        MetricSpec("max_seq_len_under_budget", "longest N under the budget", "tokens", True,
                   summary=True),
    )

    def plan(
        self, params: MemoryParams, attentions: list[AttentionSpec], seeds: list[int]
    ) -> list[Cell]:
        shape = {"heads": params.heads, "head_dim": params.head_dim, "dtype": "float32"}
        if (model := planned_model()) is not None:  # a user's model: whole, capped lengths
            from harness.models.user import planned_lengths

            lengths, extra = planned_lengths(model, params.seq_lens)
            return [spec.cell(self.name, {"mode": mode, "seq_len": n, "batch": params.batch,
                                          "dtype": "float32", **extra})
                    for spec in attentions for mode in params.modes for n in lengths]
        return [
            spec.cell(self.name, {"mode": mode, "seq_len": n, "batch": params.batch, **shape})
            for spec in attentions
            for mode in params.modes
            for n in params.seq_lens
        ]

    def cell_weight(self, cell: Cell) -> float:
        return 1.0 + cell.params["seq_len"] / 8192

    def imports(self, cell: Cell, user_model: bool) -> tuple[str, ...]:
        """The module of the work each CPU cell's child runs (the fork server preloads it)."""
        return (parse_target(_USER_TARGET if user_model else _TARGET)[0],)

    def depends_on(self, cell: Cell, cells: list[Cell]) -> list[Cell]:
        """The next shorter length of the same attention and mode: a sweep stops at its first
        oom, so each length waits for the one before it."""
        shorter = [c for c in cells if c.suite == self.name and c.label == cell.label
                   and c.options == cell.options and c.params["mode"] == cell.params["mode"]
                   and c.params["batch"] == cell.params["batch"]
                   and c.params["seq_len"] < cell.params["seq_len"]]
        return [max(shorter, key=lambda c: c.params["seq_len"])] if shorter else []

    def upgrade_params(self, params: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
        extra = {k: section.get(k, MemoryParams.model_fields[k].default)
                 for k in ("heads", "head_dim")}
        return {**params, **{k: v for k, v in extra.items() if k not in params},
                "dtype": params.get("dtype", "float32")}

    def skip_reason(self, cell: Cell, finished: list[Record]) -> str | None:
        for r in finished:
            if r.suite != self.name or r.params.get("mode") != cell.params["mode"]:
                continue
            if r.status in ("oom", "timeout"):
                return f"sweep stopped at its first {r.status} (N={r.params['seq_len']})"
            if r.status == "skipped" and r.error and "sweep stopped at its first" in r.error:
                return r.error  # the shorter length was skipped for the same reason
        return None

    def run_cell(self, cell: Cell, params: MemoryParams, ctx: RunContext) -> list[Record]:
        kwargs = {
            "name": cell.attention,
            "options": dict(cell.options),
            "seq_len": cell.params["seq_len"],
            "batch": cell.params["batch"],
            "heads": params.heads,
            "head_dim": params.head_dim,
            "mode": cell.params["mode"],
        }
        target, make_work = _TARGET, memory_work
        if ctx.model is not None:  # the whole user model (harness.models.user)
            from harness.models.user import memory_work as user_memory_work

            target, make_work = _USER_TARGET, user_memory_work
            kwargs = {k: v for k, v in kwargs.items() if k not in ("heads", "head_dim")}
            kwargs["model"] = dict(ctx.model)
        if ctx.device.startswith("cuda"):
            work = make_work(**kwargs, device=ctx.device)
            try:
                peak = cuda_peak_memory(work, ctx.device)
            except torch.cuda.OutOfMemoryError as err:
                return [self._record(cell, None, "oom", f"CUDA out of memory: {err}"[:500])]
            if peak > ctx.memory_budget:
                return [self._record(cell, None, "oom", f"peak {peak} B over the budget")]
            return [self._record(cell, peak, "ok", None)]
        # A fork server with torch imported gives each cell a fresh process without paying the
        # interpreter start and imports again (seconds per cell).
        result = measure_cpu_peak(
            target, kwargs, budget_bytes=ctx.memory_budget, timeout_s=params.timeout_s,
            launcher="forkserver",
        )
        if result.status == "ok":
            return [self._record(cell, result.peak_bytes, "ok", None)]
        if result.status == "timeout":  # not an oom: it says nothing about the budget
            return [self._record(cell, None, "timeout", f"timeout: {result.error or ''}")]
        if result.status == "oom":
            message = result.error or f"over the memory budget of {ctx.memory_budget} bytes"
            return [self._record(cell, None, "oom", f"oom: {message}")]
        raise RuntimeError(result.error or "memory measurement failed")

    def _record(self, cell: Cell, peak: int | None, status: str, error: str | None) -> Record:
        return self.record(cell, "peak_bytes", value=peak, n=1, status=status, error=error)

    def summarize(
        self, records: list[Record], params: MemoryParams, ctx: RunContext
    ) -> list[Record]:
        """Per attention and mode: fitted exponent (t-based 95% interval), the configuration's
        claimed exponent (``Attention.claimed_memory``, the one source `harness list` and the
        report read too), whether the claim holds as an upper bound, and the longest N."""
        groups: dict[tuple[str, str], list[Record]] = {}
        for r in records:
            if r.suite == self.name and r.metric == "peak_bytes":
                groups.setdefault((r.label or r.attention, r.params["mode"]), []).append(r)
        out: list[Record] = []
        for (_label, mode), rows in sorted(groups.items()):
            first = rows[0]
            ok = sorted((r for r in rows if r.status == "ok" and r.value and r.value > 0),
                        key=lambda r: r.params["seq_len"])
            claimed = AttentionSpec(first.attention, first.options).build().claimed_memory[1]

            shape = {k: first.params[k] for k in ("heads", "head_dim", "dtype")
                     if k in first.params}
            where = {"mode": mode, "batch": first.params["batch"], **shape}

            def rec(metric: str, value=None, first=first, where=where, **kw) -> Record:
                return self.record(first, metric, params=where, value=value, **kw)

            longest = max((r.params["seq_len"] for r in ok), default=None)
            out.append(rec("max_seq_len_under_budget", longest, n=len(rows)))
            out.append(rec("claimed_exponent", claimed))
            if len(ok) < 2:
                out.append(rec("memory_exponent", None, status="skipped", n=len(ok),
                               error=f"needs >= 2 lengths that ran, got {len(ok)}"))
                continue
            fit = fit_power_law([r.params["seq_len"] for r in ok], [r.value for r in ok])
            out.append(rec("memory_exponent", **fit.estimate().record_fields()))
            verdict, reason = exponent_verdict(fit, claimed, params.exponent_tolerance)
            holds = {"holds": 1.0, "constant_dominated": 1.0, "violated": 0.0}.get(verdict)
            out.append(rec("exponent_matches_claim", holds, n=fit.n_points,
                           error=None if holds == 1.0 else reason))
            out.append(rec("constant_dominated", float(verdict == "constant_dominated"),
                           n=fit.n_points,
                           error=reason if verdict == "constant_dominated" else None))
        return out
