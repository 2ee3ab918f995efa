"""Accuracy suite: does a model with each attention still learn the task?

Cells are attention x task x seed. Each cell trains the encoder classifier with the shared trainer
(:mod:`harness.suites.training`: the same model size and budget for every attention), keeps the
best-validation checkpoint and scores it on test: ``macro_f1`` and ``accuracy`` with a 95%
percentile-bootstrap interval over test examples, plus ``val_macro_f1``, ``train_time_s``,
``n_params`` and ``best_step``. Test labels and predictions go to ``artifacts/<cell id>.json``.

Tasks: the synthetic ``tasks`` (default ListOps and associative recall) always run; the ``text``
task runs on the run's data (``--data-files`` / ``--dataset``); without them its cells are recorded
as ``skipped``. A task entry may carry its own data (``params.data_files``), budget (``train``) and
attention options.

Attention options per task: the block-sparse and LSH defaults (``block_size`` / ``chunk_size`` 64)
are sized for long inputs. On a 64-token input one 64-token block or chunk *is* full attention, and
on a 200-token input window + global + random blocks of 64 cover every key. ``attention_options``
(suite-wide, and per task on top) fill in options a profile's attention spec leaves unset, e.g.
``{sparse: {block_size: 8}, lsh: {chunk_size: 16}}`` for 128-token inputs, so the variants really
are sparse; the options that ran are in every record's ``options``.

``summarize`` writes, per attention and task: ``macro_f1_mean`` / ``accuracy_mean`` /
``train_time_s_mean`` over seeds (stderr, 95% t-interval, n seeds), ``macro_f1_diff_vs_reference``
(mean over the seeds both models ran, paired bootstrap over the same test examples, 95% interval)
with its ``paired_p_value`` and ``n_params_ratio_vs_reference``. With ``fidelity``, probe cells
(``params.probe: fidelity``, planned after the reference cell they depend on) write, per task, for
every softmax-approximating attention (sparse, lsh, linear with ``feature_map=favor``):
``fidelity_rel_error`` (relative error of its outputs against exact softmax on the trained standard
model's own q, k, v, per test example; mean with bootstrap interval) and ``swap_macro_f1`` (the
standard model's test macro-F1 with its attention swapped, no retraining). The reference is
the profile's ``reference`` attention (default ``standard``); its checkpoint for the first
seed is saved to ``artifacts/<cell id>.pt`` so the probe cells can reload it.

No verdict without signal: per task, ``chance_macro_f1`` is the macro-F1 of the best label-blind
guess (majority class or uniform, on the test labels, with a bootstrap interval), and
``task_signal`` is 1 when every seed's reference macro-F1 has its lower 95% bound above it. On a
task without signal (0) every comparison on it (``macro_f1_diff_vs_reference``,
``paired_p_value``, ``macro_f1_gain_vs_no_attention``) keeps its value but has ``status:
skipped`` and an ``error`` starting with ``no_signal:`` that says why: it is not a finding.

The no-attention baseline (``baseline: true``): per task and seed one more cell,
``attention: none``, label ``no-attention``, ``params.ablation: no_token_mixing``: the same
encoder with every self-attention sublayer removed (per-token layers, then mean pooling), the same
budget. ``macro_f1_gain_vs_no_attention`` (each attention minus it, paired bootstrap) states how
much F1 token mixing adds per task. It is a baseline row, not an attention family: it is not in
the registry and gets no fidelity figures.

``threads`` pins torch's thread count while the suite trains and scores (small encoders gain
little from intra-op threads and a single thread is much steadier on a shared machine).

The package: :mod:`~harness.suites.accuracy.params` (tasks, their defaults, the budget),
:mod:`~harness.suites.accuracy.plan` (cells, dependencies, skip reasons, costs),
:mod:`~harness.suites.accuracy.cells` (training, scoring, fidelity) and
:mod:`~harness.suites.accuracy.summary` (means, paired comparisons, task signal); the
statistics they use live in :mod:`harness.measure.stats`.
"""

from __future__ import annotations

