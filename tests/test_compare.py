"""Run comparison: matching, the regression rule, verdicts, unusable input, table and HTML."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest
from report_fixtures import build_run
from rich.console import Console
from rich.table import Table

from harness.gate import (
    CompareRow,
    compare_records,
    compare_runs,
    render_compare_table,
    write_compare_html,
)
from harness.records import Cell
from harness.run.store import Record, StoreError

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.mktemp("cmp") / "base", seed=0)


def _scale(label: str, metric: str, seq_len: int, factor: float, widen: float = 1.0):
    """A transform multiplying one throughput cell's metric (and its IQR, optionally widened)."""
    def transform(r: Record) -> Record:
        if r.label == label and r.metric == metric and r.params.get("seq_len") == seq_len:
            mid = r.value * factor  # type: ignore[operator]
            r.ci_low = mid - (r.value - r.ci_low) * factor * widen  # type: ignore[operator]
            r.ci_high = mid + (r.ci_high - r.value) * factor * widen  # type: ignore[operator]
            r.value = mid
        return r
    return transform


def _row(cmp, label: str, metric: str, **params):
    return next(r for r in cmp.rows if r.label == label and r.metric == metric
                and all(r.params.get(k) == v for k, v in params.items()))


def test_identical_runs_pass(base: Path, tmp_path: Path) -> None:
    same = build_run(tmp_path / "same", seed=0)
    cmp = compare_runs(base, same)
    assert cmp.verdict == "pass" and cmp.exit_code == 0
    counts = cmp.counts
    assert counts["regression"] == counts["improvement"] == counts["new"] == \
        counts["vanished"] == 0
    assert counts["unchanged"] + counts["informational"] == len(cmp.rows) > 500
    assert all(r.diff in (None, 0.0) for r in cmp.rows)
    assert cmp.warnings == []


def test_rerun_noise_is_not_a_regression(base: Path, tmp_path: Path) -> None:
    cmp = compare_runs(base, build_run(tmp_path / "noisy", seed=1))
    assert cmp.exit_code == 0, [(r.label, r.metric, r.params) for r in cmp.regressions]
    assert any(r.diff not in (None, 0.0) for r in cmp.rows)  # values did move


def test_planted_regression_beyond_noise_fails(base: Path, tmp_path: Path) -> None:
    new = build_run(tmp_path / "slow", seed=0,
                    transform=_scale("linear[favor]", "forward_ms", 4096, 1.5))
    cmp = compare_runs(base, new)
    assert cmp.verdict == "fail" and cmp.exit_code == 1
    assert len(cmp.regressions) == 1
    row = cmp.regressions[0]
    assert (row.suite, row.label, row.metric, row.params) == (
        "throughput", "linear[favor]", "forward_ms", {"kind": "attention", "seq_len": 4096,
                                                      "batch": 4})
    assert row.rel_change == pytest.approx(0.5)
    assert row.noise == "iqr disjoint" and row.worse is True


def test_improvement_does_not_fail(base: Path, tmp_path: Path) -> None:
    new = build_run(tmp_path / "fast", seed=0,
                    transform=_scale("sparse[block]", "forward_ms", 2048, 0.6))
    cmp = compare_runs(base, new)
    assert cmp.exit_code == 0
    row = _row(cmp, "sparse[block]", "forward_ms", seq_len=2048)
    assert row.status == "improvement" and row.rel_change == pytest.approx(-0.4)


def test_change_within_noise_passes(base: Path, tmp_path: Path) -> None:
    # 15% slower but the IQRs are wide enough to overlap: within noise
    new = build_run(tmp_path / "wide", seed=0,
                    transform=_scale("linear[favor]", "forward_ms", 4096, 1.15, widen=8.0))
    cmp = compare_runs(base, new)
    assert cmp.exit_code == 0
    row = _row(cmp, "linear[favor]", "forward_ms", seq_len=4096)
    assert row.status == "unchanged" and row.note == "within noise"
    assert row.rel_change == pytest.approx(0.15)
    # 5% slower and beyond noise: below the 10% threshold
    new = build_run(tmp_path / "small", seed=0,
                    transform=_scale("linear[favor]", "forward_ms", 4096, 1.05, widen=0.1))
    row = _row(compare_runs(base, new), "linear[favor]", "forward_ms", seq_len=4096)
    assert row.status == "unchanged" and row.note == "below threshold"
    # ...which a 1% threshold catches
    assert compare_runs(base, new, threshold=0.01).exit_code == 1


def test_new_and_vanished_cells_are_listed(base: Path, tmp_path: Path) -> None:
    def drop(r: Record) -> Record | None:
        return None if r.suite == "memory" and r.params.get("seq_len") == 256 \
            and r.label == "sparse[block]" else r

    attentions = ("standard[sdpa]", "standard[eager]", "sparse[block]", "lsh[reformer]",
                  "linear[favor]", "linear[relu]")
    new = build_run(tmp_path / "more", seed=0, suites=("throughput", "memory"),
                    attentions=attentions, transform=drop)
    cmp = compare_runs(base, new)
    added = cmp.by_status("new")
    assert added and {r.label for r in added} == {"linear[relu]"}
    gone = cmp.by_status("vanished")
    assert {(r.suite, r.label) for r in gone if r.suite == "memory"} == {("memory",
                                                                          "sparse[block]")}
    assert {r.suite for r in gone} == {"memory", "accuracy", "bias"}  # suites not run: vanished
    assert all(r.note.startswith("only in the") for r in added + gone)
    # cells measured in the base run and missing now fail the gate, unless allowed
    assert cmp.exit_code == 1 and cmp.verdict == "fail" and not cmp.regressions
    assert cmp.failing_vanished and all(r in gone for r in cmp.failing_vanished)
    allowed = compare_runs(base, new, allow_missing=True)
    assert allowed.exit_code == 0 and allowed.counts["vanished"] == len(gone)
    common = compare_runs(base, new, only_common=True)
    assert common.exit_code == 0 and not common.by_status("vanished")
    assert not common.by_status("new")
    assert common.left_out == {"only in base": len(gone), "only in new": len(added)}


def test_status_changes(base: Path, tmp_path: Path) -> None:
    def oom(r: Record) -> Record:
        if r.suite == "memory" and r.label == "linear[favor]" and r.params.get("seq_len") == 8192:
            r.status, r.value, r.error = "oom", None, "CUDA out of memory"
        return r

    cmp = compare_runs(base, build_run(tmp_path / "oom", seed=0, transform=oom))
    assert cmp.exit_code == 1
    assert {(r.metric, r.params["mode"]) for r in cmp.regressions} == {
        ("peak_bytes", "forward"), ("peak_bytes", "fwd_bwd")}
    assert cmp.regressions[0].note == "ok -> oom: CUDA out of memory"
    back = compare_runs(tmp_path / "oom", base)
    assert {r.status for r in back.rows if r.metric == "peak_bytes"
            and r.label == "linear[favor]" and r.params["seq_len"] == 8192} == {"improvement"}


