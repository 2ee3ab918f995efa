"""Bias-probe suite: does a model treat groups alike, and does the attention variant change that?

Two kinds of cell per attention and seed (every attention gets the same :class:`TrainParams`):

* ``{"probe": "controlled", "planted": "<axis>:<group>", "strength": s, "seed": k}`` trains on the
  data layer's ``bias_sentiment`` corpus, whose training labels tie one group to the negative class
  with strength ``s`` (0 = no association), and scores the balanced test split where group and
  label are independent. It writes the group audit of every demographic attribute (fairlearn
  ``MetricFrame``: per-group rates, demographic-parity and equalized-odds gaps, bootstrap CIs),
  the bias amplification of the planted group, a counterfactual probe on the test sentences and
  the template probe.
* ``{"probe": "text", "seed": k}`` trains on the run's text dataset (``--data-files`` or
  ``--dataset``, capped by ``text``) and runs the counterfactual and template probes on it;
  without external data the cell is recorded as skipped.

``summarize`` compares every bias metric of each variant with the run's reference (profile
``reference``, ``standard`` by default) on the same examples: a paired bootstrap over test
examples from the per-example outputs each cell saves to ``artifacts/<cell id>.json``
(``params.ci_method = "paired_bootstrap"``), or, when those files are missing, a normal
approximation from the two records' intervals assuming independence
(``"normal_approx"``). Those intervals cover the sampling of test examples only, not training
randomness; with two or more seeds a ``seed: "all"`` record adds the mean difference over seeds
with a t-interval (``"t_over_seeds"``).

Flags: every comparison of an efficient attention tests one-sided whether it is more than
``min_increase`` more biased than the reference (``increase_p_value``: a Wald test on the paired
bootstrap's standard error, or Student's t over seeds). The comparisons of one attention at one
seed (or ``all``) and one planted strength (or data source) are one family: their p-values are
adjusted together (``multiplicity``: Holm by default, or Benjamini-Hochberg;
``increase_p_adjusted``) and ``significant_increase`` is 1 where the adjusted p-value is at most
``alpha``. Tested alone at 95%, about half the null families carried a false flag; adjusted, at
most ``alpha`` of them do (``scripts/prove_bias_calibration.py``).

The package: :mod:`~harness.suites.bias.params` (corpus, budget, probes, test settings),
:mod:`~harness.suites.bias.plan` (the cells), :mod:`~harness.suites.bias.cells` (training, the
audit, counterfactual, template and probe-set records, :class:`Scorer`) and
:mod:`~harness.suites.bias.summary` (differences, flags); the statistics they use live in
:mod:`harness.measure.stats`, the probe-set audit in :mod:`harness.suites.probes`.
"""

from __future__ import annotations

from harness.records import Cell, Record
from harness.suites.base import AttentionSpec, MetricSpec, RunContext, Suite, register_suite
from harness.suites.bias import cells as _cells
from harness.suites.bias import summary as _summary
from harness.suites.bias.cells import Scorer
from harness.suites.bias.params import BiasParams, CorpusParams, TextProbeParams
from harness.suites.bias.plan import plan_cells
from harness.suites.probes import PROBE_METRIC_SPECS
from harness.suites.training import model_imports

__all__ = [
    "BIAS_METRICS",
    "BiasParams",
    "BiasSuite",
    "CorpusParams",
    "Scorer",
    "TextProbeParams",
]


#: The cell metrics (``compared=True``: the summary compares them with the run's reference, as
#: ``<metric>_diff_vs_reference``).
_CELL_SPECS = (
    MetricSpec("demographic_parity_difference", "demographic-parity difference", "fraction",
               False, headline=True, compared=True,
               description="on the planted axis of the controlled probe"),
    MetricSpec("demographic_parity_ratio", "demographic-parity ratio", "fraction", True,
               compared=True),
    MetricSpec("equalized_odds_difference", "equalized-odds difference", "fraction", False,
               compared=True),
    MetricSpec("bias_amplification", "bias amplification", "fraction", False, compared=True),
    MetricSpec("flip_rate", "counterfactual flip rate", "fraction", False, compared=True),
    MetricSpec("score_gap", "score gap", "score", False, compared=True),
    MetricSpec("selection_rate", "selection rate", "fraction"),
    MetricSpec("tpr", "true-positive rate", "fraction"),
    MetricSpec("fpr", "false-positive rate", "fraction"),
    MetricSpec("accuracy", "accuracy", "fraction", True),
    MetricSpec("f1", "F1", "fraction"),
    MetricSpec("model_association", "model association", "fraction"),
    MetricSpec("data_association", "data association", "fraction"),
    MetricSpec("score_difference", "score difference", "score", format="signed"),
    MetricSpec("score_gap_p_value", "score-gap p-value", "p"),
    MetricSpec("worst_case_accuracy", "worst-case accuracy", "fraction", True),
    MetricSpec("train_time_s", "training time", "s", False),
)
#: The compared metrics and whether higher is better (from their specs).
BIAS_METRICS = {m.name: m.higher_is_better for m in _CELL_SPECS if m.compared}
_METRIC_SPECS = (
    *_CELL_SPECS,
    *(MetricSpec(f"{m.name}_diff_vs_reference", f"Δ {m.display} vs the reference", m.unit,
                 m.higher_is_better, format="signed", summary=True)
      for m in _CELL_SPECS if m.compared),
    MetricSpec("significant_increase", "significant increase vs the reference", "flag", False,
               summary=True, description="over seeds: more than min_increase more biased than"
               " the reference, after multiplicity control within the attention's family"),
    MetricSpec("increase_p_value", "p-value of the increase (raw)", "p", summary=True),
    MetricSpec("increase_p_adjusted", "p-value of the increase (adjusted)", "p", summary=True,
               description="Holm or Benjamini-Hochberg within the family; n = family size"),
    *PROBE_METRIC_SPECS,
)


@register_suite
class BiasSuite(Suite):
    name = "bias"
    description = ("fairlearn group audits, bias amplification, counterfactual and template"
                   " probes per attention")
    Params = BiasParams
    version = 2  # 2: flags over seeds with multiplicity control
    section = "harness.report.sections.bias:render"
    metrics = _METRIC_SPECS

    def plan(self, params: BiasParams, attentions: list[AttentionSpec],
             seeds: list[int]) -> list[Cell]:
        return plan_cells(self.name, params, attentions, seeds)

    def cell_weight(self, cell: Cell) -> float:
        return 1.0

    def imports(self, cell: Cell, user_model: bool) -> tuple[str, ...]:
        return model_imports(user_model)

    def run_cell(self, cell: Cell, params: BiasParams, ctx: RunContext) -> list[Record]:
        return _cells.run_cell(cell, params, ctx)

    def summarize(self, records: list[Record], params: BiasParams,
                  ctx: RunContext) -> list[Record]:
        return _summary.summarize(self, records, params, ctx, BIAS_METRICS)
