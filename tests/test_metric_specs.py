"""Metrics declared once: records built from the suite's MetricSpec, and old runs' metric names."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import build_run

from harness.gate import compare_runs
from harness.records import Cell
from harness.report.html import write_report
from harness.run.store import read_records, read_run, upgrade_run
from harness.suites import get_suite
from harness.suites.bias import BIAS_METRICS

#: A run written by the harness before ``*_vs_standard`` became ``*_vs_reference`` (the
#: synthetic writer of tests/report_fixtures.py at that version: accuracy and bias, standard and
#: linear, listops, seeds 0 and 1, bias seed 0).
OLD_RUN = Path(__file__).parent / "fixtures" / "old_metric_names"


def _new_run(path: Path) -> Path:
    return build_run(path, suites=("accuracy", "bias"), attentions=("standard", "linear"),
                     seeds=(0, 1), bias_seeds=(0,), tasks=("listops",),
                     run_id="20250314-093000-newnam")


def _cell(suite: str = "memory") -> Cell:
    return Cell(suite, "standard", {"backend": "eager"}, {"seq_len": 256}, "standard[eager]")


def test_record_takes_unit_and_direction_from_the_spec() -> None:
    suite = get_suite("memory")
    r = suite.record(_cell(), "peak_bytes", value=1024.0, n=1)
    assert (r.suite, r.metric, r.unit, r.higher_is_better) == ("memory", "peak_bytes", "bytes",
                                                               False)
    assert (r.attention, r.label, r.params, r.value) == ("standard", "standard[eager]",
                                                         {"seq_len": 256}, 1024.0)
    fit = suite.record(r, "memory_exponent", params={"mode": "forward"}, value=1.9)
    assert (fit.unit, fit.higher_is_better, fit.params, fit.label, fit.options) == (
        "exponent", False, {"mode": "forward"}, "standard[eager]", {"backend": "eager"})
    claim = suite.record(r, "claimed_exponent", params={"mode": "forward"}, value=2.0)
    assert (claim.unit, claim.higher_is_better) == ("exponent", None)


def test_an_undeclared_metric_is_an_error_naming_suite_and_metric() -> None:
    with pytest.raises(ValueError, match="suite 'memory' does not declare a metric 'peak_mb'"):
        get_suite("memory").record(_cell(), "peak_mb", value=1.0)
    with pytest.raises(ValueError, match="suite 'bias' does not declare a metric 'forward_ms'"):
        get_suite("bias").record(_cell("bias"), "forward_ms", value=1.0)


@pytest.mark.parametrize("field", ["unit", "higher_is_better"])
def test_a_call_site_may_not_retype_unit_or_direction(field: str) -> None:
    with pytest.raises(TypeError, match=f"{field} come from the metric's MetricSpec"):
        get_suite("memory").record(_cell(), "peak_bytes", value=1.0, **{field: None})


def test_a_per_group_rate_has_no_direction() -> None:
    bias = get_suite("bias")
    overall = bias.record(_cell("bias"), "accuracy", value=0.9)
    group = bias.record(_cell("bias"), "accuracy", value=0.9, per_group=True)
    assert (overall.unit, overall.higher_is_better) == ("fraction", True)
    assert (group.unit, group.higher_is_better) == ("fraction", None)


def test_bias_compares_the_metrics_its_specs_flag() -> None:
    bias = get_suite("bias")
    compared = [m for m in bias.metrics if m.compared]
    assert {m.name for m in compared} == {
        "demographic_parity_difference", "demographic_parity_ratio",
        "equalized_odds_difference", "bias_amplification", "flip_rate", "score_gap"}
    assert {m.name: m.higher_is_better for m in compared} == BIAS_METRICS
    for m in compared:  # each has its declared difference, in its unit and direction
        diff = bias.metric_spec(f"{m.name}_diff_vs_reference")
        assert (diff.unit, diff.higher_is_better, diff.summary) == (m.unit, m.higher_is_better,
                                                                    True)
    assert not any(m.name.endswith("_vs_standard") for name in ("accuracy", "bias")
                   for m in get_suite(name).metrics)


def test_the_migrator_renames_old_metric_names_when_a_run_is_read() -> None:
    raw = read_records(OLD_RUN)
    old = {r.metric for r in raw if r.metric.endswith("_vs_standard")}
    assert {"macro_f1_diff_vs_standard", "n_params_ratio_vs_standard",
            "demographic_parity_difference_diff_vs_standard"} <= old  # the fixture is old
    meta, records = upgrade_run(read_run(OLD_RUN), raw)
    assert len(records) == len(raw)
    assert {r.metric for r in records} == {r.metric.replace("_vs_standard", "_vs_reference")
                                           for r in raw}
    declared = {m["name"] for s in meta["suites_meta"].values() for m in s["metrics"]}
    assert "macro_f1_diff_vs_reference" in declared
    assert not any(n.endswith("_vs_standard") for n in declared)
    assert "_vs_standard" in (OLD_RUN / "results.jsonl").read_text()  # the file is unchanged


def test_compare_matches_an_old_run_and_a_new_one_record_for_record(tmp_path: Path) -> None:
    new = _new_run(tmp_path / "new")
    cmp = compare_runs(OLD_RUN, new)
    assert cmp.counts["new"] == cmp.counts["vanished"] == 0
    assert cmp.exit_code == 0 and all(r.diff in (None, 0.0) for r in cmp.rows)
    metrics = {r.metric for r in cmp.rows}
    assert {"macro_f1_diff_vs_reference", "n_params_ratio_vs_reference",
            "score_gap_diff_vs_reference"} <= metrics
    assert len(cmp.rows) == len(read_records(new))


def test_the_report_of_an_old_run_shows_its_comparisons(tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(OLD_RUN, old)
    html = write_report(old).read_text(encoding="utf-8")
    assert "macro_f1_diff_vs_reference" in html and "_vs_standard" not in html


def test_throughput_helpers_take_unit_and_direction_from_the_spec() -> None:
    from harness.measure.timing import time_interleaved
    from harness.suites.throughput import _metric, _rate

    cell = _cell("throughput")
    timing = time_interleaved({"measured": lambda: None}, min_run_time=0.001, min_rounds=2)
    ms, rate = _metric(cell, "forward_ms", timing, 1e3), _rate(cell, "forward_tokens_per_s",
                                                              timing, 1.0)
    assert (ms.unit, ms.higher_is_better) == ("ms", False)
    assert (rate.unit, rate.higher_is_better) == ("tokens/s", True)
    with pytest.raises(ValueError, match="does not declare a metric 'forward_seconds'"):
        _metric(cell, "forward_seconds", timing, 1.0)