from harness.measure.stats import chance_macro_f1
from harness.records import Cell, Record
from harness.suites.accuracy import plan as _plan
from harness.suites.accuracy.cells import fidelity_errors, load_cached, run_cell, score_predictions
from harness.suites.accuracy.params import (
    BASELINE_LABEL,
    AccuracyParams,
    MediaTaskEntry,
    TaskEntry,
    TextTaskEntry,
)
from harness.suites.accuracy.summary import paired_diff, summarize
from harness.suites.base import (
    AttentionSpec,
    MetricSpec,
    RunContext,
    Suite,
    register_suite,
)
from harness.suites.inputs import INPUT_METRIC_SPECS
from harness.suites.training import model_imports

__all__ = [
    "BASELINE_LABEL",
    "AccuracyParams",
    "AccuracySuite",
    "MediaTaskEntry",
    "TaskEntry",
    "TextTaskEntry",
    "chance_macro_f1",
    "fidelity_errors",
    "load_cached",
    "paired_diff",
    "score_predictions",
]


@register_suite
class AccuracySuite(Suite):
    name = "accuracy"
    description = ("macro-F1 after training each attention with one budget (synthetic tasks, text,"
                   " images, audio)")
    Params = AccuracyParams
    version = 2  # 2: Wald p-values on the bootstrap stderr, no_signal, no-attention baseline
    section = "harness.report.sections.accuracy:render"
    metrics = (
        MetricSpec("macro_f1", "macro-F1 (one seed)", "f1", True),
        MetricSpec("accuracy", "accuracy (one seed)", "fraction", True),
        MetricSpec("val_macro_f1", "validation macro-F1", "f1", True),
        MetricSpec("train_time_s", "training time", "s", False),
        MetricSpec("n_params", "parameters", "count"),
        MetricSpec("best_step", "best-validation step", "steps"),
        *INPUT_METRIC_SPECS,
        MetricSpec("macro_f1_mean", "macro-F1 (mean over seeds)", "f1", True, headline=True,
                   summary=True),
        MetricSpec("accuracy_mean", "accuracy (mean over seeds)", "fraction", True,
                   summary=True),
        MetricSpec("train_time_s_mean", "training time (mean over seeds)", "s", False,
                   summary=True),
        MetricSpec("macro_f1_diff_vs_reference", "Δ macro-F1 vs the reference", "f1", True,
                   format="signed", summary=True),
        MetricSpec("paired_p_value", "paired p-value", "p", summary=True),
        MetricSpec("n_params_ratio_vs_reference", "parameters / the reference's", "ratio",
                   summary=True),
        MetricSpec("fidelity_rel_error", "fidelity relative error", "fraction", False,
                   summary=True),
        MetricSpec("swap_macro_f1", "swap macro-F1 (no retraining)", "f1", True, summary=True),
        MetricSpec("chance_macro_f1", "chance macro-F1 (best blind guess)", "f1", summary=True,
                   description="majority class or uniform guess on the test labels"),
        MetricSpec("task_signal", "task learned (reference above chance)", "flag", True,
                   summary=True, description="0 = no_signal: comparisons on the task are not"
                   " findings (their records are skipped, with the reason)"),
        MetricSpec("macro_f1_gain_vs_no_attention", "Δ macro-F1 vs no attention", "f1", True,
                   format="signed", summary=True,
                   description="what token mixing adds over the no-attention baseline row"),
    )

    def __init__(self) -> None:
        self._weights: dict[str, float] = {}

    def plan(
        self, params: AccuracyParams, attentions: list[AttentionSpec], seeds: list[int]
    ) -> list[Cell]:
        return _plan.plan_cells(self.name, params, attentions, seeds, self._weights)

    def depends_on(self, cell: Cell, cells: list[Cell]) -> list[Cell]:
        return _plan.depends_on(cell, cells)

    def skip_reason(self, cell: Cell, finished: list[Record]) -> str | None:
        return _plan.skip_reason(cell, finished)

    def cell_weight(self, cell: Cell) -> float:
        return self._weights.get(cell.id, 1.0)

    def imports(self, cell: Cell, user_model: bool) -> tuple[str, ...]:
        return model_imports(user_model)

    def run_cell(self, cell: Cell, params: AccuracyParams, ctx: RunContext) -> list[Record]:
        return run_cell(self, cell, params, ctx)

    def summarize(
        self, records: list[Record], params: AccuracyParams, ctx: RunContext
    ) -> list[Record]:
        return summarize(self, records, params, ctx)
