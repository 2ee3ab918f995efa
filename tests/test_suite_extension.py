"""Adding a suite takes 2 files: its module and its profile entry (tests/example_suite.py).

The suite below runs, appears in the HTML report (its own section, its headline, its column at
a glance) and in `harness compare`, without a line of report, compare or runner code knowing it.
"""

from __future__ import annotations

import json
from pathlib import Path

import example_suite
import pytest

from harness.gate import compare_runs, write_compare_html
from harness.report import write_report
from harness.run.profiles import ProfileError, profile_from_dict
from harness.run.runner import start_run
from harness.run.store import read_records, read_run
from harness.suites import base as suite_base


def _profile(offset: float = 0.0, **extra):
    # the profile entry: the second of the two files a new suite needs
    return profile_from_dict({
        "name": "toy", "attentions": [{"name": "standard"}, {"name": "linear"}],
        "suites": {"example": {"sizes": [4, 8], "offset": offset}}, **extra,
    }, source="toy.yaml")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("toy")
    base = start_run(_profile(), out_dir=out, run_id="base").run_dir
    slower = start_run(_profile(offset=100.0), out_dir=out, run_id="new").run_dir
    yield base, slower
    suite_base._SUITES.pop(example_suite.NAME, None)


def test_new_suite_runs_with_its_metadata(runs) -> None:
    base, _ = runs
    meta = read_run(base)
    assert meta["schema_version"] == 2 and meta["reference"] == "standard"
    declared = meta["suites_meta"]["example"]
    assert declared["version"] == 3 and declared["section"].endswith(":render_section")
    assert [m["name"] for m in declared["metrics"]] == ["toy_cost", "toy_score"]
    records = read_records(base)
    assert len(records) == 2 * 2 * 2
    assert {r.suite_version for r in records} == {3}  # stamped into every record


def test_new_suite_appears_in_the_report(runs) -> None:
    base, _ = runs
    html = write_report(base).read_text(encoding="utf-8")
    section = html[html.index('id="example"'):html.index('id="problems"')]
    assert "<h2>Example suite</h2>" in section and "toy cost" in section
    assert section.count('<span class="label">linear</span>') == 2  # two sizes
    assert '<a href="#example">Example</a>' in html
    verdict = html[html.index('id="verdict"'):html.index('id="summary"')]
    assert "<th>toy cost<small>largest size</small></th>" in verdict
    assert "The example suite ran." in verdict
    summary = json.loads((base / "summary.json").read_text(encoding="utf-8"))
    assert {r["metric"] for r in summary} == {"toy_cost"}  # the declared headline
    table = html[html.index('id="summary"'):html.index('id="example"')]
    assert "example: toy cost" in table and "lower is better" in table


def test_new_suite_is_compared(runs, tmp_path: Path) -> None:
    base, new = runs
    cmp = compare_runs(base, new)
    rows = [r for r in cmp.rows if r.suite == "example"]
    assert len(rows) == 8 and cmp.verdict == "fail"
    assert {r.metric for r in rows if r.status == "regression"} == {"toy_cost", "toy_score"}
    page = write_compare_html(cmp, tmp_path / "compare.html").read_text(encoding="utf-8")
    assert page.count("<td>example</td>") == 8


def test_generic_section_when_the_renderer_is_missing(runs, tmp_path: Path) -> None:
    base, _ = runs
    meta = read_run(base)
    meta["suites_meta"]["example"]["section"] = "no_such_module:render"
    (base / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    try:
        html = write_report(base).read_text(encoding="utf-8")
    finally:
        meta["suites_meta"]["example"]["section"] = "example_suite:render_section"
        (base / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    section = html[html.index('id="example"'):html.index('id="problems"')]
    assert "no_such_module:render is not available here" in section
    assert section.count("<tr>") == 1 + 8  # header + every record, by declared metric
    assert section.index("toy cost") < section.index("toy score")


def test_reference_must_be_planned() -> None:
    assert _profile(reference="linear").reference_label() == "linear"
    with pytest.raises(ProfileError, match="reference: 'standard\\[sdpa\\]' is not one of"):
        _profile(reference="standard[sdpa]")


def test_declarations_are_checked() -> None:
    from harness.suites import get_suite, list_suites

    for name in ("accuracy", "throughput", "memory", "bias"):
        suite = get_suite(name)
        heads = [m.name for m in suite.metrics if m.headline]
        assert heads == [suite.headline] and suite.version >= 1 and suite.section
    assert "example" not in list_suites() or get_suite("example").headline == "toy_cost"
    with pytest.raises(ValueError, match="format must be one of"):
        suite_base.MetricSpec("x", "x", format="bold")
    with pytest.raises(TypeError, match="one headline metric"):
        type("Two", (suite_base.Suite,), {"metrics": (
            suite_base.MetricSpec("a", "a", headline=True),
            suite_base.MetricSpec("b", "b", headline=True))})
    with pytest.raises(TypeError, match="declared twice"):
        type("Twice", (suite_base.Suite,), {"metrics": (
            suite_base.MetricSpec("a", "a"), suite_base.MetricSpec("a", "b"))})