def _rec(value, status="ok", hib=True, **kw) -> Record:
    return Record("throughput", "standard", {"backend": "sdpa"}, {"seq_len": 256}, "m",
                  value=value, higher_is_better=hib, status=status, **kw)


@pytest.mark.parametrize(("base", "new", "status"), [
    # intervals: disjoint -> counts; overlapping -> within noise
    (_rec(100, ci_low=95, ci_high=105, interval="ci95"),
     _rec(80, ci_low=75, ci_high=85, interval="ci95"), "regression"),
    (_rec(100, ci_low=80, ci_high=120, interval="ci95"),
     _rec(80, ci_low=70, ci_high=90, interval="ci95"), "unchanged"),
    # stderrs only: |diff| = 20 vs 2*sqrt(5^2+5^2) = 14.1 -> counts; with se 8 (22.6) -> noise
    (_rec(100, stderr=5), _rec(80, stderr=5), "regression"),
    (_rec(100, stderr=8), _rec(80, stderr=8), "unchanged"),
    (_rec(100, stderr=8), _rec(80), "regression"),  # a missing stderr counts as 0
    # no uncertainty at all: threshold alone
    (_rec(100), _rec(89), "regression"),
    (_rec(100), _rec(91), "unchanged"),
    (_rec(100, hib=False), _rec(89, hib=False), "improvement"),
    # near zero: absolute rule with atol 0.1 -> needs |diff| > 0.01
    (_rec(0.001, hib=False), _rec(0.009, hib=False), "unchanged"),
    (_rec(0.001, hib=False), _rec(0.02, hib=False), "regression"),
    (_rec(-0.02, hib=False), _rec(0.0, hib=False), "regression"),
    # statuses
    (_rec(100), _rec(None, status="error", error="boom"), "regression"),
    (_rec(100), _rec(None, status="oom"), "regression"),
    (_rec(None, status="error"), _rec(100), "improvement"),
    (_rec(None, status="oom"), _rec(None, status="error"), "unchanged"),
    (_rec(100), _rec(None, status="skipped"), "vanished"),
    (_rec(None, status="skipped"), _rec(100), "new"),
    # no direction, or a direction that changed: informational, whatever the change
    (_rec(100, hib=None), _rec(10, hib=None), "informational"),
    (_rec(100, hib=None), _rec(None, status="error", hib=None), "informational"),
    (_rec(100, hib=True), _rec(10, hib=False), "informational"),
])
def test_classification_rules(base: Record, new: Record, status: str) -> None:
    rows, _ = compare_records([base], [new], threshold=0.1)
    assert len(rows) == 1 and rows[0].status == status, rows[0]


def test_classification_reports_change_and_noise() -> None:
    rows, _ = compare_records([_rec(100, stderr=5)], [_rec(80, stderr=5)])
    row = rows[0]
    assert row.diff == -20 and row.rel_change == pytest.approx(-0.2) and row.worse
    assert row.noise.startswith("|diff| > 2·se")
    rows, warnings = compare_records([_rec(1), _rec(2)], [])
    assert [r.status for r in rows] == ["vanished"] and "duplicate" in warnings[0]


def test_bad_threshold() -> None:
    for bad in (-0.1, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="threshold must be a finite number"):
            compare_records([], [], threshold=bad)  # type: ignore[arg-type]


