"""Fidelity: how far each attention's output is from exact softmax attention (an example suite).

One module is the whole suite: its parameters, its cells, its metrics (declared once, with unit,
direction and headline) and its version. Installed, its entry point (group ``harness.suites``)
enrolls it; otherwise ``--plugin harness_fidelity`` loads it. A profile entry ``fidelity: {...}``
then runs it on any executor, and the report and ``harness compare`` show it from the declared
metrics alone (the report's generic section).
"""

from __future__ import annotations

import torch
from pydantic import Field

from harness.attention import get_attention, reference_attention
from harness.records import Cell, Record
from harness.suites.base import (
    AttentionSpec,
    MetricSpec,
    RunContext,
    Suite,
    SuiteParams,
    register_suite,
)

__all__ = ["FidelityParams", "FidelitySuite"]
__version__ = "0.1.0"


class FidelityParams(SuiteParams):
    """The profile entry's keys (``suites: {fidelity: {...}}``); unknown keys are errors."""

    seq_lens: tuple[int, ...] = (64, 256)
    batch: int = 2
    heads: int = 2
    head_dim: int = 16
    causal: bool = False
    timeout_s: float = Field(default=600.0, gt=0.0)  # per cell: past it, recorded `timeout`


@register_suite
class FidelitySuite(Suite):
    """Per attention, sequence length and seed: random q, k, v (seeded), the attention's output
    against float64 softmax attention of the same inputs."""

    name = "fidelity"
    description = "distance of each attention's output from exact softmax, random inputs"
    Params = FidelityParams
    version = 1
    metrics = (
        MetricSpec("max_abs_error", "max abs error vs softmax", "abs", False, headline=True,
                   description="largest absolute difference from float64 softmax attention"),
        MetricSpec("cosine_similarity", "cosine vs softmax", "fraction", True,
                   description="cosine similarity of the output with softmax attention's,"
                               " mean over (batch, head)"),
    )

    def plan(self, params: FidelityParams, attentions: list[AttentionSpec],
             seeds: list[int]) -> list[Cell]:
        return [spec.cell(self.name, {"seq_len": n, "seed": seed, "causal": params.causal})
                for spec in attentions for n in params.seq_lens for seed in seeds]

    def run_cell(self, cell: Cell, params: FidelityParams, ctx: RunContext) -> list[Record]:
        attention = get_attention(cell.attention, **cell.options)
        causal = bool(cell.params["causal"])
        if causal and not attention.capabilities.causal:
            raise ValueError(f"{cell.attention} does not support causal attention; set"
                             " fidelity.causal: false")
        gen = torch.Generator().manual_seed(int(cell.params["seed"]))
        shape = (params.batch, params.heads, int(cell.params["seq_len"]), params.head_dim)
        q, k, v = (torch.randn(shape, generator=gen) for _ in range(3))
        with torch.no_grad():
            out = attention(q, k, v, causal=causal).double()
        exact = reference_attention(q.double(), k.double(), v.double(), causal=causal)
        error = float((out - exact).abs().max())
        cosine = float(torch.nn.functional.cosine_similarity(
            out.flatten(2), exact.flatten(2), dim=-1).mean())
        n = params.batch * params.heads
        return [
            self.record(cell, "max_abs_error", value=error, n=n),  # unit, direction: its spec
            self.record(cell, "cosine_similarity", value=cosine, n=n),
        ]
