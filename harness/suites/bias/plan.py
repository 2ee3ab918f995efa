"""The bias suite's plan: per attention and seed, a controlled cell per planted strength and a
text cell on the run's data."""

from __future__ import annotations

from harness.records import Cell
from harness.suites.base import AttentionSpec, resolve_options
from harness.suites.bias.params import BiasParams

__all__ = ["plan_cells"]


def plan_cells(suite: str, params: BiasParams, attentions: list[AttentionSpec],
               seeds: list[int]) -> list[Cell]:
    """The cells of ``suite`` in order. Options that run: class defaults < the suite's
    ``attention_options`` < (text cells) ``text.attention_options`` < the spec's own."""
    planted = f"{params.corpus.bias_axis}:{params.corpus.bias_group}"
    if params.probe_set is not None:
        params.probe_set.load()  # bad probe input stops the run before anything trains
    cells = []
    for spec in attentions:
        options = resolve_options(spec, params.attention_options)
        for seed in seeds:
            for strength in params.strengths:
                cells.append(Cell(suite, spec.name, options,
                                  {"probe": "controlled", "planted": planted,
                                   "strength": strength, "seed": seed}, spec.label))
            if params.text is not None:
                text_options = resolve_options(spec, params.attention_options,
                                               params.text.attention_options)
                cells.append(Cell(suite, spec.name, text_options,
                                  {"probe": "text", "seed": seed}, spec.label))
    return cells