def test_unusable_input_raises_store_error(base: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such directory"):
        compare_runs(tmp_path / "nope", base)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreError, match=r"run\.json: not found"):
        compare_runs(base, empty)
    runs = {}
    for name in ("corrupt_meta", "schema", "corrupt_line", "no_results"):
        runs[name] = build_run(tmp_path / name, suites=("throughput",), seq_lens=(256, 512))
    (runs["corrupt_meta"] / "run.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(StoreError, match="corrupt JSON"):
        compare_runs(base, runs["corrupt_meta"])
    meta = json.loads((runs["schema"] / "run.json").read_text(encoding="utf-8"))
    (runs["schema"] / "run.json").write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(StoreError, match="schema_version 99"):
        compare_runs(runs["schema"], base)
    lines = (runs["corrupt_line"] / "results.jsonl").read_text(encoding="utf-8").splitlines()
    lines.insert(1, '{"suite": "throughput", ')
    (runs["corrupt_line"] / "results.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(StoreError, match="corrupt record"):
        compare_runs(base, runs["corrupt_line"])
    (runs["no_results"] / "results.jsonl").unlink()
    with pytest.raises(StoreError, match=r"results\.jsonl: not found"):
        compare_runs(base, runs["no_results"])


def test_environment_warnings(base: Path, tmp_path: Path) -> None:
    cmp = compare_runs(base, build_run(tmp_path / "gpu", seed=0, device="cuda:0"))
    assert any("device differs" in w for w in cmp.warnings)
    # timings on another device are other measurements: they do not match (vanished + new)
    assert cmp.exit_code == 1 and not cmp.regressions
    assert {r.suite for r in cmp.failing_vanished} == {"throughput", "memory"}
    assert compare_runs(base, tmp_path / "gpu", only_common=True).exit_code == 0


def test_rich_table(base: Path, tmp_path: Path) -> None:
    new = build_run(tmp_path / "slow", seed=0,
                    transform=_scale("linear[favor]", "forward_ms", 4096, 1.5))
    cmp = compare_runs(base, new)
    table = render_compare_table(cmp)
    assert isinstance(table, Table) and table.row_count == 1
    console = Console(record=True, width=220, color_system=None)
    console.print(table)
    text = console.export_text()
    assert "FAIL" in text and "linear[favor]" in text and "+50.0%" in text
    assert "Not shown:" in text and "unchanged" in text
    full = render_compare_table(cmp, include_unchanged=True, include_informational=True)
    assert full.row_count == len(cmp.rows)


def test_compare_html_escaped_and_self_contained(tmp_path: Path) -> None:
    base = build_run(tmp_path / "b", seed=0, attentions=("standard[sdpa]", XSS),
                     suites=("throughput", "accuracy"), tasks=(XSS,))
    new = build_run(tmp_path / "n", seed=0, attentions=("standard[sdpa]", XSS),
                    suites=("throughput", "accuracy"), tasks=(XSS,),
                    transform=_scale(XSS, "forward_ms", 1024, 2.0))
    cmp = compare_runs(base, new)
    assert cmp.exit_code == 1
    path = write_compare_html(cmp, tmp_path / "out" / "compare.html")
    html = path.read_text(encoding="utf-8")
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower() and not re.search(r"https?://", html)
    assert '<div class="banner fail">FAIL</div>' in html
    assert 'id="regression"' in html and "+100.0%" in html
    assert write_compare_html(cmp, tmp_path / "out") == tmp_path / "out" / "compare.html"
    passing = write_compare_html(compare_runs(base, base), tmp_path / "pass.html")
    assert '<div class="banner pass">PASS</div>' in passing.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# decisions on evidence: raw samples, the side-by-side ratio, calibration drift, noise


def _timed(metric: str, samples: list[float], *, noisy: str | None = None, hib: bool | None = False,
           unit: str = "ms", label: str = "linear") -> Record:
    values = sorted(samples)
    return Record("throughput", "linear", {}, {"kind": "attention", "seq_len": 512}, metric,
                  value=values[len(values) // 2], unit=unit, higher_is_better=hib,
                  ci_low=values[len(values) // 4], ci_high=values[3 * len(values) // 4],
                  interval="iqr", n=len(values), samples=list(samples), noisy=noisy,
                  label=label, cell="c1")


def _spread(center: float, n: int = 20, width: float = 0.04, seed: int = 0) -> list[float]:
    import random

    rng = random.Random(seed)
    return [center * (1 + rng.uniform(-width, width)) for _ in range(n)]


def _cell(ms: float, ratio: float | None, gflops: float | None, *, seed: int = 0,
          noisy: str | None = None) -> list[Record]:
    out = [_timed("forward_ms", _spread(ms, seed=seed), noisy=noisy)]
    if ratio is not None:
        out.append(_timed("forward_speed_vs_reference", _spread(ratio, seed=seed + 1),
                          hib=True, unit="x", noisy=noisy))
    if gflops is not None:
        out.append(_timed("calibration_gflops", _spread(gflops, seed=seed + 2), hib=None,
                          unit="GFLOP/s", noisy=noisy))
    return out


def _status(base: list[Record], new: list[Record], metric: str = "forward_ms") -> CompareRow:
    rows, _ = compare_records(base, new)
    return next(r for r in rows if r.metric == metric)


def test_samples_decide_with_mann_whitney() -> None:
    base = [_timed("forward_ms", _spread(10.0))]
    slow = [_timed("forward_ms", _spread(15.0, seed=3))]
    row = _status(base, slow)
    assert row.status == "regression" and row.p_value is not None and row.p_value < 1e-6
    assert row.evidence.test == "mann_whitney_rounds" and row.evidence.one_process
    assert row.noise.startswith("Mann-Whitney")
    # beyond the threshold (best decile 6.9 -> 7.9) but the samples overlap: within noise
    base_wide = [_timed("forward_ms", [float(x) for x in range(5, 25)])]
    wide = [_timed("forward_ms", [float(x) for x in range(6, 26)])]
    row = _status(base_wide, wide)
    assert row.status == "unchanged" and row.note == "within noise" and row.p_value > 0.05
    # below the threshold however significant
    assert _status(base, [_timed("forward_ms", _spread(10.5, seed=4, width=0.001))]).status \
        == "unchanged"
    # the estimate is the best decile: a few slow outliers (interference) do not move it
    spiky = [_timed("forward_ms", _spread(10.0, seed=5)[:16] + [40.0] * 4)]
    assert _status(base, spiky).status == "unchanged"


def test_ratio_must_agree_and_decides_under_drift() -> None:
    base = _cell(10.0, 2.0, 50.0)
    # slower, but the reference beside it slowed as much: the machine, not the code
    drift_only = _cell(15.0, 2.0, 48.0, seed=7)
    row = _status(base, drift_only)
    assert row.status == "unchanged" and "machine drift" in row.note
    # slower and the ratio agrees: a regression
    real = _cell(15.0, 1.33, 50.0, seed=7)
    assert _status(base, real).status == "regression"
    # the ratio row itself never decides the verdict (a faster reference would lower it)
    assert _status(base, real, "forward_speed_vs_reference").status == "informational"
    # the machine ran at half speed: absolute times are not comparable, the ratio decides
    slow_machine = _cell(20.0, 2.0, 25.0, seed=7)
    row = _status(base, slow_machine)
    assert row.status == "unchanged" and "machine speed -5" in row.note
    hidden = _cell(10.0, 1.2, 100.0, seed=7)  # faster machine hides a slower attention
    assert _status(base, hidden).status == "regression"
    # machines differ and there is no ratio to decide: inconclusive, not a regression
    no_ratio = _cell(15.0, None, 25.0, seed=7)
    row = _status(_cell(10.0, None, 50.0), no_ratio)
    assert row.status == "inconclusive" and "no ratio" in row.note


def _against(records: list[Record], reference: str | None) -> list[Record]:
    return [replace(r, reference=reference) if r.metric.endswith(
        "_speed_vs_reference") else r for r in records]


def test_ratios_against_different_references_do_not_decide() -> None:
    base = _against(_cell(10.0, 2.0, 50.0), "standard")
    # the same reference (or one run that did not record it): the ratio says machine drift
    for reference in ("standard", None):
        row = _status(base, _against(_cell(15.0, 2.0, 48.0, seed=7), reference))
        assert row.status == "unchanged" and "machine drift" in row.note
    # timed beside another attention, the same ratio means nothing: the absolute time decides
    other = _against(_cell(15.0, 2.0, 48.0, seed=7), "linear")
    assert _status(base, other).status == "regression"
    row = _status(base, other, "forward_speed_vs_reference")
    assert row.status == "informational"
    assert row.note == "side-by-side reference changed (standard -> linear): not comparable"


def _ratio_worse_within_its_noise(busy: str) -> tuple[list[Record], list[Record]]:
    """Base and new runs where the new time is 50% worse on a busy machine and the ratio to the
    reference is 15% worse but within its own wide rounds."""
    wide = [_timed("forward_ms", [10.0] * 20),
            _timed("forward_speed_vs_reference", [float(x) for x in range(5, 25)], hib=True,
                   unit="x")]
    wider = [_timed("forward_ms", [15.0] * 20, noisy=busy),
             _timed("forward_speed_vs_reference", [0.85 * x for x in range(5, 25)], hib=True,
                    unit="x", noisy=busy)]
    return wide, wider


def test_under_load_the_side_by_side_ratio_decides() -> None:
    busy = "other processes used 1.00 of 2 cores"
    base = _cell(10.0, 2.0, 50.0)
    # slower on a busy machine, and the ratio to the reference timed beside it moved as much:
    # decisive (a regression), not "too noisy"
    row = _status(base, _cell(15.0, 1.33, 50.0, seed=7, noisy=busy))
    assert row.status == "regression" and "busy machine" in row.note
    assert row.evidence is not None and row.evidence.metric == "forward_speed_vs_reference"
    # the reference attention's own ratio is to the calibration matmul (other work, slowed
    # differently by a busy machine): not a duet, so it cannot decide alone
    own = [replace(r, reference="linear") if r.metric.endswith("_reference") else r
           for r in _cell(15.0, 1.33, 50.0, seed=7, noisy=busy)]
    row = _status(_against(base, "linear"), own)
    assert row.status == "inconclusive" and "calibration matmul" in row.note
    # slower on a busy machine, but the ratio held: the load's, not the code's -> unchanged
    row = _status(base, _cell(15.0, 2.0, 50.0, seed=7, noisy=busy))
    assert row.status == "unchanged" and "speed vs reference" in row.note
    # the ratio worse beyond the threshold but within its own noise: inconclusive, saying why
    wide, wider = _ratio_worse_within_its_noise(busy)
    row = _status(wide, wider)
    assert row.status == "inconclusive" and "one timing window per run" in row.note
    # worse beyond the threshold on a busy machine and no ratio to decide: inconclusive
    row = _status([_timed("forward_ms", [float(x) for x in range(5, 25)])],
                  [_timed("forward_ms", [float(x) for x in range(6, 26)], noisy=busy)])
    assert row.status == "inconclusive" and "no ratio" in row.note
    row = _status([_timed("forward_ms", _spread(10.0))],
                  [_timed("forward_ms", _spread(15.0, seed=3), noisy=busy)])
    assert row.status == "inconclusive"
    # noisy but unchanged: passes
    assert _status(base, _cell(10.0, 2.0, 50.0, seed=9, noisy=busy)).status == "unchanged"


def test_bonferroni_over_candidates() -> None:
    # 5 vs 5 fully separated samples: one-sided p = 1/252 = 0.004 < 0.05, but not below
    # 0.05 / 20 once twenty rows are beyond the threshold
    def rec(i: int, samples: list[float]) -> Record:
        return replace(_timed("forward_ms", samples), params={"seq_len": i})

    one = compare_records([rec(0, [1, 1.01, 1.02, 1.03, 1.04])],
                          [rec(0, [2, 2.01, 2.02, 2.03, 2.04])])[0]
    assert one[0].status == "regression"
    many = compare_records([rec(i, [1, 1.01, 1.02, 1.03, 1.04]) for i in range(20)],
                           [rec(i, [2, 2.01, 2.02, 2.03, 2.04]) for i in range(20)])[0]
    assert {r.status for r in many} == {"unchanged"}


def test_method_change_is_not_a_regression() -> None:
    base, new = _rec(100), _rec(50)
    base.suite_version, new.suite_version = 1, 2  # type: ignore[attr-defined]
    rows, _ = compare_records([base], [new])
    assert rows[0].status == "informational" and "method changed" in rows[0].note
    new.suite_version = 1  # type: ignore[attr-defined]
    assert compare_records([base], [new])[0][0].status == "regression"


def test_match_on_shape_label_and_run_keys(tmp_path: Path) -> None:
    a = _timed("forward_ms", _spread(10.0))
    other_dim = replace(a, params={**a.params, "head_dim": 16})
    rows, _ = compare_records([a], [other_dim])
    assert sorted(r.status for r in rows) == ["new", "vanished"]
    other_label = replace(a, label="linear-copy")
    assert sorted(r.status for r in compare_records([a], [other_label])[0]) == ["new",
                                                                              "vanished"]
    rows, _ = compare_records([a], [a], base_meta={"threads": 2, "device": "cpu"},
                              new_meta={"threads": 1, "device": "cpu"})
    assert sorted(r.status for r in rows) == ["new", "vanished"]
    rows, _ = compare_records([a], [a], base_meta={"threads": 2}, new_meta={"threads": 2})
    assert [r.status for r in rows] == ["unchanged"]


def _store(tmp_path: Path, name: str, records: list[Record], **meta) -> Path:
    from harness.run.store import ResultsStore

    store = ResultsStore.create(tmp_path / name, {"run_id": name, "status": "finished", **meta})
    for r in records:
        store.write_cell(Cell(r.suite, r.attention, r.options, r.params, r.label or ""), [r])
    return tmp_path / name


def test_schema_1_store_still_compares(tmp_path: Path) -> None:
    section = {"heads": 4, "head_dim": 64, "causal": False, "seq_lens": [512]}
    v1 = Record("throughput", "linear", {}, {"kind": "attention", "seq_len": 512, "batch": 1},
                "forward_ms", value=10.0, unit="ms", higher_is_better=False, label="linear")
    v2 = replace(v1, params={**v1.params, "heads": 4, "head_dim": 64, "causal": False,
                             "dtype": "float32"}, value=20.0)
    old = _store(tmp_path, "old", [v1], profile={"suites": {"throughput": section}})
    meta = json.loads((old / "run.json").read_text())
    (old / "run.json").write_text(json.dumps({**meta, "schema_version": 1}))
    new = _store(tmp_path, "new", [v2], profile={"suites": {"throughput": section}})
    cmp = compare_runs(old, new)
    assert [r.status for r in cmp.rows] == ["regression"] and cmp.exit_code == 1


def test_unusable_new_runs_are_exit_2(tmp_path: Path) -> None:
    ok = _store(tmp_path, "ok", [_rec(1.0)])
    empty = _store(tmp_path, "empty", [_rec(1.0)])
    (empty / "results.jsonl").write_text("")
    with pytest.raises(StoreError, match="nothing measured"):
        compare_runs(ok, empty)
    errors = _store(tmp_path, "errors", [_rec(None, status="error", error="boom")])
    with pytest.raises(StoreError, match=r"nothing measured.*1 error"):
        compare_runs(ok, errors)
    for bad, text in (("NaN", "value is nan"), ("Infinity", "value is inf"),
                      ('"fast"', "value is 'fast'")):
        broken = _store(tmp_path, f"bad{len(text)}{bad[:2]}", [_rec(1.0)])
        line = (broken / "results.jsonl").read_text().replace('"value": 1.0', f'"value": {bad}')
        (broken / "results.jsonl").write_text(line)
        with pytest.raises(StoreError, match=rf"invalid record throughput/standard/m.*{text}"):
            compare_runs(ok, broken)
    # a broken check would let these through: the same store without the damage is fine
    assert compare_runs(ok, ok).exit_code == 0


def _cli(*args: str):
    from typer.testing import CliRunner

    from harness.cli import app

    return CliRunner().invoke(app, ["compare", *args])


def test_cli_exit_codes_and_compact_output(base: Path, tmp_path: Path) -> None:
    assert _cli(str(base), str(base)).exit_code == 0
    slow = build_run(tmp_path / "slow", seed=0,
                     transform=_scale("linear[favor]", "forward_ms", 4096, 1.5))
    out = _cli(str(base), str(slow))
    assert out.exit_code == 1 and out.output.startswith("FAIL (exit 1)")
    assert "linear[favor]" in out.output and "HTML" not in out.output
    fewer = build_run(tmp_path / "fewer", seed=0, suites=("throughput",))
    out = _cli(str(base), str(fewer))
    assert out.exit_code == 1 and "vanished, fails the gate: memory" in out.output
    assert len(out.output.splitlines()) < 60  # grouped, not one line per vanished metric
    assert _cli(str(base), str(fewer), "--allow-missing").exit_code == 0
    assert _cli(str(base), str(fewer), "--only-common").exit_code == 0

    def noisy(r: Record) -> Record:
        r = _scale("linear[favor]", "forward_ms", 4096, 1.5)(r)
        r.noisy = "other processes used 1.20 of 2 cores"
        return r

    out = _cli(str(base), str(build_run(tmp_path / "noisy", seed=0, transform=noisy)))
    assert out.exit_code == 3 and out.output.startswith("INCONCLUSIVE (exit 3)")


@pytest.mark.parametrize("bad", ["nan", "inf", "-0.1", "ten"])
def test_cli_bad_threshold_exit_2(base: Path, bad: str) -> None:
    out = _cli(str(base), str(base), "--threshold", bad)
    assert out.exit_code == 2 and "--threshold" in out.output and "Traceback" not in out.output


def test_derived_summary_without_uncertainty_never_decides() -> None:
    """A crossover length jumps a whole grid step (512 -> 1024, +100%) on a small timing change
    and has no uncertainty of its own: declared a summary, it is informational; the timings it
    is derived from decide. Undeclared (or declared a measurement), the threshold rule stands."""
    def crossover(value: float) -> Record:
        return Record("throughput", "sparse", {}, {"kind": "crossover", "batch": 1},
                      "crossover_seq_len", value=value, unit="tokens", higher_is_better=False)

    meta = {"suites_meta": {"throughput": {"version": 2, "metrics": [
        {"name": "crossover_seq_len", "summary": True}]}}}
    rows, _ = compare_records([crossover(512)], [crossover(1024)], base_meta=meta,
                              new_meta=meta)
    assert rows[0].status == "informational" and "derived summary" in rows[0].note
    rows, _ = compare_records([crossover(512)], [crossover(1024)])
    assert rows[0].status == "regression"
    measured = {"suites_meta": {"throughput": {"version": 2, "metrics": [
        {"name": "crossover_seq_len", "summary": False}]}}}
    rows, _ = compare_records([crossover(512)], [crossover(1024)], base_meta=measured,
                              new_meta=measured)
    assert rows[0].status == "regression"


def test_a_metric_declared_ungated_is_shown_never_judged() -> None:
    """A FLOP rate is the gated time seen another way, with no side-by-side ratio to confirm it:
    declared ``gated=False`` it is informational and leaves the power alone; undeclared, the
    same 30% drop with tight samples is a regression."""
    def rate(value: float, seed: int) -> Record:
        import random

        rng = random.Random(seed)
        samples = [value * (1 + rng.gauss(0, 0.01)) for _ in range(20)]
        return Record("throughput", "standard", {}, {"kind": "attention", "seq_len": 256},
                      "forward_flops_per_s", value=sorted(samples)[10], unit="FLOP/s",
                      higher_is_better=True, n=20, samples=samples)

    base, new = [rate(58e9, 0)], [rate(41e9, 1)]
    meta = {"suites_meta": {"throughput": {"version": 2, "metrics": [
        {"name": "forward_flops_per_s", "gated": False}]}}}
    rows, _ = compare_records(base, new, base_meta=meta, new_meta=meta)
    assert rows[0].status == "informational" and "does not gate" in rows[0].note
    assert rows[0].decides is False
    rows, _ = compare_records(base, new)
    assert rows[0].status == "regression"


def _in_processes(values_per_process: list[list[float]], *, grouped: bool = True) -> Record:
    samples = [x for group in values_per_process for x in group]
    return Record("throughput", "sparse", {}, {"kind": "attention", "seq_len": 512, "batch": 1},
                  "forward_ms", value=sorted(samples)[len(samples) // 2], unit="ms",
                  higher_is_better=False, n=len(samples), samples=samples,
                  sample_groups=[len(g) for g in values_per_process] if grouped else None)


def _process_runs(offsets: list[float], seed: int, slowdown: float = 1.0) -> list[list[float]]:
    """One process per offset: 12 rounds each, tight within the process (1% jitter) around
    ``4 ms * offset * slowdown``: the process, not the round, carries the spread."""
    import random

    rng = random.Random(seed)
    return [[4.0 * o * slowdown * (1 + rng.gauss(0, 0.01)) for _ in range(12)] for o in offsets]


def test_per_process_estimates_decide_when_runs_have_several_processes() -> None:
    """Process as the unit: one new process 40% off (identical code; the proof saw single
    processes 14% off on the 2-core machine) moves the mean beyond the threshold but is not
    evidence; every process slower, or a planted 1.5x slowdown, is."""
    base = _process_runs([1.0, 0.97, 1.03], seed=0)
    outlier = _process_runs([1.0, 1.02, 1.40], seed=1)
    rows, _ = compare_records([_in_processes(base)], [_in_processes(outlier)], threshold=0.1)
    assert rows[0].rel_change > 0.1  # beyond the threshold on the mean of the processes...
    assert rows[0].status == "unchanged"  # ...but the processes disagree
    assert "Welch t over processes (3 vs 3)" in rows[0].noise
    every = _process_runs([1.12, 1.15, 1.13], seed=3)
    rows, _ = compare_records([_in_processes(base)], [_in_processes(every)], threshold=0.1)
    assert rows[0].status == "regression"
    planted = _process_runs([1.0, 1.02, 0.98], seed=2, slowdown=1.5)
    rows, _ = compare_records([_in_processes(base)], [_in_processes(planted)], threshold=0.1)
    assert rows[0].status == "regression" and "Welch t over processes" in rows[0].noise
    assert rows[0].rel_change == pytest.approx(0.5, abs=0.05)
    # one side with a single process: back to the pooled samples
    rows, _ = compare_records([_in_processes(base, grouped=False)], [_in_processes(planted)],
                              threshold=0.1)
    assert "Mann-Whitney" in rows[0].noise


def test_sample_groups_must_add_up_to_the_samples() -> None:
    with pytest.raises(ValueError, match="add up"):
        Record("throughput", "sparse", {}, {}, "forward_ms", value=1.0, samples=[1.0, 2.0],
               sample_groups=[1, 2])
    rec = _in_processes([[1.0, 2.0], [3.0]])
    assert Record.from_dict(json.loads(rec.to_json())).sample_groups == [2, 1]
    assert "sample_groups" not in _in_processes([[1.0, 2.0]], grouped=False).to_json()


def test_fitted_time_exponent_never_decides() -> None:
    """A time exponent's interval covers one process's timings; with disjoint intervals between
    identical runs (seen in the proof) it is informational in a timing suite, while the same
    summary in a suite that is not timed keeps deciding."""
    def exponent(value: float, suite: str = "throughput") -> Record:
        return Record(suite, "sparse", {}, {"kind": "exponent", "pass": "fwd_bwd", "batch": 1},
                      "time_exponent", value=value, ci_low=value - 0.03, ci_high=value + 0.03,
                      unit="", higher_is_better=False)

    meta = {"suites_meta": {"throughput": {"version": 3, "metrics": [
        {"name": "time_exponent", "summary": True}]}},
        "compare_rules": {"throughput": {"run_keys": [], "reference_metrics": {},
                                         "timing": True}}}
    rows, _ = compare_records([exponent(0.81)], [exponent(0.96)], base_meta=meta,
                              new_meta=meta)
    assert rows[0].status == "informational" and "from timings" in rows[0].note
    untimed = {**meta, "compare_rules": {"throughput": {"run_keys": [],
                                                        "reference_metrics": {}}}}
    rows, _ = compare_records([exponent(0.81)], [exponent(0.96)], base_meta=untimed,
                              new_meta=untimed)
    assert rows[0].status == "regression"


def test_prove_gate_pairs_compares_every_identical_run(tmp_path: Path) -> None:
    """`prove_gate.py --pairs`: every ordered pair of the quiet runs, and a planted change
    among them shows up as failing pairs naming its row."""
    from scripts.prove_gate import quiet_pairs

    def run(where: str, **kwargs) -> None:
        target = build_run(tmp_path / where / "run", suites=["throughput"], **kwargs)
        (tmp_path / where / "latest").symlink_to(target)

    run("quiet/0")
    run("quiet/1", seed=3)
    run("quiet/2", transform=_scale("linear[favor]", "forward_ms", 4096, 1.5))
    run("plant/0", seed=5)  # not a quiet run: left out
    found = quiet_pairs(tmp_path)
    assert found is not None and found["runs"] == 3 and found["comparisons"] == 6
    assert found["exit_codes"] == {"0": 4, "1": 2}  # slower only as the new side
    assert found["regression_rows"] == {"linear[favor] forward_ms N=4096": 2}


def test_prove_gate_score_plants_fail_naming_metric_and_group(tmp_path: Path) -> None:
    """The proof's accuracy/bias plants: identical scores pass, seed noise alone passes, a
    planted macro-F1 drop and gender gap fail naming both for the planted attention only."""
    import random

    from scripts.prove_gate import _planted_copy, _scores_named

    base = build_run(tmp_path / "a", suites=["accuracy", "bias"], bias_seeds=(0, 1, 2))
    same = build_run(tmp_path / "b", suites=["accuracy", "bias"], bias_seeds=(0, 1, 2))
    assert compare_runs(base, same).exit_code == 0
    noise = _planted_copy(same, tmp_path / "noise", random.Random(1), "linear[favor]", 0.0, True)
    assert compare_runs(base, noise).exit_code == 0
    planted = _planted_copy(same, tmp_path / "plant", random.Random(1), "linear[favor]", 0.1, True)
    cmp = compare_runs(base, planted)
    result = {"exit_code": cmp.exit_code, "regressions": [
        {"label": r.label, "metric": r.metric, "params": r.params} for r in cmp.regressions]}
    assert _scores_named(result, "linear[favor]"), result
    assert all(r.evidence is not None and r.evidence.test == "paired_t_seeds"
               for r in cmp.regressions if r.params.get("seed") is not None)


def test_single_process_regressions_come_with_a_warning() -> None:
    """Mann-Whitney on one process per side does not see the between-process spread: a
    regression it decides is flagged in the warnings; one decided over processes is not."""
    base, planted = _process_runs([1.0, 0.97, 1.03], seed=0), _process_runs(
        [1.0, 1.02, 0.98], seed=2, slowdown=1.5)
    rows, warnings = compare_records([_in_processes(base, grouped=False)],
                                     [_in_processes(planted, grouped=False)], threshold=0.1)
    assert rows[0].status == "regression"
    assert len(warnings) == 1 and "one window of one process per run" in warnings[0]
    rows, warnings = compare_records([_in_processes(base)], [_in_processes(planted)],
                                     threshold=0.1)
    assert rows[0].status == "regression" and warnings == []


def test_prove_gate_pairs_refuses_a_folder_without_runs(tmp_path: Path, capsys) -> None:
    from scripts.prove_gate import main

    assert main(["--pairs", str(tmp_path)]) == 2
    assert "fewer than two quiet runs" in capsys.readouterr().err
    assert main(["--pairs", str(tmp_path / "absent")]) == 2


def _suite_of_rows(n_rows: int, seed: int, spread: float, slow: dict[int, float] | None = None
                   ) -> list[Record]:
    """``n_rows`` one-process timed rows (attentions at lengths), each run's process off by a
    log-normal ``spread`` (what the between-process noise does), 12 tight rounds each;
    ``slow`` multiplies some rows."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n_rows):
        level = 4.0 * (1 + i) * math.exp(rng.gauss(0, spread)) * (slow or {}).get(i, 1.0)
        samples = [level * (1 + rng.gauss(0, 0.005)) for _ in range(12)]
        out.append(replace(_timed("forward_ms", samples, label="sparse"),
                           params={"kind": "attention", "seq_len": 64 * (i + 1)}))
    return out


def test_one_process_rows_must_stand_out_of_the_runs_spread() -> None:
    """With one process per run, Mann-Whitney over rounds calls any process-level shift
    significant; the empirical null over the suite's rows (their spread between these two
    runs) keeps identical code silent and still names a planted 1.5x slowdown."""
    meta = {"compare_rules": {"throughput": {"run_keys": [], "reference_metrics": {},
                                             "timing": True}}}
    base = _suite_of_rows(30, seed=0, spread=0.06)
    same = _suite_of_rows(30, seed=1, spread=0.06)
    rows, _ = compare_records(base, same, base_meta=meta, new_meta=meta)
    beyond = [r for r in rows if abs(r.rel_change) > 0.1]
    assert beyond, "the test needs rows beyond the threshold by noise alone"
    assert not [r for r in rows if r.status == "regression"]
    assert all("spread" in r.note for r in beyond if r.worse)
    # without the suite's spread (a suite not marked as timing), the same rows would fail
    untimed = {"compare_rules": {"throughput": {"run_keys": [], "reference_metrics": {}}}}
    plain, _ = compare_records(base, same, base_meta=untimed, new_meta=untimed)
    assert [r for r in plain if r.status == "regression"]
    planted = _suite_of_rows(30, seed=1, spread=0.06, slow={4: 1.5, 17: 1.5})
    rows, _ = compare_records(base, planted, base_meta=meta, new_meta=meta)
    assert {r.params["seq_len"] for r in rows if r.status == "regression"} == {64 * 5, 64 * 18}


def test_power_is_stated_per_suite_and_exit_3_says_what_would_decide(tmp_path: Path) -> None:
    from harness.gate import power_lines

    base = build_run(tmp_path / "a", suites=["throughput", "accuracy"])
    new = build_run(tmp_path / "b", suites=["throughput", "accuracy"], seed=4)
    cmp = compare_runs(base, new)
    power = {p.suite: p for p in cmp.power}
    assert set(power) == {"throughput", "accuracy"}
    for p in power.values():
        assert p.detectable is None or p.detectable >= cmp.threshold
        assert "no regression larger than" in p.text() or "power unknown" in p.text()
    assert [line.plain for line in power_lines(cmp)][:2] == [f"power {p.text()}"
                                                            for p in cmp.power][:2]
    busy = "other processes used 1.00 of 2 cores"
    wide, wider = _ratio_worse_within_its_noise(busy)
    rows, warnings = compare_records(wide, wider)
    from harness.gate import Comparison

    cmp = Comparison(tmp_path, tmp_path, {}, {}, 0.1, 0.1, rows, warnings)
    assert cmp.exit_code == 3
    assert cmp.advice == ["throughput: one timing window per run: time in several (throughput"
                          " `windows: 5` or `processes: 3`), or on a quieter machine"]
    assert any("to decide:" in line.plain for line in power_lines(cmp))


def test_per_seed_scores_are_judged_over_seeds_paired() -> None:
    """macro-F1 per seed: identical code and seeds pass; a drop on every seed fails, judged by
    a paired t over the seeds both runs hold; a drop on one seed of three is not significant."""
    def f1(seed: int, value: float, label: str = "linear") -> Record:
        return Record("accuracy", label, {}, {"task": "recall", "seed": seed}, "macro_f1",
                      value=value, ci_low=value - 0.03, ci_high=value + 0.03,
                      interval="ci95", unit="f1", higher_is_better=True, label=label)

    base = [f1(s, v) for s, v in enumerate([0.80, 0.74, 0.85])]
    rows, _ = compare_records(base, list(base))
    assert {r.status for r in rows} == {"unchanged"}
    dropped = [f1(s, v - 0.12 + d) for s, (v, d) in enumerate(zip([0.80, 0.74, 0.85],
                                                                   [0.01, -0.01, 0.0],
                                                                   strict=True))]
    rows, _ = compare_records(base, dropped)
    assert {r.status for r in rows} == {"regression"}
    assert all(r.evidence.test == "paired_t_seeds" and r.evidence.n_base == 3 for r in rows)
    assert "over 3 seeds" in rows[0].note
    one_seed = [f1(0, 0.60), f1(1, 0.74), f1(2, 0.85)]
    rows, _ = compare_records(base, one_seed)
    assert {r.status for r in rows} == {"unchanged"}  # per seed, intervals would fail seed 0
    # one seed a side: the test-set intervals decide, as before
    rows, _ = compare_records([f1(0, 0.80)], [f1(0, 0.60)])
    assert rows[0].status == "regression" and rows[0].evidence.test == "intervals"


def _row_of(rows: list[CompareRow], metric: str) -> CompareRow:
    return next(r for r in rows if r.metric == metric)


def test_each_suite_is_its_own_family() -> None:
    """Dozens of small bias gaps that noise moved past the threshold (here improvements) do not
    tighten the level of an accuracy drop: the two suites share alpha equally (0.025 each) and
    the drop (paired t p ~ 0.01) fails. The same gaps in the accuracy suite do share its level
    (0.05 / 25) and the drop is then not significant."""
    def rec(suite: str, metric: str, seed: int, value: float, hib: bool, **params) -> Record:
        return Record(suite, "sparse", {}, {**params, "seed": seed}, metric, value=value,
                      higher_is_better=hib, label="sparse")

    f1 = [0.80, 0.74, 0.85, 0.70, 0.78]
    wobble = [0.08, -0.08, 0.06, -0.06, 0.0]
    gaps = [0.50, 0.42, 0.55, 0.47, 0.52]

    def run(drop: float, gap_suite: str) -> list[Record]:
        out = [rec("accuracy", "macro_f1", s, v - drop + (w if drop else 0.0), True,
                   task="digits") for s, (v, w) in enumerate(zip(f1, wobble, strict=True))]
        for g in range(24):
            out += [rec(gap_suite, "score_gap", s,
                        v * (0.7 + 0.02 * ((s + g) % 3) if drop else 1.0), False,
                        task="digits" if gap_suite == "accuracy" else None, probe=g)
                    for s, v in enumerate(gaps)]
        # a suite with no row beyond the threshold: shown at its first candidate's level
        return [*out, Record("memory", "sparse", {}, {"seq_len": 1024}, "peak_bytes",
                             value=100.0, ci_low=99.0, ci_high=101.0, higher_is_better=False,
                             label="sparse")]

    rows, _ = compare_records(run(0.0, "bias"), run(0.12, "bias"))
    drop = [r for r in rows if r.metric == "macro_f1"]
    assert {r.status for r in drop} == {"regression"}
    assert 0.0025 < drop[0].evidence.p < 0.025 == drop[0].evidence.alpha
    gap_rows = [r for r in rows if r.metric == "score_gap"]
    assert len(gap_rows) == 120 and {r.status for r in gap_rows} == {"improvement"}
    assert {r.evidence.alpha for r in gap_rows} == {0.025 / 24}
    assert _row_of(rows, "peak_bytes").evidence.alpha == 0.05 / 3
    rows, _ = compare_records(run(0.0, "accuracy"), run(0.12, "accuracy"))
    drop = [r for r in rows if r.metric == "macro_f1"]
    assert {r.status for r in drop} == {"unchanged"} and drop[0].evidence.alpha == 0.05 / 25


def test_wall_times_outside_timing_suites_never_decide() -> None:
    """A training time is measured beside other work, with no side-by-side reference: twice as
    slow on a busy machine is shown, never a regression, and takes no part in the power."""
    def t(seed: int, value: float) -> Record:
        return Record("accuracy", "linear", {}, {"task": "recall", "seed": seed}, "train_time_s",
                      value=value, unit="s", higher_is_better=False, label="linear")

    rows, _ = compare_records([t(s, 10.0 + s) for s in range(3)],
                              [t(s, 20.0 + s) for s in range(3)])
    assert {r.status for r in rows} == {"informational"}
    assert all("wall time" in r.note and not r.decides for r in rows)


def _windowed(n_lengths: int, slow: dict[int, float], seed: int = 0) -> list[Record]:
    """One process per run, each pass timed in 3 windows (``sample_groups``): ``linear``
    forward at ``n_lengths`` lengths, its time (and ratio to the reference) ``slow[n]`` times
    worse at length n."""
    out = []
    for i, n in enumerate((256, 512, 1024)[:n_lengths]):
        f = slow.get(n, 1.0)
        for metric, center, hib, unit in (("forward_ms", 10.0 * f, False, "ms"),
                                          ("forward_speed_vs_reference", 2.0 / f, True, "x")):
            samples = _spread(center, n=18, seed=seed + 10 * i + hib)
            r = _timed(metric, samples, hib=hib, unit=unit)
            out.append(replace(r, params={"kind": "attention", "seq_len": n}, cell=f"c{n}",
                               sample_groups=[6, 6, 6], load={"groups": "windows"}))
    return out


def test_one_process_regressions_need_a_second_cell() -> None:
    """A slowdown at every length fails, judged over the windows; the same slowdown in one
    cell only (while the attention's other cells held) is inconclusive: not replicated. An
    attention timed in one cell keeps the cell's own verdict."""
    base = _windowed(3, {})
    rows, _ = compare_records(base, _windowed(3, {256: 1.5, 512: 1.5, 1024: 1.5}, seed=1))
    failed = [r for r in rows if r.status == "regression" and r.metric == "forward_ms"]
    assert {r.params["seq_len"] for r in failed} == {256, 512, 1024}
    assert all(r.evidence.test == "welch_t_windows" for r in failed)
    rows, _ = compare_records(base, _windowed(3, {512: 1.5}, seed=1))
    row = next(r for r in rows if r.metric == "forward_ms" and r.params["seq_len"] == 512)
    assert row.status == "inconclusive" and "not replicated" in row.note and row.unreplicated
    assert not any(r.status == "regression" for r in rows)
    from harness.gate import Comparison

    cmp = Comparison(Path("b"), Path("n"), {}, {}, 0.1, 0.1, rows, [])
    assert cmp.exit_code == 3 and cmp.advice == [
        "throughput: linear regressed in one cell only: rerun its cells, or time them in several"
        " processes (throughput `processes: 3`)"]
    # a second cell worse beyond the threshold and beyond noise confirms it
    rows, _ = compare_records(base, _windowed(3, {512: 1.5, 1024: 1.3}, seed=1))
    assert {r.params["seq_len"] for r in rows if r.status == "regression"} == {512, 1024}
    # one cell in all: nothing to replicate, the row's own verdict stands
    rows, _ = compare_records(_windowed(1, {}), _windowed(1, {256: 1.5}, seed=1))
    assert [r.status for r in rows if r.metric == "forward_ms"] == ["regression"]


def _peak(value: float, **kw) -> Record:
    return Record("memory", "sparse", {}, {"mode": "forward", "seq_len": 1024}, "peak_bytes",
                  value=value, unit="bytes", higher_is_better=False, **kw)


@pytest.mark.parametrize(("new", "noise", "status"), [
    (130.0, 0.4, "unchanged"),     # within what one measurement moves between runs
    (150.0, 0.4, "regression"),    # a planted 1.5x stands out of it
    (55.0, 0.4, "improvement"),
    (130.0, None, "regression"),   # no declared spread: the threshold alone decides
])
def test_single_run_noise_of_a_suite_holds_its_one_run_rows(new, noise, status) -> None:
    meta = {"compare_rules": {"memory": {"single_run_noise": noise}}}
    rows, _ = compare_records([_peak(100.0)], [_peak(new)], base_meta=meta, new_meta=meta)
    assert rows[0].status == status
    if noise is not None:
        assert rows[0].evidence.detectable == pytest.approx(noise)
        assert status != "unchanged" or "identical code" in rows[0].note
    # an interval from one run (a fitted exponent) is held to it too
    fit = dict(ci_low=0.95, ci_high=1.05, interval="ci95")
    base = Record("memory", "sparse", {}, {"mode": "forward"}, "memory_exponent", value=1.0,
                  higher_is_better=False, **fit)
    moved = Record("memory", "sparse", {}, {"mode": "forward"}, "memory_exponent",
                   value=1.2, higher_is_better=False, ci_low=1.15, ci_high=1.25,
                   interval="ci95")
    rows, _ = compare_records([base], [moved], base_meta=meta, new_meta=meta)
    assert rows[0].status == ("regression" if noise is None else "unchanged")


def test_memory_declares_its_single_run_noise() -> None:
    from harness.suites.base import compare_rules

    assert compare_rules(["memory"])["memory"]["single_run_noise"] == pytest.approx(0.4)
    assert compare_rules(["accuracy"])["accuracy"]["single_run_noise"] is None


def test_a_replicating_cell_must_stand_out_of_the_runs_spread() -> None:
    """A second cell confirms a one-process regression only when it is worse beyond the
    threshold, at the attention's level AND beyond its power (which holds the rows' spread): a
    cell the spread rule called unchanged confirms nothing (identical code on a host whose
    speed drifted 24%: linear 256 +80% 'replicated' by linear 512's -11.9% ratio, within a 22%
    spread; docs/PERFORMANCE.md 7)."""
    from types import SimpleNamespace

    from harness.gate.compare import _worse_at
    from harness.gate.evidence import Evidence

    def row(effect: float, detectable: float) -> SimpleNamespace:
        return SimpleNamespace(evidence=Evidence("welch_t_windows", "forward_ms", effect, True,
                                                 p=1e-4, detectable=detectable))

    assert _worse_at(row(-0.30, 0.20), threshold=0.1, level=0.01)
    assert not _worse_at(row(-0.119, 0.22), threshold=0.1, level=0.01)   # within the spread
    assert not _worse_at(row(-0.08, 0.02), threshold=0.1, level=0.01)    # below the threshold


@pytest.mark.parametrize("noise", [-0.1, 0, "40%", True, 50.0])
def test_a_suite_with_a_bad_single_run_noise_is_refused(noise) -> None:
    """A suite's declared spread is checked when it registers: a clear error naming it."""
    from harness.suites.base import Suite, _check_suite
    from harness.suites.memory import MemorySuite

    bad = type("BadNoise", (MemorySuite,), {"single_run_noise": noise})
    with pytest.raises(ValueError, match="single_run_noise must be None or a fraction"):
        _check_suite("memory", bad)
    assert isinstance(_check_suite("memory", MemorySuite), Suite)
