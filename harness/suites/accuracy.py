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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from harness.measure.stats import Estimate, PairedResult, bootstrap_ci, paired_bootstrap
from harness.records import Cell, Record, canonical_json
from harness.suites.base import (
    AttentionSpec,
    MetricSpec,
    RunContext,
    Suite,
    SuiteParams,
    planned_model,
    register_suite,
)
from harness.suites.inputs import INPUT_METRIC_SPECS, input_records
from harness.suites.predictions import PredictionSet, save_predictions
from harness.suites.training import (
    TrainParams,
    build_for_task,
    load_task_cached,
    macro_f1_scores,
    make_batch,
    predict,
    train_classifier,
)

if TYPE_CHECKING:
    from harness.data.base import Split, TaskData

__all__ = [
    "AccuracyParams",
    "AccuracySuite",
    "MediaTaskEntry",
    "TaskEntry",
    "TextTaskEntry",
    "fidelity_errors",
    "load_cached",
    "paired_diff",
    "score_predictions",
]

#: Attention name and label of the no-attention baseline row (an ablation, not a registry entry).
BASELINE = "none"
BASELINE_LABEL = "no-attention"
#: ``ctx.data`` fields that the text task takes from the command line, not from the profile.
_DATA_KEYS = ("dataset", "data_files", "text_column", "label_column")
#: ... and those that the media (image/audio) task takes.
_MEDIA_KEYS = ("dataset", "data_dir", "data_format", "label_column", "skip_bad_files")


def _check_attention_options(value: dict[str, dict[str, Any]], where: str) -> None:
    from harness.attention import attention_class, attention_options, list_attentions

    for name, options in value.items():
        if name not in list_attentions():
            raise ValueError(
                f"{where}: unknown attention {name!r}; registered: {', '.join(list_attentions())}"
            )
        valid = attention_options(attention_class(name))
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(
                f"{where}.{name}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
            )


class TaskEntry(SuiteParams):
    """One task: ``load_task(name, **params)``, shown as ``label`` (default: the name).

    ``train`` overrides the suite's budget for this task (still identical for every attention);
    ``attention_options`` (per attention name) fill in options the attention spec leaves unset.
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    train: TrainParams | None = None
    attention_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("attention_options")
    @classmethod
    def _options(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        _check_attention_options(v, "attention_options")
        return v

    @model_validator(mode="after")
    def _known_task(self) -> TaskEntry:
        try:
            from harness.data import list_tasks, task_options
        except ImportError:  # the data layer is unavailable: load_task will say why at run time
            return self
        if self.name not in list_tasks():
            raise ValueError(f"unknown task {self.name!r}; registered: {', '.join(list_tasks())}")
        unknown = sorted(set(self.params) - set(task_options(self.name)))
        if unknown:
            valid = ", ".join(task_options(self.name))
            raise ValueError(
                f"task {self.name!r}: unknown parameter(s) {', '.join(unknown)}; valid: {valid}"
            )
        return self

    @property
    def key(self) -> str:
        return self.label or self.name

    def config_hash(self) -> str:
        """Short hash of what defines the task's data, so cells differ when it changes."""
        return hashlib.sha1(canonical_json([self.name, self.params]).encode()).hexdigest()[:8]


class TextTaskEntry(TaskEntry):
    """The ``text`` task on the run's data (``--data-files``/``--dataset``); ``name`` is fixed."""

    name: Literal["text"] = "text"


def _listops() -> TaskEntry:
    return TaskEntry(name="listops", params={"n_train": 2000, "n_val": 200, "n_test": 500,
                                             "min_len": 32, "max_len": 128, "max_depth": 4,
                                             "max_args": 5},
                     attention_options={"sparse": {"block_size": 8}, "lsh": {"chunk_size": 16}})


def _recall() -> TaskEntry:
    return TaskEntry(name="recall", params={"n_train": 2000, "n_val": 200, "n_test": 500,
                                            "seq_len": 128, "n_pairs": 8, "n_queries": 4,
                                            "num_keys": 32, "num_values": 8},
                     attention_options={"sparse": {"block_size": 8}, "lsh": {"chunk_size": 16}})


