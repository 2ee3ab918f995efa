"""The accuracy suite's plan: training cells (attention x task x seed), the no-attention baseline
rows, the fidelity probe cells and what they depend on, and each cell's expected cost."""

from __future__ import annotations

from typing import Any

from harness.records import Cell, Record
from harness.suites.accuracy.params import BASELINE, BASELINE_LABEL, AccuracyParams, TaskEntry
from harness.suites.base import AttentionSpec, planned_model, resolve_options
from harness.suites.training import TrainParams

__all__ = ["depends_on", "plan_cells", "skip_reason"]


def _options(spec: AttentionSpec, entry: TaskEntry, params: AccuracyParams) -> dict[str, Any]:
    """Options that run: class defaults < suite overrides < task overrides < the spec's."""
    return resolve_options(spec, params.attention_options, entry.attention_options)


def _approximates_softmax(attention: str, options: dict[str, Any]) -> bool:
    """Whether ``attention`` with ``options`` approximates exact softmax attention (so fidelity
    figures mean something for it)."""
    from harness.attention import attention_class

    if attention in ("standard", BASELINE):
        return False
    if attention == "linear":
        return options.get("feature_map") == "favor"
    return bool(attention_class(attention).capabilities.approximates_softmax)


def _weight(entry: TaskEntry, train: TrainParams) -> float:
    """Expected cost ~ steps x batch x length (from the task's length parameters)."""
    length = entry.params.get("max_len") or entry.params.get("seq_len") or 64
    return train.steps * train.batch_size * float(length) / 1e5


def plan_cells(suite: str, params: AccuracyParams, attentions: list[AttentionSpec],
               seeds: list[int], weights: dict[str, float]) -> list[Cell]:
    """The cells of ``suite`` in order; each cell's expected cost goes into ``weights``."""
    cells = []
    for entry in params.all_tasks():
        weight = _weight(entry, params.train_for(entry))
        for spec in attentions:
            options = _options(spec, entry, params)
            for seed in seeds:
                cell_params = {"task": entry.key, "seed": seed, "config": entry.config_hash()}
                cell = Cell(suite, spec.name, options, cell_params, spec.label)
                weights[cell.id] = weight
                cells.append(cell)
        if params.baseline and planned_model() is None:  # no ablation of a user's model
            for seed in seeds:
                cell = Cell(suite, BASELINE, {}, {"task": entry.key, "seed": seed,
                            "config": entry.config_hash(), "ablation": "no_token_mixing"},
                            BASELINE_LABEL)
                weights[cell.id] = weight
                cells.append(cell)
    if params.fidelity and seeds:
        cells.extend(_fidelity_cells(suite, params, attentions, weights))
    return cells


def _fidelity_cells(suite: str, params: AccuracyParams, attentions: list[AttentionSpec],
                    weights: dict[str, float]) -> list[Cell]:
    """One probe cell per task and softmax-approximating attention, run on the trained
    reference model of the first seed: ``fidelity_rel_error`` and ``swap_macro_f1``. It
    depends on the first seed's training cells of its task (:func:`depends_on`); which of them
    is the reference is the run's (``ctx.reference``)."""
    cells = []
    for entry in params.all_tasks():
        seen: set[str] = set()
        for spec in attentions:
            options = _options(spec, entry, params)
            if spec.label in seen or not _approximates_softmax(spec.name, options):
                continue
            seen.add(spec.label)
            cell_params = {"task": entry.key, "config": entry.config_hash(),
                           "probe": "fidelity"}
            cell = Cell(suite, spec.name, options, cell_params, spec.label)
            weights[cell.id] = 0.02 * _weight(entry, params.train_for(entry))
            cells.append(cell)
    return cells


def depends_on(cell: Cell, cells: list[Cell]) -> list[Cell]:
    """A fidelity probe needs the first seed's training cells of its task (the reference
    model among them)."""
    if cell.params.get("probe") != "fidelity":
        return []
    same = [c for c in cells if c.suite == cell.suite and "seed" in c.params
            and c.params["task"] == cell.params["task"]
            and c.params.get("config") == cell.params.get("config")]
    if not same:
        return []
    first = min(c.params["seed"] for c in same)
    return [c for c in same if c.params["seed"] == first]


def skip_reason(cell: Cell, finished: list[Record]) -> str | None:
    """Why a fidelity probe does not run: no trained model on its task."""
    if cell.params.get("probe") != "fidelity":
        return None
    if not any(r.metric == "macro_f1" and r.status == "ok" for r in finished):
        why = sorted({f"{r.status}: {r.error}" for r in finished if r.error})
        return (f"no trained model on {cell.params['task']}"
                + (f" ({why[0]})" if why else ""))
    return None
