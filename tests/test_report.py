"""The HTML report, its summary export and the SVG helpers, on synthetic run directories."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from report_fixtures import build_run

from harness.gate import compare_runs, write_compare_html
from harness.report import (
    build_summary,
    plots,
    render_report,
    write_report,
)
from harness.report._common import attention_colors, format_uncertainty, format_value
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
    # one inline script, ours (sortable tables), with no attributes, as the page's last element
    assert html.lower().count("<script") == 1 and html.count("<script>") == 1
    script = html[html.index("<script>"):html.index("</script>")]
    assert 'table.sortable' in script and "fetch" not in script and "import" not in script
    assert html.rstrip().endswith("</script>\n</body>\n</html>")
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
    # N=256, the memory sweep after its first oom, and 5 bias text cells (no text data)
    assert '<span class="pill error">1 error</span>' in page
    assert '<span class="pill oom">7 oom</span>' in page
    assert '<span class="pill skipped">7 skipped</span>' in page
    _no_external(page)


def test_full_report_charts(full_run: Path, page: str) -> None:
    # throughput 2, memory 2 (modes), accuracy 1, bias 6: planted-axis rates, gaps, difference
    # to standard, fairness vs accuracy, counterfactual flip rates, template differences
    assert page.count("<svg") == 11
    assert page.count("</svg>") == 11
    assert "out of memory" in page  # oom markers and legend
    assert "Fairness vs accuracy" in page
    assert "fitted 1.79" in page or "fitted 1.8" in page  # fitted exponent in the legend
    assert "(claim N^2)" in page and "(claim O(N))" in page  # claims in the legends
    # every attention gets one colour, the same in every chart
    labels = ["standard[sdpa]", "standard[eager]", "sparse[block]", "lsh[reformer]",
              "linear[favor]"]
    colors = attention_colors(read_run(full_run))
    assert colors["standard[sdpa]"] == plots.PALETTE[0]  # the reference
    assert len({colors[label] for label in labels}) == len(labels)
    for label, color in colors.items():
        assert f'<span class="swatch" style="background: {color}"></span><span class="label">' \
               f"{label}</span>" in page


def test_verdict_findings(page: str) -> None:
    verdict = page[page.index('id="verdict"'):page.index('id="summary"')]
    assert "Needs attention" in verdict
    assert ("linear[favor]: demographic-parity difference on gender (planted gender:female, "
            "strength 0.8) is significantly higher than standard[sdpa]: Δ +0.076") in verdict
    assert ("lsh[reformer]: 1 other bias comparison(s) of 18 significantly worse than "
            "standard[sdpa]: counterfactual flip rate (swap names_race black-&gt;white)") in verdict
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
    assert problems.count('<span class="pill skipped">skipped</span>') == 2 + 5
    assert problems.count('<span class="pill error">error</span>') == 1


def test_summary_export_matches_store(full_run: Path) -> None:
    records = read_records(full_run)
    with open(full_run / "summary.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    data = json.loads((full_run / "summary.json").read_text(encoding="utf-8"))
    # forward_ms, memory exponents x 2 modes, macro-F1 x 2 tasks, DP difference
    assert len(rows) == len(data) == 5 + 10 + 10 + 5
    headlines = [m["name"] for info in read_run(full_run)["suites_meta"].values()
                 for m in info["metrics"] if m["headline"]]
    counts = {m: sum(r["metric"] == m for r in data) for m in headlines}
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
    assert "Fairness vs accuracy" in html  # the bias cells' own test accuracy
    assert html.count("<svg") == 6


def test_report_with_empty_results(tmp_path: Path) -> None:
    ResultsStore.create(tmp_path / "empty", {"run_id": "r0", "status": "running"})
    html = write_report(tmp_path / "empty").read_text(encoding="utf-8")
    assert "No headline metrics" in html and "<svg" not in html
    assert "The run is running" in html


def test_escaping_of_labels_tasks_and_messages(tmp_path: Path) -> None:
    def poison(r: Record) -> Record:
        if r.status != "ok":
            r.error = f"{XSS} & broken"
        if r.params.get("direction") == "black->white":  # a swap name from the data
            r.params = {**r.params, "direction": XSS}
        if r.params.get("planted"):
            r.params = {**r.params, "planted": f"gender:{XSS}"}
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
    assert any(f">names_race: {XSS_ESCAPED} (n=46)<" in s for s in svgs)  # swap categories
    assert f"planted gender:{XSS_ESCAPED}" in html  # the planted group in the lead and cards
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
    assert html.count("<svg") == 11 and '<strong>x</strong>' in html


# --- helpers -----------------------------------------------------------------------------------


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


# --- bias and accuracy against the records' real shape --------------------------------------


def _section(html: str, start: str, end: str) -> str:
    return html[html.index(f'id="{start}"'):html.index(f'id="{end}"')]


def _card(html: str, label: str) -> str:
    """The verdict table row of one attention."""
    verdict = _section(html, "verdict", "summary")
    row = verdict[verdict.index(f'<span class="label">{label}</span>'):]
    return row[:row.index("</tr>")]


def test_bias_headline_is_the_planted_axis(full_run: Path, page: str) -> None:
    records = read_records(full_run)
    dp = {r.label: r for r in records if r.metric == "demographic_parity_difference"
          and r.params.get("axis") == "gender"}
    other = [r for r in records if r.metric == "demographic_parity_difference"
             and r.params.get("axis") == "race"]
    assert len(dp) == 5 and len(other) == 5  # the race records come later in every cell
    for label, r in dp.items():
        assert r.params["planted"] == "gender:female" and r.params["probe"] == "controlled"
        assert f"{r.value:.3f}" in _card(page, label)
        race = next(o for o in other if o.label == label)
        assert f"{race.value:.3f}" not in _card(page, label)
    # summary export: one bias row per attention, the planted axis only
    data = json.loads((full_run / "summary.json").read_text(encoding="utf-8"))
    bias = [r for r in data if r["suite"] == "bias"]
    assert sorted(r["value"] for r in bias) == sorted(r.value for r in dp.values())
    assert all(json.loads(r["params"])["axis"] == "gender" for r in bias)


def test_bias_flags_are_all_counted_and_listed(full_run: Path, page: str) -> None:
    records = read_records(full_run)
    flags = [r for r in records if r.metric == "significant_increase"]
    raised: dict[str, list[Record]] = {}
    for r in flags:
        if r.value:
            raised.setdefault(str(r.label), []).append(r)
    tested = {label: sum(r.label == label for r in flags) for label in raised}
    assert {k: len(v) for k, v in raised.items()} == {"linear[favor]": 8, "lsh[reformer]": 1}
    assert tested == {"linear[favor]": 18, "lsh[reformer]": 18}
    # cards: every flag counted, not just the first significant_increase record
    assert "8 of 18 comparisons flagged" in _card(page, "linear[favor]")
    assert "tone-bad" in _card(page, "linear[favor]")
    lsh = _card(page, "lsh[reformer]")
    assert "1 of 18 comparisons flagged" in lsh and "tone-warn" in lsh
    assert "none of 18 comparisons flagged" in _card(page, "sparse[block]")
    # the flag list: one row per raised flag, with the difference that raised it
    listing = page[page.index('id="bias-flags"'):]
    listing = listing[:listing.index("</table>")]
    assert "(9 of 54 comparisons)" in listing
    assert listing.count("<tr>") == 1 + 9  # header + rows
    assert listing.count('<span class="pill bad">headline</span>') == 1
    lsh_diff = next(r for r in records if r.label == "lsh[reformer]"
                    and r.metric == "flip_rate_diff_vs_reference"
                    and r.params["direction"] == "black->white")
    assert f"+{lsh_diff.value:.3f}" in listing
    assert f"[{lsh_diff.ci_low:.3f}, {lsh_diff.ci_high:.3f}]" in listing


def test_bias_plots_follow_the_records(page: str) -> None:
    bias = _section(page, "bias", "problems")
    svgs = re.findall(r"<svg.*?</svg>", bias, re.S)
    titles = [re.search(r"<title>(.*?)</title>", s).group(1) for s in svgs]  # type: ignore[union-attr]
    assert titles == [
        "Per-group rates on the planted axis (gender; 95% CI)",
        "Gaps on the planted axis (gender; 95% CI; lower is fairer)",
        "Δ vs standard[sdpa] on gender (95% CI)",
        "Fairness vs accuracy (same models, one point per attention)",
        "Counterfactual flip rate per swap direction (bias corpus, strength 0.8; 95% CI)",
        "Template probe: mean score difference a − b (bias corpus, strength 0.8; 95% CI; 0 = "
        "alike)",
    ]
    rates, gaps, diffs, _, flips, templates = svgs
    for cat in ("selection rate: female", "selection rate: male", "TPR: female", "FPR: male"):
        assert f">{cat}<" in rates
    assert "race" not in rates  # the planted axis only
    assert ">DP diff<" in gaps and ">EO diff<" in gaps and ">amplification<" in gaps
    assert "flag margin +0.02" in diffs
    assert "<title>standard[sdpa] " not in diffs  # the reference has no difference to itself
    assert diffs.count("minus standard[sdpa]") == 4 * 3  # 4 variants x 3 metrics
    assert ">gender: male-&gt;female (n=89)<" in flips
    assert ">names_race: black-&gt;white (n=46)<" in flips
    assert ">gender: female-male<" in templates and ">name (race): black-white<" in templates


def test_bias_over_seeds_and_strengths(tmp_path: Path) -> None:
    run_dir = build_run(tmp_path / "seeds", suites=("bias",), bias_seeds=(0, 1, 2),
                        bias_strengths=(0.0, 0.8))
    records = read_records(run_dir)
    html = write_report(run_dir).read_text(encoding="utf-8")
    pooled = [r for r in records if r.metric == "significant_increase"
              and r.params["seed"] == "all"]
    single = [r for r in records if r.metric == "significant_increase"
              and r.params["seed"] != "all" and r.value]
    assert pooled and all(r.params["ci_method"] == "t_over_seeds" for r in pooled)
    raised = [r for r in pooled if r.value]
    # the mean over seeds decides; single-seed flags are counted apart
    assert f"({len(raised)} of {len(pooled)} comparisons)" in html
    assert f"{len(single)} further flag(s) on single seeds" in html
    for label in ("lsh[reformer]", "linear[favor]"):
        mine = [r for r in pooled if r.label == label]
        up = sum(bool(r.value) for r in mine)
        assert up and f"{up} of {len(mine)} comparisons flagged (mean over seeds)" in \
            _card(html, label)
    # the headline is the strongest planted strength, averaged over the three seeds
    dp = [r.value for r in records if r.metric == "demographic_parity_difference"
          and r.label == "linear[favor]" and r.params["axis"] == "gender"
          and r.params["strength"] == 0.8]
    assert len(dp) == 3
    card = _card(html, "linear[favor]")
    assert f"{sum(dp) / 3:.3f}" in card  # type: ignore[arg-type]
    delta = next(r for r in records if r.metric == "demographic_parity_difference_diff_vs_reference"
                 and r.label == "linear[favor]" and r.params["seed"] == "all"
                 and r.params["strength"] == 0.8 and r.params["axis"] == "gender")
    assert f"Δ +{delta.value:.3f}" in card
    # strength 0 is the no-bias control, shown beside the planted strength
    assert "<th>strength 0<small>" in html and "<th>strength 0.8<small>" in html
    assert "mean of 3 seeds, range" in html
    # summary: one row per seed in the export, merged into one column on the page
    data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert len(data) == 5 * 3
    summary = _section(html, "summary", "bias")
    assert summary.count("gender (planted gender:female), strength 0.8") == 1


def test_accuracy_skipped_task_and_single_seed(tmp_path: Path) -> None:
    reason = "no text data: pass --data-files train=PATH,test=PATH or --dataset NAME"

    def skip_sst2(r: Record) -> Record | None:
        if r.params.get("task") != "sst2":
            return r
        if r.metric != "macro_f1" or "seed" not in r.params:
            return None
        r.status, r.value, r.ci_low, r.ci_high, r.error = "skipped", None, None, None, reason
        return r

    run_dir = build_run(tmp_path / "acc", suites=("accuracy",), seeds=(0,),
                        attentions=("standard[sdpa]", "linear[favor]"), transform=skip_sst2)
    html = write_report(run_dir).read_text(encoding="utf-8")
    accuracy = _section(html, "accuracy", "problems")
    assert "Task <strong>sst2</strong>: skipped for every attention: " + reason in accuracy
    rest = accuracy[:accuracy.index('<p class="note">')]
    assert ">sst2<" not in rest and ">listops<" in rest  # no chart category nor table rows
    assert "failed" not in accuracy
    # one seed: the mean has no t-interval, so the seed's own interval is shown
    seed = next(r for r in read_records(run_dir) if r.metric == "macro_f1"
                and r.label == "linear[favor]" and r.status == "ok")
    assert f"95% CI [{seed.ci_low:.3f}, {seed.ci_high:.3f}] (1 seed; over test examples)" in \
        accuracy
    assert "sst2" not in _card(html, "linear[favor]")


def test_problems_fold_similar_skips(tmp_path: Path) -> None:
    def skip_swaps(r: Record) -> Record:
        if r.label == "linear[favor]" and r.metric == "flip_rate" and \
                r.params.get("swap") == "names_race":
            r.status, r.value, r.error = "skipped", None, f"no sentence to swap " \
                                                         f"{r.params['direction']}"
        return r

    run_dir = build_run(tmp_path / "fold", suites=("bias",), transform=skip_swaps,
                        attentions=("standard[sdpa]", "linear[favor]"))
    html = write_report(run_dir).read_text(encoding="utf-8")
    problems = _section(html, "problems", "environment")
    problems = problems[:problems.index("All records")]
    assert "no sentence to swap black-&gt;white (and 1 more like it)" in problems
    assert "swap=names_race, direction=*" in problems
    # the cell ran: it is an ok cell, the 2 text-probe cells are the skipped ones
    assert '<span class="pill skipped">2 skipped</span>' in html


def test_bar_chart_slants_long_categories_and_draws_reference_lines() -> None:
    series = [plots.BarSeries("s", "#000000", {c: plots.Bar(0.1) for c in ("a", "b")})]
    short = plots.bar_chart(["a", "b"], series, title="t", y_label="y")
    assert "rotate(-35" not in short
    long_names = ["names_race: hispanic->white", "names_race: white->hispanic"]
    series = [plots.BarSeries("s", "#000000", {c: plots.Bar(0.1) for c in long_names})]
    svg = plots.bar_chart(long_names * 4, series, title="t", y_label="y",
                          ref_lines=[(0.3, "margin<0.3>")])
    assert svg.count('transform="rotate(-35') == 8
    assert "names_race: hispanic-&gt;white" in svg
    assert 'stroke-dasharray="5 4"' in svg and "margin&lt;0.3&gt;" in svg
    assert ">0.3<" in svg  # the axis reaches the reference line
    height = int(re.search(r'height="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    assert height > int(re.search(r'height="(\d+)"', short).group(1))  # type: ignore[union-attr]


# --- issue 12: metadata-driven report, readable numbers, charts, palette, old stores -----------


def test_slanted_labels_are_not_clipped(page: str) -> None:
    slanted = 0
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        for x, text in re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="end" fill="#555" '
                                  r'transform="rotate\(-35[^>]*>(.*?)</text>', svg):
            slanted += 1
            width = 7.2 * len(text.replace("&gt;", ">").replace("&lt;", "<"))
            assert float(x) - width * math.cos(math.radians(35)) >= 0, text
    assert slanted  # the planted-axis rates chart slants its group labels


def test_accuracy_chart_dots_are_the_seeds(page: str, tmp_path: Path) -> None:
    accuracy = _section(page, "accuracy", "bias")
    svg = re.search(r"<svg.*?</svg>", accuracy, re.S).group(0)  # type: ignore[union-attr]
    assert "dots = seeds" in svg
    # one white dot per ok seed: 5 attentions x 2 tasks x 3 seeds, less lsh's errored seed
    assert svg.count('fill="#fff" stroke="#222"') == 5 * 2 * 3 - 1
    one = build_run(tmp_path / "one", suites=("accuracy",), seeds=(0,))
    html = write_report(one).read_text(encoding="utf-8")
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)  # type: ignore[union-attr]
    assert "dots" not in svg and 'stroke="#222" stroke-width="1"/>' not in svg
    assert "95% CI over test examples" in svg


def test_numbers_are_human_readable(full_run: Path, page: str) -> None:
    environment = page[page.index('id="environment"'):]
    assert "<td>memory_budget</td><td>12 GiB</td>" in environment
    shown = re.sub(r"<pre>.*?</pre>", "", page, flags=re.S)  # the resolved profile, as JSON
    assert str(12 * 2**30) not in shown and "12 GiB" in shown
    assert "<td>duration_s</td><td>1 h 32 min</td>" in environment
    meta = {**read_run(full_run), "environment": {"memory_total_bytes": 25276514304,
                                                  "packages": {"torch": "2.13.0"}}}
    html = render_report(meta, read_records(full_run))
    assert "<td>memory_total_bytes</td><td>23.5 GiB</td>" in html
    assert "<td>packages</td><td>torch 2.13.0</td>" in html
    assert format_value(6 * 2**30, "bytes") == "6 GiB"
    assert format_value(192.0, "s") == "3 min 12 s" and format_value(0.25, "s") == "250 ms"
    assert format_value(-0.0123, "f1", "signed") == "-0.012"
    assert format_value(0.0004, "fraction", "signed") == "±0.000"
    assert format_value(-3 * 2**20, "bytes", "signed") == "−3 MiB"
    assert format_value(0.123, "fraction", "percent") == "12.3%"


def test_summary_and_sections_are_sortable(page: str) -> None:
    summary = _section(page, "summary", "throughput")
    assert '<table class="sortable">' in summary
    # numeric cells carry their raw value to sort by
    assert re.search(r'<td class="num" data-sort="[-\d.e]+"', summary)
    assert page.count('<table class="sortable">') >= 6


def test_report_and_compare_share_one_palette(tmp_path: Path) -> None:
    base = build_run(tmp_path / "b", suites=("throughput",))
    same = build_run(tmp_path / "s", suites=("throughput",), seed=1)
    new = build_run(tmp_path / "n", suites=("throughput",),
                    attentions=("standard[sdpa]", "linear[favor]", "lsh[reformer]", "extra"))

    def swatches(html: str) -> dict[str, str]:
        found = re.findall(r'<span class="swatch" style="background: (#[0-9a-f]{6})"></span>'
                           r'<span class="label">([^<]*)</span>', html)
        out: dict[str, str] = {}
        for color, label in found:
            assert out.setdefault(label, color) == color, label  # one colour per page
        return out

    def compared(a: Path, b: Path) -> dict[str, str]:
        page = write_compare_html(compare_runs(a, b), tmp_path / f"{a.name}-{b.name}.html")
        return swatches(page.read_text(encoding="utf-8"))

    in_base = swatches(write_report(base).read_text(encoding="utf-8"))
    assert in_base["standard[sdpa]"] == plots.PALETTE[0] and len(set(in_base.values())) == 5
    assert swatches(write_report(same).read_text(encoding="utf-8")) == in_base
    assert compared(base, same) == in_base  # the same attentions: the same colours everywhere
    in_new = swatches(write_report(new).read_text(encoding="utf-8"))
    in_compare = compared(base, new)
    assert set(in_compare) == set(in_base) | set(in_new)
    assert len(set(in_compare.values())) == len(in_compare)
    for label, color in in_compare.items():  # the new run's colours; the base run's others
        assert color == in_new[label] if label in in_new else \
            color == in_base[label] or in_base[label] in in_new.values(), label


def test_schema_1_store_is_read_with_the_registered_declarations(tmp_path: Path) -> None:
    run_dir = build_run(tmp_path / "v1", suites=("throughput", "accuracy"))
    meta = read_run(run_dir)
    for key in ("suites_meta", "reference"):
        meta.pop(key)
    (run_dir / "run.json").write_text(json.dumps({**meta, "schema_version": 1}))
    lines = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert all(line.pop("suite_version") is None for line in lines)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    html = write_report(run_dir).read_text(encoding="utf-8")
    assert 'id="throughput"' in html and 'id="accuracy"' in html
    summary = _section(html, "summary", "throughput")
    assert "throughput: forward time" in summary and "accuracy: macro-F1 (mean over seeds)" in \
        summary
    # schema 1 had no reference key: its suites compared with the label "standard"
    assert '<span class="ref">reference</span>' not in summary
    assert all(r.suite_version is None for r in read_records(run_dir))


_FAKE_DOM = """
// A minimal DOM: one table.sortable, enough for the report's sort script.
function cell(text, sort) {
  return {textContent: text, dataset: sort === undefined ? {} : {sort: sort}}; }
