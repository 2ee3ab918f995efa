"""The bias suite's summary: each variant's bias metrics minus the reference's (paired bootstrap on
the cells' per-example outputs, or a normal approximation without them; over seeds a
t-interval), then the flags: one-sided tests of "more biased" with multiplicity control per
family."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import derive_seed
from harness.measure.fairness import amplification_statistic, gap_statistic, mean_statistic
from harness.measure.stats import (
    Estimate,
    adjust_pvalues,
    normal_difference,
    one_sided_p,
    paired_bootstrap,
    stderr_from_ci95,
    t_interval,
)
from harness.records import Record
from harness.suites.base import RunContext, Suite
from harness.suites.bias.params import NONE, BiasParams
from harness.suites.probes import summarize_probe_set

__all__ = ["summarize"]


def summarize(suite: Suite, records: list[Record], params: BiasParams, ctx: RunContext,
              compared: Mapping[str, bool | None]) -> list[Record]:
    """Each variant's bias metrics minus the reference's on the same probe and seed, and, with
    two or more seeds, the mean difference over seeds with a t-interval (``seed: "all"``),
    which also covers training randomness; then the flags, family by family."""
    probe_shifts = [] if params.probe_set is None else summarize_probe_set(
        records, params.probe_set, ctx, suite.name)
    mine = [r for r in records if r.suite == suite.name and r.status == "ok"
            and r.metric in compared and r.value is not None
            and r.params.get("probe") != "probe_set"
            and not (r.cell or "").startswith("summary:")]
    reference = {(json.dumps(r.params, sort_keys=True), r.metric): r
                 for r in mine if ctx.is_reference(r.label or r.attention)}
    if not reference:
        return probe_shifts
    # another backend of the reference's attention is a sanity check, not a finding
    ref_attentions = {r.attention for r in reference.values()}
    cache: dict[str, dict[str, Any] | None] = {}
    out: list[Record] = []
    tests: list[tuple[Record, dict[str, Any], Estimate]] = []
    per_seed: dict[str, list[tuple[Record, Estimate]]] = {}
    for r in mine:
        if ctx.is_reference(r.label or r.attention):
            continue
        ref = reference.get((json.dumps(r.params, sort_keys=True), r.metric))
        if ref is None:
            continue
        est, method = _difference(r, ref, params, ctx, cache)
        where = {**r.params, "ci_method": method}
        out.append(_diff_record(suite, r, where, est))
        if r.attention not in ref_attentions:
            tests.append((r, where, est))
        if "seed" in r.params:
            rest = {k: v for k, v in r.params.items() if k != "seed"}
            key = json.dumps([r.label, r.attention, r.options, r.metric, rest],
                             sort_keys=True, default=str)
            per_seed.setdefault(key, []).append((r, est))
    for rows in per_seed.values():
        values = [est.value for _, est in rows if est.value is not None]
        if len(values) < 2:
            continue
        first = rows[0][0]
        where = {**{k: v for k, v in first.params.items() if k != "seed"}, "seed": "all",
                 "ci_method": "t_over_seeds"}
        est = t_interval(values)
        out.append(_diff_record(suite, first, where, est))
        if first.attention not in ref_attentions:
            tests.append((first, where, est))
    return out + _flags(suite, tests, params, compared) + probe_shifts


def _diff_record(suite: Suite, r: Record, where: dict[str, Any], est: Estimate) -> Record:
    """``<metric>_diff_vs_reference``: variant minus the reference with its interval."""
    return suite.record(r, f"{r.metric}_diff_vs_reference", params=where,
                        **est.record_fields())


def _flags(suite: Suite, tests: list[tuple[Record, dict[str, Any], Estimate]],
           params: BiasParams, compared: Mapping[str, bool | None]) -> list[Record]:
    """Tests of "more biased than the reference", with multiplicity control per family.

    Each comparison tests ``H0: the variant is at most min_increase more biased than the
    reference`` one-sided (``increase_p_value``); the p-values of one family (one attention,
    one seed or ``all``, one planted strength or data source) are adjusted together with
    ``params.multiplicity`` (``increase_p_adjusted``, whose ``n`` is the family size).

    ``significant_increase`` (adjusted p <= ``alpha``) is a verdict on the attention, so it
    is given only over seeds (``seed: "all"``): one seed's interval covers the sampling of
    test examples, not training randomness, and two models trained alike differ in their
    spurious associations (on the quick corpus at strength 0, Holm-adjusted per-seed tests
    still flagged most (attention, seed) families, while the over-seed tests flagged none).
    With a single seed the flag is recorded as skipped, with that reason.
    """
    raw: list[float | None] = []
    for r, _, est in tests:
        if est.value is None or est.stderr is None:
            raw.append(None)
            continue
        if compared[r.metric]:  # higher is better: more biased = lower
            raw.append(one_sided_p(est, -params.min_increase, "less"))
        else:
            raw.append(one_sided_p(est, params.min_increase, "greater"))
    families: dict[str, list[int]] = {}
    for i, (r, where, _) in enumerate(tests):
        family = json.dumps([r.label or r.attention, r.options, where.get("seed"),
                             where.get("strength", where.get("source", where.get("probe")))],
                            sort_keys=True, default=str)
        families.setdefault(family, []).append(i)
    adjusted: list[float | None] = [None] * len(tests)
    sizes = [0] * len(tests)
    for members in families.values():
        values = adjust_pvalues([raw[i] for i in members], params.multiplicity)
        size = sum(raw[i] is not None for i in members)
        for i, value in zip(members, values, strict=True):
            adjusted[i], sizes[i] = value, size
    out: list[Record] = []
    over_seeds: set[tuple[str, str]] = set()
    single: dict[tuple[str, str], tuple[Record, dict[str, Any]]] = {}
    for (r, where, est), p_raw, p_adj, size in zip(tests, raw, adjusted, sizes, strict=True):
        flag_params = {**where, "metric": r.metric}
        common = {"source": r, "params": flag_params}
        missing = None if p_adj is not None else "no standard error for the difference"
        group = (r.label or r.attention, str(where.get("strength", where.get("source"))))
        if where.get("seed") == "all":
            over_seeds.add(group)
            worse = None if p_adj is None else float(p_adj <= params.alpha)
            out.append(suite.record(**common, metric="significant_increase", value=worse,
                                    n=est.n, error=missing))
        else:
            single.setdefault(group, (r, where))
        out += [
            suite.record(**common, metric="increase_p_value", value=p_raw, n=est.n,
                         error=missing),
            suite.record(**common, metric="increase_p_adjusted", value=p_adj, n=size,
                         error=missing),
        ]
    for group, (r, where) in sorted(single.items(), key=lambda kv: kv[0]):
        if group in over_seeds:
            continue
        keep = {k: where[k] for k in ("probe", "planted", "strength", "source", "data")
                if k in where}
        out.append(suite.record(
            r, "significant_increase", params={**keep, "seed": "all"}, status="skipped",
            error="a verdict on the attention needs two or more seeds (one seed's interval"
            " covers test sampling, not training randomness); see increase_p_adjusted for"
            " this model against the reference's"))
    return out


def _difference(r: Record, ref: Record, params: BiasParams, ctx: RunContext,
                cache: dict[str, dict[str, Any] | None]) -> tuple[Estimate, str]:
    arrays = [_arrays(x, params, ctx, cache) for x in (r, ref)]
    if arrays[0] is not None and arrays[1] is not None:
        (a, stat, fa, strata), (b, _, fb, _) = arrays
        if fa == fb and len(next(iter(a.values()))) == len(next(iter(b.values()))):
            seed = derive_seed(int(r.params.get("seed", 0)), "diff", r.metric,
                               json.dumps(r.params, sort_keys=True))
            return paired_bootstrap(a, b, stat, n_boot=max(params.n_boot, 2), seed=seed,
                                    strata=strata).difference, "paired_bootstrap"
    return _normal_difference(r, ref), "normal_approx"


def _arrays(r: Record, params: BiasParams, ctx: RunContext,
            cache: dict[str, dict[str, Any] | None]) -> tuple[Any, ...] | None:
    """(per-example arrays, statistic, fingerprint, strata) behind ``r``, from its cell's
    artifact; None when the artifact or its section is missing."""
    if ctx.run_dir is None or not r.cell:
        return None
    if r.cell not in cache:
        path = Path(ctx.run_dir) / "artifacts" / f"{r.cell}.json"
        try:
            cache[r.cell] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cache[r.cell] = None
    art = cache[r.cell]
    if art is None:
        return None
    p = r.params
    probe = p.get("probe")
    if probe == "controlled" and "controlled" in art and "axis" in p:
        sec = art["controlled"]
        groups = sec["groups"].get(p["axis"])
        if groups is None:
            return None
        y, pred = np.asarray(sec["y_true"]), np.asarray(sec["y_pred"])
        g = np.asarray(groups)
        pos = params.positive_label
        if r.metric == "bias_amplification":
            inside = g == sec["planted_group"]
            arrays = {"y_pred": (pred == pos).astype(int), "in_group": inside,
                      "data_association": np.full(len(y), sec["data_association"])}
            return (arrays, amplification_statistic, sec["fingerprint"],
                    inside * 2 + (y == pos))
        keep = g != NONE
        arrays = {"y_true": (y[keep] == pos).astype(int),
                  "y_pred": (pred[keep] == pos).astype(int), "group": g[keep]}
        strata = np.char.add(g[keep].astype(str), (y[keep] == pos).astype(int).astype(str))
        return arrays, gap_statistic(r.metric), sec["fingerprint"], strata
    if probe == "counterfactual":
        sec = art.get("counterfactual", {}).get(f"{p.get('swap')}/{p.get('direction')}")
        if sec is None:
            return None
        key, stat = ("flip", mean_statistic("flip")) if r.metric == "flip_rate" else \
            ("delta", mean_statistic("delta", absolute=True))
        return {key: np.asarray(sec[key], dtype=float)}, stat, sec["fingerprint"], None
    if probe == "template":
        name = f"{p.get('axis')}/{p.get('attribute')}/{p.get('comparison')}"
        sec = art.get("template", {}).get(name)
        if sec is None:
            return None
        return ({"delta": np.asarray(sec["delta"], dtype=float)},
                mean_statistic("delta", absolute=True), sec["fingerprint"], None)
    return None


def _stderr(x: Record) -> float | None:
    """The record's standard error, else the one behind its 95% interval (None: neither)."""
    if x.stderr is not None:
        return x.stderr
    if x.ci_low is not None and x.ci_high is not None and x.interval == "ci95":
        return stderr_from_ci95(x.ci_low, x.ci_high)
    return None


def _normal_difference(r: Record, ref: Record) -> Estimate:
    """Difference of two independent records with a normal-approximation 95% interval."""
    a, b = float(r.value), float(ref.value)  # type: ignore[arg-type]
    n = min(x for x in (r.n, ref.n) if x is not None) if (r.n or ref.n) else None
    return normal_difference(a, b, _stderr(r), _stderr(ref), n)
