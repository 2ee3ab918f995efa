"""The report shows the suites' verdict records: no-signal tasks, the no-attention baseline,
bias flags over seeds with their p-values, complexity claims as bounds, time exponents, and
how each interval was made. Each check also runs on the old rendering's output shape (a
planted fault) to show that it can fail."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from harness.records import Record
from harness.report import render_report
from harness.report.sections import accuracy, bias, memory, throughput
from harness.report.view import RunView, Section
from harness.suites.base import suites_meta

ATTENTIONS = [{"label": "standard", "name": "standard", "options": {}},
              {"label": "linear", "name": "linear", "options": {}}]


def _meta(suite: str, **params: Any) -> dict[str, Any]:
    return {"run_id": "r", "status": "finished", "attentions": ATTENTIONS,
            "reference": "standard", "suites": [suite], "suites_meta": suites_meta([suite]),
            "profile": {"name": "t", "suites": {suite: params}}}


def _rec(suite: str, label: str, metric: str, params: dict[str, Any], **kw: Any) -> Record:
    attention = "none" if label == "no-attention" else label
    return Record(suite=suite, attention=attention, options={}, params=params, metric=metric,
                  label=label, **kw)


def _section(render: Any, suite: str, records: list[Record], **params: Any) -> Section:
    section = render(RunView(_meta(suite, **params), records))
    assert section is not None
    return section


def _row(html: str, *needles: str) -> str:
    """The one table row that holds every needle."""
    rows = [r for r in re.findall(r"<tr.*?</tr>", html, re.S) if all(n in r for n in needles)]
    assert len(rows) == 1, (needles, len(rows))
    return rows[0]


# ---------------------------------------------------------------------------------------------
# accuracy

NO_SIGNAL = ("no_signal: the reference's macro-F1 lower 95% bound 0.310 does not exceed chance"
             " 0.330 (majority class / uniform guess) on recall")


def _accuracy(signal: bool = False) -> list[Record]:
    out = []
    for label, f1 in (("standard", 0.31), ("linear", 0.2), ("no-attention", 0.3)):
        p = {"task": "recall", "seed": 0, "config": "c"}
        if label == "no-attention":
            p["ablation"] = "no_token_mixing"
        out.append(_rec("accuracy", label, "macro_f1", p, value=f1, ci_low=f1 - 0.02,
                        ci_high=f1 + 0.02, interval="ci95", unit="f1", n=40,
                        ci_method="bootstrap"))
    s = {"task": "recall", "config": "c"}
    verdict: dict[str, Any] = {} if signal else {"status": "skipped", "error": NO_SIGNAL}
    out += [
        _rec("accuracy", "standard", "chance_macro_f1", s, value=0.33, ci_low=0.29,
             ci_high=0.37, interval="ci95", unit="f1", n=40, ci_method="bootstrap"),
        _rec("accuracy", "standard", "task_signal", s, value=float(signal), unit="flag", n=1,
             error=None if signal else NO_SIGNAL),
        _rec("accuracy", "linear", "macro_f1_diff_vs_reference", s, value=-0.11, ci_low=-0.15,
             ci_high=-0.07, interval="ci95", unit="f1", n=40, ci_method="paired_bootstrap",
             **verdict),
        _rec("accuracy", "linear", "paired_p_value", s, value=0.001, unit="p", n=40, **verdict),
        _rec("accuracy", "standard", "macro_f1_gain_vs_no_attention", s, value=0.0123,
             ci_low=0.002, ci_high=0.021, interval="ci95", unit="f1", n=40,
             ci_method="paired_bootstrap", **verdict),
        _rec("accuracy", "linear", "macro_f1_gain_vs_no_attention", s, value=-0.0987,
             ci_low=-0.14, ci_high=-0.06, interval="ci95", unit="f1", n=40,
             ci_method="paired_bootstrap", **verdict),
    ]
    return out


def test_accuracy_no_signal_banner_and_greyed_comparisons() -> None:
    section = _section(accuracy.render, "accuracy", _accuracy(signal=False))
    html = str(section.html)
    assert 'class="no-signal"' in html and "recall" in html
    assert NO_SIGNAL.replace("'", "&#39;") in html  # the record's own reason
    row = _row(html, ">linear<", "-0.110")
    assert 'class="num muted"' in row and "no signal: not a finding" in row
    assert not section.findings  # a significant drop on a task that did not learn: no finding
    assert "(no signal)" in section.glance.cells["linear"].text
    # the same drop on a task with signal is a finding and is not greyed out
    learnt = _section(accuracy.render, "accuracy", _accuracy(signal=True))
    assert [tone for tone, _ in learnt.findings] == ["warn"]
    assert 'class="no-signal"' not in str(learnt.html)
    assert "muted" not in _row(str(learnt.html), ">linear<", "-0.110")


def test_accuracy_chance_gain_column_and_baseline_row() -> None:
    section = _section(accuracy.render, "accuracy", _accuracy(signal=True))
    html = str(section.html)
    chance = _row(html, '<td>recall</td><td class="num" data-sort="0.33"')
    assert "95% CI [0.290, 0.370]" in chance and "percentile bootstrap" in chance
    assert "Δ macro-F1 vs no attention" in html
    assert "+0.0123" in _row(html, ">standard<", "0.310") or "0.0123" in html
    assert "-0.0987" in _row(html, ">linear<", "-0.110")
    base = _row(html, ">no-attention<")
    assert 'class="baseline"' in base and "baseline: no token mixing" in base
    assert "no-attention" not in section.glance.cells  # a baseline row, not an attention
    assert html.index(">no-attention<") > html.index(">linear<")  # after the attentions


# ---------------------------------------------------------------------------------------------
# bias

ONE_SEED = ("a verdict on the attention needs two or more seeds (one seed's interval covers test"
            " sampling, not training randomness); see increase_p_adjusted for this model against"
            " standard's")


def _bias(seeds: tuple[Any, ...]) -> list[Record]:
    out = []
    base = {"probe": "controlled", "planted": "gender:female", "axis": "gender",
            "strength": 0.8}
    for seed in (0,):
        for label, dp in (("standard", 0.3), ("linear", 0.36)):
            out.append(_rec("bias", label, "demographic_parity_difference",
                            {**base, "seed": seed}, value=dp, ci_low=dp - 0.03,
                            ci_high=dp + 0.03, interval="ci95", unit="fraction", n=800,
                            ci_method="bootstrap"))
    for seed in seeds:
        where = {**base, "seed": seed,
                 "ci_method": "t_over_seeds" if seed == "all" else "paired_bootstrap"}
        flag = {**where, "metric": "demographic_parity_difference"}
        out += [
            _rec("bias", "linear", "demographic_parity_difference_diff_vs_reference", where,
                 value=0.06, ci_low=0.03, ci_high=0.09, interval="ci95", n=800,
                 ci_method="paired_bootstrap"),
            _rec("bias", "linear", "increase_p_value", flag, value=0.00417, unit="p", n=800),
            _rec("bias", "linear", "increase_p_adjusted", flag, value=0.0291, unit="p", n=7),
        ]
        if seed == "all":
            out.append(_rec("bias", "linear", "significant_increase", flag, value=1.0,
                            unit="flag", n=3))
    if "all" not in seeds:
        out.append(_rec("bias", "linear", "significant_increase",
                        {"probe": "controlled", "planted": "gender:female", "strength": 0.8,
                         "seed": "all"}, unit="flag", status="skipped", error=ONE_SEED))
    return out


def test_bias_one_seed_flag_is_not_judged_with_its_reason() -> None:
    section = _section(bias.render, "bias", _bias((0,)), multiplicity="holm", alpha=0.05)
    html = str(section.html)
    row = _row(html, ">linear<", "0.360")
    assert "not judged" in row and ONE_SEED.replace("'", "&#39;") in row
    assert "0.00417" in row and "0.0291" in row  # raw and adjusted p-values
    assert "Holm over a family of 7" in row
    assert "<strong>Holm</strong> within each attention's family" in html
    assert "linear: not judged" in html
    assert not [f for f in section.findings if "linear" in f[1]]


def test_bias_flag_over_seeds_lists_p_values() -> None:
    section = _section(bias.render, "bias", _bias((0, 1, "all")), multiplicity="bh")
    html = str(section.html)
    flags = html[html.index('id="bias-flags"'):]
    flag = _row(flags, ">linear<", "headline")
    assert "0.00417" in flag and "0.0291" in flag and "Benjamini-Hochberg over a family of 7" \
        in flag
    assert "not judged" not in html
    assert "<strong>Benjamini-Hochberg</strong>" in html


# ---------------------------------------------------------------------------------------------
# memory

def _memory(match: float | None, const: float = 0.0, why: str | None = None) -> list[Record]:
    out = [_rec("memory", "linear", "peak_bytes", {"mode": "forward", "seq_len": n, "batch": 1},
                value=1000.0 * n, unit="bytes", n=1) for n in (256, 512, 1024)]
    s = {"mode": "forward", "batch": 1}
    out += [
        _rec("memory", "linear", "memory_exponent", s, value=1.04, ci_low=0.71, ci_high=1.37,
             stderr=0.05, interval="ci95", unit="exponent", n=3, ci_method="ols_t"),
        _rec("memory", "linear", "claimed_exponent", s, value=1.0, unit="exponent"),
        _rec("memory", "linear", "exponent_matches_claim", s, value=match, unit="bool", n=3,
             error=why),
        _rec("memory", "linear", "constant_dominated", s, value=const, unit="flag", n=3,
             error="measured 0.10 [0.05, 0.15] is well below the claimed N^1" if const else None),
    ]
    return out


def test_memory_inconclusive_claim_shows_its_reason() -> None:
    why = "measured 1.04 [0.71, 1.37] (95%, t, 3 lengths) straddles the claimed N^1 + 0.15"
    section = _section(memory.render, "memory", _memory(None, why=why))
    row = _row(str(section.html), ">linear<", "1.04")
    assert "inconclusive" in row and why in row
    assert "95% CI [0.71, 1.37]" in row and "t-interval (ols_t)" in row
    assert not section.findings
    assert "(inconclusive)" in section.glance.cells["linear"].text


def test_memory_constant_dominated_is_a_note_not_a_caveat() -> None:
    section = _section(memory.render, "memory", _memory(1.0, const=1.0))
    html = str(section.html)
    assert "Note (informational, not a caveat): linear (forward)" in html
    assert "well below the claimed N^1" in html
    assert not section.findings


def test_memory_violated_claim_wording_treats_the_claim_as_a_bound() -> None:
    section = _section(memory.render, "memory", _memory(0.0, why="exceeds the claimed N^1"))
    [(tone, text)] = section.findings
    assert tone == "warn" and "above the claimed bound N^1" in text
    assert "not as the claimed" not in text
    assert "95% CI [0.71, 1.37]" in text


# ---------------------------------------------------------------------------------------------
# throughput

def _throughput(exponent: dict[str, Any]) -> list[Record]:
    out = []
    for label, scale in (("standard", 1.0), ("linear", 2.0)):
        for n, ms in ((256, 2.0), (512, 1.5), (1024, 1.2)):  # falling: a fit would be negative
            out.append(_rec("throughput", label, "forward_ms",
                            {"kind": "attention", "seq_len": n, "batch": 4},
                            value=ms * scale, ci_low=ms * scale * 0.9, ci_high=ms * scale * 1.1,
                            interval="iqr", unit="ms", n=10))
    out.append(_rec("throughput", "linear", "time_exponent",
                    {"kind": "exponent", "pass": "forward", "batch": 4}, unit="exponent",
                    **exponent))
    return out


def test_throughput_uses_the_suites_time_exponent() -> None:
    note = "constant-dominated below N=512: fitted over [512, 1024]"
    section = _section(throughput.render, "throughput", _throughput(
        {"value": 1.234, "ci_low": 0.9, "ci_high": 1.5, "stderr": 0.02, "interval": "ci95",
         "n": 2, "ci_method": "ols_t", "error": note}))
    html = str(section.html)
    row = _row(html, "<span class=\"label\">linear")
    assert "1.23" in row and "95% CI [0.90, 1.50]" in row and note in row
    assert "t-interval (ols_t)" in row
    assert "exponent 1.23" in html  # the chart legend
    assert not hasattr(throughput, "loglog_slope")  # the report fits nothing itself
    # no time_exponent record for standard: no number, and never the report's own (negative) fit
    std = _row(html, "<span class=\"label\">standard")
    assert not re.search(r">\s*-0\.\d", std)


def test_throughput_skipped_or_negative_exponent_is_never_a_bare_slope() -> None:
    why = "constant-dominated at these lengths (256-1024): time grows slower than N^0.1"
    html = str(_section(throughput.render, "throughput", _throughput(
        {"status": "skipped", "n": 1, "error": why})).html)
    row = _row(html, "<span class=\"label\">linear")
    assert "no exponent" in row and why in row
    old = str(_section(throughput.render, "throughput", _throughput(
        {"value": -0.37, "ci_low": -0.5, "ci_high": -0.2, "interval": "ci95", "n": 3,
         "ci_method": "ols_t"})).html)
    row = _row(old, "<span class=\"label\">linear")
    assert "no growth" in row and "-0.37" not in row.split("<span class=\"sub\">")[0]
    assert "slope -0.37" not in old and "exponent -0.37" not in old


# ---------------------------------------------------------------------------------------------
# interval methods, everywhere

def test_every_shown_interval_names_its_method() -> None:
    page = render_report({**_meta("accuracy"), "suites": ["accuracy", "memory"],
                          "suites_meta": suites_meta(["accuracy", "memory"])},
                         _accuracy(signal=True) + _memory(1.0))
    page = page[:page.index('<section id="problems">')]  # the sections and the summary table
    cells = re.findall(r"<td[^>]*>[^<]*<span class=\"unc\">[^<]*95% CI[^<]*</span>", page)
    assert cells
    for cell in cells:
        assert re.search(r'title="[^"]*interval: [^"]+"', cell), cell
    assert "percentile bootstrap (bootstrap)" in page
    assert "paired percentile bootstrap on the same test examples" in page


def _written_metrics_undeclared(records: list[Record], meta: dict[str, Any]) -> set[tuple[str,
                                                                                         str]]:
    declared = {(s, m["name"]) for s, d in meta.items() for m in d["metrics"]}
    return {(r.suite, r.metric) for r in records if r.metric != "cell_status"} - declared


def test_undeclared_metric_check_fires_on_a_planted_metric() -> None:
    meta = suites_meta(["throughput"])
    assert not _written_metrics_undeclared(
        [_rec("throughput", "linear", "time_exponent", {}, value=1.0)], meta)
    assert _written_metrics_undeclared(
        [_rec("throughput", "linear", "time_slope", {}, value=1.0)], meta) == \
        {("throughput", "time_slope")}


# ---------------------------------------------------------------------------------------------
# every metric a quick run writes is declared

_TRAIN = {"steps": 4, "batch_size": 16, "eval_every": 2, "hidden_size": 16, "num_layers": 1,
          "num_heads": 2, "ffn_size": 32}
QUICK = {
    "name": "tiny-all", "seeds": [0], "device": "cpu", "threads": 1, "memory_budget": "2GiB",
    "attentions": [{"name": "standard"}, {"name": "linear"}],
    "suites": {
        "throughput": {"seq_lens": [32, 64, 128], "heads": 2, "head_dim": 8,
                       "min_run_time": 0.01, "warmup": 0,
                       "model": {"seq_lens": [16], "batch": 2, "hidden_size": 16,
                                 "num_layers": 1, "num_heads": 2}},
        "memory": {"seq_lens": [128, 256, 512], "heads": 2, "head_dim": 8,
                   "modes": ["forward"]},
        "accuracy": {"tasks": [{"name": "recall", "params": {
            "n_train": 48, "n_val": 16, "n_test": 32, "seq_len": 24, "n_pairs": 4,
            "n_queries": 2, "num_keys": 12, "num_values": 4}}],
            "text": None, "train": _TRAIN, "n_boot": 20, "baseline": True},
        "bias": {"corpus": {"n_train": 160, "n_val": 40, "n_test": 80}, "train": _TRAIN,
                 "audit_axes": ["gender"], "swaps": ["gender"], "template_axes": ["gender"],
                 "n_boot": 20, "text": None},
    },
}


@pytest.mark.slow
def test_every_metric_a_quick_run_writes_is_declared(tmp_path) -> None:
    from harness.run.profiles import profile_from_dict
    from harness.run.runner import start_run

    outcome = start_run(profile_from_dict(QUICK), out_dir=tmp_path)
    written = {r.metric for r in outcome.records}
    assert {"time_exponent", "memory_exponent", "constant_dominated", "task_signal",
            "chance_macro_f1", "macro_f1_gain_vs_no_attention", "increase_p_adjusted",
            "significant_increase"} <= written  # the run reached every summary
    meta = suites_meta(list(QUICK["suites"]))
    assert _written_metrics_undeclared(outcome.records, meta) == set()


# ---------------------------------------------------------------------------------------------
# the page around the sections: verdict cards, the all-records appendix


def _page_parts(records: list[Record]) -> tuple[str, str]:
    """The verdict block and the "All records" appendix of the full page."""
    page = render_report(_meta("accuracy"), records)
    verdict = page[page.index('id="verdict"'):page.index('id="summary"')]
    return verdict, page[page.index("All records"):]


def test_verdict_cards_leave_out_the_no_attention_baseline() -> None:
    verdict, _ = _page_parts(_accuracy(signal=True))
    assert ">standard<" in verdict and ">linear<" in verdict
    assert ">no-attention<" not in verdict  # a baseline row of the accuracy section only
    # a label of a real attention that merely reads like one still gets its card
    renamed = [r if r.attention != "none" else replace(r, attention="linear")
               for r in _accuracy(signal=True)]
    verdict, _ = _page_parts(renamed)
    assert ">no-attention<" in verdict


def test_all_records_appendix_names_each_interval_method() -> None:
    _, appendix = _page_parts(_accuracy(signal=True))
    chance = _row(appendix, "<td>chance_macro_f1</td>")
    assert "interval: percentile bootstrap (bootstrap)" in chance
    diff = _row(appendix, "<td>macro_f1_diff_vs_reference</td>")
    assert "interval: paired percentile bootstrap" in diff
    # a record without its method says so rather than passing in silence
    bare = [r if r.metric != "chance_macro_f1" else replace(r, ci_method=None)
            for r in _accuracy(signal=True)]
    _, appendix = _page_parts(bare)
    assert "method not recorded" in _row(appendix, "<td>chance_macro_f1</td>")