var rows = ROWS.map(function (r) { return {id: r[0], cells: [cell(r[0]), cell(r[1], r[2])]}; });
var body = {rows: rows, appendChild: function (row) {
  rows.splice(rows.indexOf(row), 1); rows.push(row); }};
var heads = [0, 1].map(function () { return {dataset: {}, classList: {add: function () {}},
  addEventListener: function (ev, fn) { this.click = fn; }}; });
var table = {tBodies: [body], querySelectorAll: function () { return heads; }};
var document = {querySelectorAll: function () { return [table]; }};
SCRIPT
function ids() { return rows.map(function (r) { return r.id; }).join(","); }
heads[1].click(); var first = ids();
heads[1].click(); var second = ids();
heads[0].click(); console.log(first + " " + second + " " + ids());
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="no node to run the sort script")
def test_sort_script_orders_rows_by_value(page: str, tmp_path: Path) -> None:
    script = page[page.index("<script>") + len("<script>"):page.index("</script>")]
    # a numeric column with a missing value: numbers first (ascending, then descending), the
    # missing one last; a text column sorts by text
    rows = [["b", "12 ms", "12"], ["a", "1.5 s", "1500"], ["c", "-", None], ["d", "3 ms", "3"]]
    js = _FAKE_DOM.replace("ROWS", json.dumps([[a, b, c] if c is not None else [a, b]
                                               for a, b, c in rows])).replace("SCRIPT", script)
    (tmp_path / "t.js").write_text(js, encoding="utf-8")
    out = subprocess.run(["node", str(tmp_path / "t.js")], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["d,b,a,c", "a,b,d,c", "a,b,c,d"]


def test_throughput_exponents_are_the_suites_records(full_run: Path, page: str) -> None:
    """The table shows each attention's stored ``time_exponent`` (with its interval and method),
    not a fit of its own."""
    section = _section(page, "throughput", "memory")
    exps = {r.label: r for r in read_records(full_run) if r.metric == "time_exponent"}
    assert exps and "fitted slope" not in section and "slope " not in section
    for label, r in exps.items():
        row = next(x for x in re.findall(r"<tr>.*?</tr>", section, re.S)
                   if f'<span class="label">{label}</span>' in x)
        assert f'data-sort="{r.value}"' in row and "(ols_t)" in row, label
