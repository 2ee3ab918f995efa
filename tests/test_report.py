"""The HTML report, its summary export and the SVG helpers, on synthetic run directories."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from report_fixtures import build_run

from harness.report import HEADLINE_METRICS, build_summary, plots, render_report, write_report
from harness.report._common import format_uncertainty, format_value
from harness.report.html import _loglog_slope
from harness.run.store import (
    Record,
    ResultsStore,
    StoreError,
    point_latest,
    read_records,
    read_run,
)

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = build_run(tmp_path_factory.mktemp("reports") / "full")
    write_report(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def page(full_run: Path) -> str:
    return (full_run / "index.html").read_text(encoding="utf-8")


def _no_external(html: str) -> None:
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I)
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert not re.search(r"\bsrc\s*=", html, re.I)
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert all(h.startswith("#") or h in ("summary.csv", "summary.json") for h in hrefs), hrefs


def test_full_report_sections_and_header(full_run: Path, page: str) -> None:
    meta = read_run(full_run)
    assert page.startswith("<!DOCTYPE html>")
    for section in ("verdict", "summary", "throughput", "memory", "accuracy", "bias",
                    "problems", "environment"):
        assert f'id="{section}"' in page, section
    assert meta["run_id"] in page
    assert "3f9c2ab71e" in page and "AMD EPYC 7B13" in page and "regular" in page
    assert '<span class="pill failed">failed</span>' in page
    # cells per status: 1 errored accuracy cell; oom: 3 throughput + 4 memory; skipped: lsh at
    # N=256 and the memory sweep after its first oom
    assert '<span class="pill error">1 error</span>' in page
    assert '<span class="pill oom">7 oom</span>' in page
    assert '<span class="pill skipped">2 skipped</span>' in page
    _no_external(page)


def test_full_report_charts(page: str) -> None:
    # throughput 2, memory 2 (modes), accuracy 1, bias gaps 1 + scatter 1 + 5 per-group metrics
    assert page.count("<svg") == 12
    assert page.count("</svg>") == 12
    assert "out of memory" in page  # oom markers and legend
    assert "Fairness vs accuracy" in page
    assert "fitted 1.79" in page or "fitted 1.8" in page  # fitted exponent in the legend
    assert "(claim N^2)" in page and "(claim O(N))" in page  # claims in the legends
    # every attention gets one colour, the same in every chart
    colors = {lab: plots.PALETTE[i] for i, lab in enumerate(
        ["standard[sdpa]", "standard[eager]", "sparse[block]", "lsh[reformer]", "linear[favor]"])}
    for label, color in colors.items():
        assert f'<span class="swatch" style="background: {color}"></span><span class="label">' \
               f"{label}</span>" in page


def test_verdict_findings(page: str) -> None:
    verdict = page[page.index('id="verdict"'):page.index('id="summary"')]
    assert "Needs attention" in verdict
    assert ("linear[favor]: demographic-parity difference is significantly higher than "
            "standard[sdpa]") in verdict
    assert "lsh[reformer]: memory grows as N^1.3" in verdict
    assert "Fastest forward at N=4096: linear[favor]" in verdict
    assert "1 cell(s) failed with an error" in verdict


def test_problems_listed(page: str) -> None:
    problems = page[page.index('id="problems"'):page.index("All records")]
    assert "loss is NaN at step 412" in problems
    assert "shorter than 2 * bucket_size * n_hashes" in problems
    assert "sweep stopped at its first oom (N=8192)" in problems
    assert "can&#39;t allocate memory" in problems
    assert problems.count('<span class="pill oom">oom</span>') == 7
    assert problems.count('<span class="pill skipped">skipped</span>') == 2
    assert problems.count('<span class="pill error">error</span>') == 1


def test_summary_export_matches_store(full_run: Path) -> None:
    records = read_records(full_run)
    with open(full_run / "summary.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    data = json.loads((full_run / "summary.json").read_text(encoding="utf-8"))
    # forward_ms, memory exponents x 2 modes, macro-F1 x 2 tasks, DP difference
    assert len(rows) == len(data) == 5 + 10 + 10 + 5
    counts = {m: sum(r["metric"] == m for r in data) for m in HEADLINE_METRICS.values()}
    assert counts == {"forward_ms": 5, "memory_exponent": 10, "macro_f1_mean": 10,
                      "demographic_parity_difference": 5}
    # throughput headline: the longest length every attention measured (eager ooms at 8192)
    fwd = [r for r in data if r["metric"] == "forward_ms"]
    assert {json.loads(r["params"])["seq_len"] for r in fwd} == {4096}
    truth = next(r for r in records if r.metric == "forward_ms" and r.label == "linear[favor]"
                 and r.params["seq_len"] == 4096)
    row = next(r for r in fwd if r["label"] == "linear[favor]")
    assert row["value"] == truth.value and row["ci_low"] == truth.ci_low and row["n"] == 30
    assert row["interval"] == "iqr" and row["unit"] == "ms" and row["higher_is_better"] is False
    f1 = next(r for r in records if r.metric == "macro_f1_mean" and r.label == "lsh[reformer]"
              and r.params["task"] == "listops")
    f1_row = next(r for r in rows if r["metric"] == "macro_f1_mean"
                  and r["label"] == "lsh[reformer]" and r["context"] == "task=listops")
    assert float(f1_row["value"]) == pytest.approx(f1.value, rel=1e-12)
    assert float(f1_row["stderr"]) == pytest.approx(f1.stderr, rel=1e-12)
    assert f1_row["n"] == "2"  # the errored seed is not in the mean
    frame = pd.read_json(full_run / "summary.json")
    assert {"label", "metric", "value", "stderr", "ci_low", "ci_high", "n"} <= set(frame.columns)
    assert pd.read_csv(full_run / "summary.csv")["value"].notna().all()


def test_partial_run_throughput_only(tmp_path: Path) -> None:
    run_dir = build_run(tmp_path / "thr", suites=("throughput",))
    html = write_report(run_dir).read_text(encoding="utf-8")
    assert 'id="throughput"' in html
    for absent in ("memory", "accuracy", "bias"):
        assert f'id="{absent}"' not in html
    assert html.count("<svg") == 2
    assert "No problems found" in html
    data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert {r["metric"] for r in data} == {"forward_ms"} and len(data) == 5
    _no_external(html)


def test_partial_run_bias_without_accuracy(tmp_path: Path) -> None:
    run_dir = build_run(tmp_path / "bias", suites=("bias",), attentions=(
        "standard[sdpa]", "linear[favor]"))
    html = write_report(run_dir).read_text(encoding="utf-8")
    assert 'id="bias"' in html and 'id="accuracy"' not in html
    assert "Fairness vs accuracy" not in html  # needs macro_f1_mean
    assert html.count("<svg") == 1 + 5


def test_report_with_empty_results(tmp_path: Path) -> None:
    ResultsStore.create(tmp_path / "empty", {"run_id": "r0", "status": "running"})
    html = write_report(tmp_path / "empty").read_text(encoding="utf-8")
    assert "No headline metrics" in html and "<svg" not in html
    assert "The run is running" in html


def test_escaping_of_labels_tasks_and_messages(tmp_path: Path) -> None:
    def poison(r: Record) -> Record:
        if r.status != "ok":
            r.error = f"{XSS} & broken"
        return r

    run_dir = build_run(tmp_path / "xss", attentions=("standard[sdpa]", XSS, 'q"uote\'&<b>'),
                        tasks=(XSS, "sst2"), transform=poison)
    html = write_report(run_dir).read_text(encoding="utf-8")
    assert XSS not in html
    assert "<b>" not in html
    assert XSS_ESCAPED in html
    assert "q&#34;uote&#39;&amp;&lt;b&gt;" in html or "q&quot;uote&#x27;&amp;&lt;b&gt;" in html
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert any(XSS_ESCAPED in s for s in svgs)  # escaped inside SVG text too
    assert f"{XSS_ESCAPED} &amp; broken" in html
    _no_external(html)


def test_latest_pointer_and_store_errors(tmp_path: Path, full_run: Path) -> None:
    point_latest(full_run.parent, full_run)
    assert write_report(full_run.parent / "latest") == full_run.resolve() / "index.html"
    with pytest.raises(StoreError, match="not found"):
        write_report(tmp_path / "missing")
    bad = build_run(tmp_path / "bad", suites=("throughput",), seq_lens=(256, 512))
    with open(bad / "results.jsonl", "a", encoding="utf-8") as fh:
        fh.write("{not json}\n")
    with pytest.raises(StoreError, match="corrupt record"):
        write_report(bad)


def test_build_summary_without_meta(full_run: Path) -> None:
    rows = build_summary(read_records(full_run))
    assert len(rows) == 30
    assert all(set(r) >= {"label", "metric", "value", "stderr", "ci_low", "ci_high", "n"}
               for r in rows)
    html = render_report({**read_run(full_run), "environment": None, "run_id": "x"},
                         read_records(full_run))
    assert html.count("<svg") == 12 and '<strong>x</strong>' in html


# --- helpers -----------------------------------------------------------------------------------


def test_loglog_slope_recovers_exponents() -> None:
    ns = [256, 512, 1024, 2048, 4096, 8192]
    for p in (1.0, 2.0, 1.5):
        slope, se, n = _loglog_slope([(x, 3.0 * x**p) for x in ns])  # type: ignore[misc]
        assert slope == pytest.approx(p, abs=1e-9) and se == pytest.approx(0, abs=1e-9)
        assert n == 3  # the longer half of 6 lengths
    assert _loglog_slope([(1, 1), (2, 2)]) is None


def test_format_helpers() -> None:
    assert format_value(1.5 * 2**30, "bytes") == "1.5 GiB"
    assert format_value(12.345, "ms") == "12.3 ms"
    assert format_value(123456, "tokens/s") == "123k tok/s"
    assert format_value(0.81234, "f1") == "0.812"
    assert format_value(None, "ms") == "-"
    r = Record("s", "a", {}, {}, "m", value=1.0, unit="f1", stderr=0.01, ci_low=0.98,
               ci_high=1.02, interval="ci95", n=3)
    assert format_uncertainty(r) == "± 0.010 95% CI [0.980, 1.020]"
    assert plots.format_number(2048) == "2.05k" and plots.format_number(math.nan) == "-"


def test_line_chart_points_failures_and_escaping() -> None:
    series = [
        plots.LineSeries("a<b>", "#111111", [plots.Point(n, n / 100, n / 110, n / 90, "tip&")
                                             for n in (256, 512, 1024)], failed_x=[2048]),
        plots.LineSeries("c", "#222222", [plots.Point(256, 0.0)]),  # dropped on a log axis
    ]
    svg = plots.line_chart(series, title="T<1>", x_label="N", y_label="ms")
    assert svg.count("<circle") == 3 + 2  # 3 points + 2 legend markers
    assert "a&lt;b&gt;" in svg and "T&lt;1&gt;" in svg and "tip&amp;" in svg
    assert "a<b>" not in svg and "<title>T<1>" not in svg
    assert "stroke-dasharray" in svg  # dashed line to the oom cross
    assert ">256<" in svg and ">1k<" in svg  # power-of-two ticks
    empty = plots.line_chart([], title="t", x_label="x", y_label="y")
    assert "no measured points" in empty


def test_bar_and_scatter_charts() -> None:
    bars = [plots.BarSeries("s1", "#000000", {"a": plots.Bar(0.5, 0.4, 0.6, dots=[0.45, 0.55]),
                                              "b": plots.Bar(-0.2)})]
    svg = plots.bar_chart(["a", "b"], bars, title="t", y_label="y")
    assert svg.count("<rect") == 1 + 1 + 2 + 1  # background, frame, 2 bars, legend swatch
    assert svg.count("<circle") == 2
    assert ">-0.2<" in svg and ">0.6<" in svg  # domain covers negatives and the interval
    pts = [plots.ScatterPoint("p<1>", "#000000", 0.8, 0.04, 0.78, 0.82, 0.02, 0.06),
           plots.ScatterPoint("p2", "#111111", 0.8001, 0.0401)]
    svg = plots.scatter_chart(pts, title="s", x_label="x", y_label="y")
    assert svg.count("<circle") == 2 and "p&lt;1&gt;" in svg
    labels = re.findall(r'<text x="([\d.]+)" y="([\d.]+)"[^>]*font-weight="600" paint-order', svg)
    assert len(labels) == 2 and labels[0] != labels[1]  # overlapping points: labels moved apart