class MediaTaskEntry(TaskEntry):
    """The ``media`` task on the run's image/audio data (``--data-dir`` + ``--data-format``, or
    ``--dataset NAME --data-format ...``); ``name`` is fixed."""

    name: Literal["media"] = "media"


def _text() -> TextTaskEntry:
    return TextTaskEntry(name="text", params={"tokenizer": "wordpiece", "vocab_size": 8000,
                                          "max_len": 64, "max_train": 20000, "max_eval": 2000},
                     attention_options={"sparse": {"block_size": 8}, "lsh": {"chunk_size": 8}})


class AccuracyParams(SuiteParams):
    """Parameters of the accuracy suite (see the module doc)."""

    tasks: list[TaskEntry] = Field(default_factory=lambda: [_listops(), _recall()])
    text: TextTaskEntry | None = Field(default_factory=_text)
    #: the run's image/audio data (``--data-dir``); a profile opts in with a ``media:`` entry
    media: MediaTaskEntry | None = None
    train: TrainParams = Field(default_factory=TrainParams)
    attention_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    n_boot: NonNegativeInt = 1000
    #: Also train the no-attention baseline (token mixing removed, same budget) per task and seed.
    baseline: bool = True
    fidelity: bool = True
    fidelity_max_examples: PositiveInt = 512
    predict_batch_size: PositiveInt = 128
    #: torch threads while training and scoring (None: the run's). Small encoders gain little
    #: from intra-op threads, and on a busy machine a single thread is far steadier.
    threads: PositiveInt | None = None
    #: Time limit of one cell (seconds): past it the cell is stopped and recorded ``timeout``.
    timeout_s: float = Field(default=14400.0, gt=0.0)

    @field_validator("attention_options")
    @classmethod
    def _options(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        _check_attention_options(v, "attention_options")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> AccuracyParams:
        keys = [t.key for t in self.all_tasks()]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(
                f"task labels must be unique, repeated: {', '.join(dupes)}; set `label:` on one"
            )
        for entry, keys, flags, pin in (
            (self.text, _DATA_KEYS, "--dataset/--data-files/--text-column/--label-column",
             "text and params.data_files"),
            (self.media, _MEDIA_KEYS, "--data-dir/--data-format/--dataset/--label-column",
             "media and params.data_dir"),
        ):
            given = sorted(set(entry.params) & set(keys)) if entry is not None else []
            if given:
                raise ValueError(
                    f"{entry.name}.params: {', '.join(given)} come from the command line "
                    f"({flags}); to pin data in the profile, add a `tasks:` entry with name: {pin}"
                )
        return self

    def all_tasks(self) -> list[TaskEntry]:
        run_data = [e for e in (self.text, self.media) if e is not None]
        return [*self.tasks, *run_data]

    def task(self, key: str) -> TaskEntry:
        for entry in self.all_tasks():
            if entry.key == key:
                return entry
        known = ", ".join(t.key for t in self.all_tasks())
        raise ValueError(f"accuracy: no task {key!r} in the profile; it has: {known}")

    def train_for(self, entry: TaskEntry) -> TrainParams:
        return entry.train or self.train


# ---------------------------------------------------------------------------------- helpers
def _is_reference(item: Cell | Record, ctx: RunContext) -> bool:
    """Whether a cell or record is the run's reference attention (profile ``reference``)."""
    return ctx.is_reference(item.label or item.attention)


def _approximates_softmax(attention: str, options: dict[str, Any]) -> bool:
    from harness.attention import attention_class

    if attention in ("standard", BASELINE):
        return False
    if attention == "linear":
        return options.get("feature_map") == "favor"
    return bool(attention_class(attention).capabilities.approximates_softmax)


def _is_text_from_run(entry: TaskEntry, params: AccuracyParams) -> bool:
    """Whether ``entry`` runs on the run's own data (the text or the media entry)."""
    return (params.text is not None and entry is params.text) or _is_media_from_run(entry, params)


def _is_media_from_run(entry: TaskEntry, params: AccuracyParams) -> bool:
    return params.media is not None and entry is params.media


def _task_kwargs(entry: TaskEntry, params: AccuracyParams, ctx: RunContext) -> dict[str, Any]:
    kwargs = dict(entry.params)
    if _is_text_from_run(entry, params):
        data = ctx.data
        for key in _MEDIA_KEYS if _is_media_from_run(entry, params) else _DATA_KEYS:
            value = getattr(data, key)
            if value is not None:
                kwargs[key] = dict(value) if isinstance(value, dict) else value
    return kwargs


def _has_run_data(ctx: RunContext, media: bool = False) -> bool:
    return ctx.data.media_given if media else ctx.data.given


def load_cached(name: str, kwargs: dict[str, Any], model: Any = None) -> TaskData:
    """``load_task`` through the suites' shared in-process cache (cells of one task share data);
    ``model``: the run's user model, which the task is encoded for."""
    return load_task_cached(name, model=model, **kwargs)


def _split_fingerprint(split: Split) -> str:
    h = hashlib.sha1()
    h.update(split.inputs.numpy().tobytes())
    h.update(split.labels.numpy().tobytes())
    return h.hexdigest()[:16]


def _f1_stat(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray | float:
    return macro_f1_scores(y, p, axis=axis)


def _acc_stat(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(y == p, axis=axis)


def score_predictions(
    y_true: np.ndarray, y_pred: np.ndarray, *, n_boot: int, seed: int = 0
) -> dict[str, Estimate]:
    """Test ``macro_f1`` and ``accuracy`` (through the shipped HF ``evaluate`` metrics) with 95%
    percentile-bootstrap intervals and bootstrap standard errors (none when ``n_boot`` < 2)."""
    from harness.metrics import accuracy, macro_f1

    out: dict[str, Estimate] = {}
    for name, value, stat in (("macro_f1", macro_f1(y_true, y_pred), _f1_stat),
                              ("accuracy", accuracy(y_true, y_pred), _acc_stat)):
        est = bootstrap_ci((y_true, y_pred), stat, n_boot=n_boot, seed=seed, vectorized=True)
        out[name] = replace(est, value=float(value))
    return out


def chance_macro_f1(y_true: np.ndarray, *, n_boot: int, seed: int = 0) -> Estimate:
    """Macro-F1 a model reaches without learning, on these test labels, with a bootstrap interval.

    The better of two label-blind predictors: always the majority class (of the test labels
    themselves, the strongest constant guess), and a uniformly random class (expected F1 of class
    ``c`` with share ``p_c`` among ``K`` classes: ``2 p_c / K / (p_c + 1 / K)``).
    """
    y = np.unique(np.asarray(y_true), return_inverse=True)[1].astype(np.int64)
    k = int(y.max()) + 1  # the classes the test labels hold

    def stat(labels: np.ndarray, axis: int = -1) -> np.ndarray:
        rows = labels.reshape(-1, labels.shape[-1])
        counts = np.stack([(rows == c).sum(axis=1) for c in range(k)], axis=1)
        share = counts / rows.shape[1]
        top = share.max(axis=1)
        majority = 2 * top / (1 + top) / (counts > 0).sum(axis=1)
        uniform = (2 * share / k / (share + 1 / k)).sum(axis=1) / k
        return np.maximum(majority, uniform)

    return bootstrap_ci(y, stat, n_boot=n_boot, seed=seed, vectorized=True)


def paired_diff(
    y_true: np.ndarray,
    preds_a: list[np.ndarray],
    preds_b: list[np.ndarray],
    *,
    metric: Callable[..., Any] = _f1_stat,
    n_boot: int = 1000,
    seed: int = 0,
) -> PairedResult:
    """Mean over seed pairs of ``metric(a_s) - metric(b_s)`` on the same test examples, by the
    package's paired bootstrap (the same resampled examples for every system and seed).

    ``metric(y, p, axis=-1)`` must accept 2-D batches of resamples.
    """
    y = np.asarray(y_true)
    if not preds_a or len(preds_a) != len(preds_b):
        raise ValueError(f"paired_diff: need the same positive number of prediction arrays per "
                         f"system, got {len(preds_a)} and {len(preds_b)}")
    for p in (*preds_a, *preds_b):
        if np.shape(p) != y.shape:
            raise ValueError(f"paired_diff: predictions of shape {np.shape(p)} do not match "
                             f"y_true {y.shape}; both systems must score the same test examples")

    def mean_metric(arrays: Mapping[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
        yy = arrays["y"][idx]
        per_seed = [np.asarray(metric(yy, arrays[f"p{i}"][idx], axis=-1), dtype=float)
                    for i in range(len(preds_a))]
        return np.mean(per_seed, axis=0)

    a = {"y": y, **{f"p{i}": np.asarray(p) for i, p in enumerate(preds_a)}}
    b = {"y": y, **{f"p{i}": np.asarray(p) for i, p in enumerate(preds_b)}}
    return paired_bootstrap(a, b, mean_metric, n_boot=n_boot, seed=seed)


def fidelity_errors(
    model: Any,
    split: Split,
    attention: Any,
    *,
    batch_size: int = 64,
    device: str = "cpu",
) -> np.ndarray:
    """Per example, the relative error ``||A(q,k,v) - S(q,k,v)|| / ||S(q,k,v)||`` of ``attention``
    against the model's own exact attention ``S``, on the q, k, v that reach each layer.

    Norms are Frobenius over layers, heads and real (non-padding) query positions.
    """
    errors: list[np.ndarray] = []
    attention = attention.to(device).eval()
    for start in range(0, len(split), batch_size):
        index = torch.arange(start, min(start + batch_size, len(split)))
        ids, mask, _ = make_batch(split, index, device, True)
        num = torch.zeros(len(index), dtype=torch.float64, device=device)
        den = torch.zeros_like(num)
        with torch.no_grad():
            inputs = model.attention_inputs(ids, mask)
            for layer, (q, k, v, kpm) in zip(model.layers, inputs, strict=True):
                exact = layer.attention.attn(q, k, v, key_padding_mask=kpm)
                approx = attention(q, k, v, key_padding_mask=kpm)
                keep = (torch.ones_like(exact[:, :1, :, :1]) if kpm is None
                        else kpm[:, None, :, None].to(exact.dtype))
                num += (((approx - exact) * keep).double() ** 2).sum(dim=(1, 2, 3))
                den += ((exact * keep).double() ** 2).sum(dim=(1, 2, 3))
        errors.append((num.sqrt() / den.sqrt().clamp_min(1e-30)).cpu().numpy())
    return np.concatenate(errors) if errors else np.zeros(0)


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads (unchanged when None), restoring the count afterwards."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------------ suite
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

    def _options(self, spec: AttentionSpec, entry: TaskEntry, params: AccuracyParams
                 ) -> dict[str, Any]:
        """Options that run: class defaults < suite overrides < task overrides < the spec's."""
        return {
            **spec.resolved_options,
            **params.attention_options.get(spec.name, {}),
            **entry.attention_options.get(spec.name, {}),
            **spec.options,
        }

    def __init__(self) -> None:
        self._weights: dict[str, float] = {}

    def plan(
        self, params: AccuracyParams, attentions: list[AttentionSpec], seeds: list[int]
    ) -> list[Cell]:
        cells = []
        for entry in params.all_tasks():
            weight = self._weight(entry, params.train_for(entry))
            for spec in attentions:
                options = self._options(spec, entry, params)
                for seed in seeds:
                    cell_params = {"task": entry.key, "seed": seed, "config": entry.config_hash()}
                    cell = Cell(self.name, spec.name, options, cell_params, spec.label)
                    self._weights[cell.id] = weight
                    cells.append(cell)
            if params.baseline and planned_model() is None:  # no ablation of a user's model
                for seed in seeds:
                    cell = Cell(self.name, BASELINE, {}, {"task": entry.key, "seed": seed,
                                "config": entry.config_hash(), "ablation": "no_token_mixing"},
                                BASELINE_LABEL)
                    self._weights[cell.id] = weight
                    cells.append(cell)
        if params.fidelity and seeds:
            cells.extend(self._plan_fidelity(params, attentions))
        return cells

    def _plan_fidelity(self, params: AccuracyParams, attentions: list[AttentionSpec]
                       ) -> list[Cell]:
        """One probe cell per task and softmax-approximating attention, run on the trained
        reference model of the first seed: ``fidelity_rel_error`` and ``swap_macro_f1``. It
        depends on the first seed's training cells of its task (``depends_on``); which of them
        is the reference is the run's (``ctx.reference``)."""
        cells = []
        for entry in params.all_tasks():
            seen: set[str] = set()
            for spec in attentions:
                options = self._options(spec, entry, params)
                if spec.label in seen or not _approximates_softmax(spec.name, options):
                    continue
                seen.add(spec.label)
                cell_params = {"task": entry.key, "config": entry.config_hash(),
                               "probe": "fidelity"}
                cell = Cell(self.name, spec.name, options, cell_params, spec.label)
                self._weights[cell.id] = 0.02 * self._weight(entry, params.train_for(entry))
                cells.append(cell)
        return cells

    def depends_on(self, cell: Cell, cells: list[Cell]) -> list[Cell]:
        """A fidelity probe needs the first seed's training cells of its task (the reference
        model among them)."""
        if cell.params.get("probe") != "fidelity":
            return []
        same = [c for c in cells if c.suite == self.name and "seed" in c.params
                and c.params["task"] == cell.params["task"]
                and c.params.get("config") == cell.params.get("config")]
        if not same:
            return []
        first = min(c.params["seed"] for c in same)
        return [c for c in same if c.params["seed"] == first]

    def skip_reason(self, cell: Cell, finished: list[Record]) -> str | None:
        if cell.params.get("probe") != "fidelity":
            return None
        if not any(r.metric == "macro_f1" and r.status == "ok" for r in finished):
            why = sorted({f"{r.status}: {r.error}" for r in finished if r.error})
            return (f"no trained model on {cell.params['task']}"
                    + (f" ({why[0]})" if why else ""))
        return None

    def cell_weight(self, cell: Cell) -> float:
        return self._weights.get(cell.id, 1.0)

    @staticmethod
    def _weight(entry: TaskEntry, train: TrainParams) -> float:
        """Expected cost ~ steps x batch x length (from the task's length parameters)."""
        length = entry.params.get("max_len") or entry.params.get("seq_len") or 64
        return train.steps * train.batch_size * float(length) / 1e5

    def run_cell(self, cell: Cell, params: AccuracyParams, ctx: RunContext) -> list[Record]:
        if cell.params.get("probe") == "fidelity":
            with _threads(params.threads):
                return self._run_fidelity(cell, params, ctx)
        with _threads(params.threads):
            records = self._run_cell(cell, params, ctx)
        entry = params.task(cell.params["task"])
        media = _is_media_from_run(entry, params)
        if _is_text_from_run(entry, params) and _has_run_data(ctx, media):
            # Runs on different datasets must not match in `harness compare`.
            label = ctx.data.media_label if media else ctx.data.label
            for r in records:
                r.params = {**r.params, "data": label}
        return records

    def _run_cell(self, cell: Cell, params: AccuracyParams, ctx: RunContext) -> list[Record]:
        entry = params.task(cell.params["task"])
        media = _is_media_from_run(entry, params)
        if _is_text_from_run(entry, params) and not _has_run_data(ctx, media):
            reason = ("no image/audio data: pass --data-dir PATH --data-format imagefolder|"
                      "audiofolder (or --dataset NAME --data-format ...) to run the media task"
                      if media else
                      "no text data: pass --data-files train=PATH,test=PATH or --dataset NAME "
                      "to run the text task")
            return [self.record(cell, "macro_f1", status="skipped", error=reason)]
        seed = int(cell.params["seed"])
        train = params.train_for(entry)
        ctx.progress(0.0, f"{cell.label} {entry.key}: loading data")
        from harness.data.base import TaskUnavailable

        try:
            task = load_cached(entry.name, _task_kwargs(entry, params, ctx), ctx.model)
        except TaskUnavailable as err:  # e.g. the speech task without espeak-ng
            return [self.record(cell, "macro_f1", status="skipped", error=str(err))]
        baseline = cell.attention == BASELINE
        spec = AttentionSpec("standard" if baseline else cell.attention, dict(cell.options),
                             cell.label)
        result = train_classifier(spec, task, train, seed=seed, device=ctx.device,
                                  progress=ctx.progress, token_mixing=not baseline)
        ctx.progress(1.0, f"{cell.label} {entry.key}: scoring on test")
        preds, probs = predict(result.model, task.test, batch_size=params.predict_batch_size,
                               device=ctx.device, trim_padding=train.trim_padding)
        y = task.test.labels.numpy()
        scores = score_predictions(y, preds, n_boot=params.n_boot, seed=seed)
        artifacts = ctx.artifacts
        (artifacts / f"{cell.id}.json").write_text(json.dumps({
            "suite": self.name, "task": entry.key, "seed": seed, "attention": cell.attention,
            "label": cell.label, "options": cell.options, "test_fingerprint":
            _split_fingerprint(task.test), "labels": y.tolist(), "predictions": preds.tolist(),
            "num_classes": task.num_classes, "best_step": result.best_step,
            "history": result.history, "task_summary": task.summary(),
        }, default=str))
        first_seed = seed not in ctx.seeds or seed == min(ctx.seeds)
        if params.fidelity and first_seed and _is_reference(cell, ctx):
            torch.save({k: v.cpu() for k, v in result.model.state_dict().items()},
                       artifacts / f"{cell.id}.pt")
        records = [
            self.record(cell, "macro_f1", **scores["macro_f1"].record_fields()),
            self.record(cell, "accuracy", **scores["accuracy"].record_fields()),
            self.record(cell, "val_macro_f1", value=result.best_val_score,
                        n=len(task.validation)),
            self.record(cell, "train_time_s", value=result.train_time_s, n=1),
            self.record(cell, "n_params", value=result.n_params, n=1),
            self.record(cell, "best_step", value=result.best_step, n=1),
        ]
        records += input_records(cell, task.info)
        score = probs[:, 1] if probs.shape[1] == 2 else probs.max(axis=1)
        save_predictions(ctx, cell, [PredictionSet("test", preds, score, texts=task.test.texts,
                                                   labels=y.tolist())], records)
        return records

    # ------------------------------------------------------------------------------ summary
    def summarize(
        self, records: list[Record], params: AccuracyParams, ctx: RunContext
    ) -> list[Record]:
        mine = [r for r in records if r.suite == self.name and r.status == "ok"
                and r.value is not None and "seed" in r.params]
        groups: dict[tuple[str, str], dict[str, list[Record]]] = {}
        for r in mine:
            groups.setdefault((str(r.params["task"]), r.label or r.attention), {}) \
                .setdefault(r.metric, []).append(r)
        out: list[Record] = []
        for (task_key, _label), by_metric in sorted(groups.items()):
            out.extend(self._means(task_key, by_metric))
        out.extend(self._comparisons(mine, params, ctx))
        return out

    def _summary_record(self, first: Record, task_key: str, metric: str, **kwargs: Any
                        ) -> Record:
        return self.record(first, metric,
                           params={"task": task_key, "config": first.params.get("config")},
                           **kwargs)

    def _means(self, task_key: str, by_metric: dict[str, list[Record]]) -> list[Record]:
        from harness.measure.stats import t_interval

        out = []
        for metric in ("macro_f1", "accuracy", "train_time_s"):
            rows = sorted(by_metric.get(metric, []), key=lambda r: r.params["seed"])
            if not rows:
                continue
            est = t_interval([r.value for r in rows])  # ci_method "t": Student-t over seeds
            out.append(self._summary_record(
                rows[0], task_key, f"{metric}_mean", **est.record_fields()))
        return out

    def _load_artifact(self, ctx: RunContext, cell_id: str | None) -> dict[str, Any] | None:
        if cell_id is None or ctx.run_dir is None:
            return None
        path = Path(ctx.run_dir) / "artifacts" / f"{cell_id}.json"
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def _paired(self, rows: list[Record], others: dict[tuple[str, Any], Record],
                n_boot: int, ctx: RunContext) -> PairedResult | None:
        """``rows``' macro-F1 minus their ``others`` (same task and seed) on the same test
        examples, averaged over seeds, from the cells' saved predictions."""
        ys, pa, pb, seeds = None, [], [], []
        for r in rows:
            other = others.get((str(r.params["task"]), r.params["seed"]))
            if other is None:
                continue
            mine_art = self._load_artifact(ctx, r.cell)
            other_art = self._load_artifact(ctx, other.cell)
            if mine_art is None or other_art is None or \
                    mine_art["test_fingerprint"] != other_art["test_fingerprint"]:
                continue
            ys = np.asarray(other_art["labels"])
            pa.append(np.asarray(mine_art["predictions"]))
            pb.append(np.asarray(other_art["predictions"]))
            seeds.append(r.params["seed"])
        if ys is None:
            return None
        return paired_diff(ys, pa, pb, n_boot=n_boot, seed=min(seeds))

    def _signal(self, task_key: str, refs: list[Record], params: AccuracyParams,
                ctx: RunContext) -> tuple[list[Record], str | None]:
        """``chance_macro_f1`` and ``task_signal`` of one task; the no-signal reason, if any.

        The task has signal when every seed's reference macro-F1 has its lower 95% bound above
        the chance level (:func:`chance_macro_f1` on the test labels).
        """
        art = next((a for a in (self._load_artifact(ctx, r.cell) for r in refs) if a), None)
        if not refs or art is None:
            return [], None
        first = refs[0]
        chance = chance_macro_f1(np.asarray(art["labels"]), n_boot=params.n_boot,
                                 seed=int(first.params["seed"]))
        out = [self._summary_record(first, task_key, "chance_macro_f1",
                                    **chance.record_fields())]
        lows = [r.ci_low for r in refs]
        assert chance.value is not None
        if any(low is None for low in lows):
            out.append(self._summary_record(
                first, task_key, "task_signal", status="skipped", n=len(refs),
                error="no interval on the reference's macro-F1 (n_boot < 2): signal unknown"))
            return out, None
        worst = min(low for low in lows if low is not None)
        has_signal = worst > chance.value
        reason = None if has_signal else (
            f"no_signal: the reference's macro-F1 lower 95% bound {worst:.3f} does not exceed"
            f" chance {chance.value:.3f} (majority class / uniform guess) on {task_key}; the"
            " task did not learn within its budget, so differences on it are not findings")
        out.append(self._summary_record(
            first, task_key, "task_signal", value=float(has_signal), n=len(refs),
            error=reason))
        return out, reason

    def _comparisons(self, mine: list[Record], params: AccuracyParams, ctx: RunContext
                     ) -> list[Record]:
        f1 = [r for r in mine if r.metric == "macro_f1"]
        refs = {(str(r.params["task"]), r.params["seed"]): r for r in f1
                if _is_reference(r, ctx)}
        bases = {(str(r.params["task"]), r.params["seed"]): r for r in f1
                 if r.attention == BASELINE}
        sizes = {(str(r.params["task"]), r.label): r.value for r in mine
                 if r.metric == "n_params"}
        ref_sizes = {str(r.params["task"]): r.value for r in mine
                     if r.metric == "n_params" and _is_reference(r, ctx)}
        by_group: dict[tuple[str, str], list[Record]] = {}
        for r in f1:
            by_group.setdefault((str(r.params["task"]), r.label or r.attention), []).append(r)
        out: list[Record] = []
        no_signal: dict[str, str | None] = {}
        for task_key in sorted({t for t, _ in refs}):
            task_refs = sorted((r for (t, _), r in refs.items() if t == task_key),
                               key=lambda r: r.params["seed"])
            records, no_signal[task_key] = self._signal(task_key, task_refs, params, ctx)
            out += records
        for (task_key, label), rows in sorted(by_group.items()):
            rows = sorted(rows, key=lambda r: r.params["seed"])
            first = rows[0]
            reason = no_signal.get(task_key)
            verdict: dict[str, Any] = {"status": "skipped", "error": reason} if reason else {}
            if first.attention != BASELINE and (task_key, first.params["seed"]) in bases:
                gain = self._paired(rows, bases, params.n_boot, ctx)
                if gain is not None:
                    out.append(self._summary_record(
                        first, task_key, "macro_f1_gain_vs_no_attention",
                        **{**gain.difference.record_fields(), **verdict}))
            if _is_reference(first, ctx):
                continue
            if task_key in ref_sizes and (task_key, label) in sizes:
                out.append(self._summary_record(
                    first, task_key, "n_params_ratio_vs_reference",
                    value=sizes[(task_key, label)] / ref_sizes[task_key], n=1))
            diff = self._paired(rows, refs, params.n_boot, ctx)
            if diff is None:
                continue
            out.append(self._summary_record(
                first, task_key, "macro_f1_diff_vs_reference",
                **{**diff.difference.record_fields(), **verdict}))
            p_error = None if diff.p_value is not None else "n_boot < 2: no test"
            out.append(self._summary_record(
                first, task_key, "paired_p_value", value=diff.p_value,
                n=diff.difference.n, **(verdict or {"error": p_error})))
        return out

    def _run_fidelity(self, cell: Cell, params: AccuracyParams, ctx: RunContext
                      ) -> list[Record]:
        """The fidelity probe cell: the reference model (its checkpoint from the dependency's
        artifacts) with this attention swapped in, on the same q, k, v and test examples."""
        from harness.attention import get_attention

        task_key = str(cell.params["task"])
        ref_id, ref = next(((cid, r) for cid, rows in ctx.inputs.items() for r in rows
                            if r.metric == "macro_f1" and r.status == "ok"
                            and _is_reference(r, ctx)), (None, None))
        if ref is None:
            reason = (f"no reference model on {task_key}: the run's reference "
                      f"({ctx.reference}) has no trained first-seed model on it")
            return [Record.for_cell(cell, "cell_status", status="skipped", error=reason)]
        ckpt = ctx.artifacts / f"{ref_id}.pt"
        if not ckpt.is_file():
            raise RuntimeError(f"fidelity on {task_key}: reference checkpoint {ckpt} not found")
        entry = params.task(task_key)
        ctx.progress(0.0, f"fidelity {cell.label} on {task_key}: loading data")
        task = load_cached(entry.name, _task_kwargs(entry, params, ctx), ctx.model)
        spec = AttentionSpec(ref.attention, dict(ref.options), ref.label or "")
        train = params.train_for(entry)
        model = build_for_task(spec, task, train, seed=int(ref.params["seed"]))
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        model.to(ctx.device).eval()
        test = task.test
        if len(test) > params.fidelity_max_examples:
            test = test.subset(range(params.fidelity_max_examples))
        y = task.test.labels.numpy()
        ctx.progress(0.2, f"fidelity {cell.label} on {task_key}")
        attn = get_attention(cell.attention, **cell.options)
        errors = fidelity_errors(model, test, attn, batch_size=params.predict_batch_size,
                                 device=ctx.device)
        est = bootstrap_ci(errors, np.mean, n_boot=params.n_boot, vectorized=True)
        ctx.progress(0.6, f"swap {cell.label} on {task_key}")
        model.set_attention(cell.attention, **cell.options)
        preds, _ = predict(model, task.test, batch_size=params.predict_batch_size,
                           device=ctx.device, trim_padding=train.trim_padding)
        scores = score_predictions(y, preds, n_boot=params.n_boot)
        ctx.progress(1.0, f"fidelity {cell.label} on {task_key}: done")
        # the same identity as the other per-task summaries (no seed)
        where = {"task": task_key, "config": cell.params.get("config")}
        return [
            self.record(cell, "fidelity_rel_error", params=where, **est.record_fields()),
            self.record(cell, "swap_macro_f1", params=where, **scores["macro_f1"].record_fields()),
        ]
