"""Adding a suite takes 2 files: its module and its profile entry (tests/example_suite.py).

The suite below runs, appears in the HTML report (its own section, its headline, its column at
a glance) and in `harness compare`, without a line of report, compare or runner code knowing it.
A suite from another package (examples/harness-example-suite, installed by pip) runs through the
command line on the process pool and on Ray the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
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


def _report_naming_section(run_dir: Path, section: str) -> str:
    """The report of ``run_dir`` written while its run.json names ``section`` as the example
    suite's renderer (restored afterwards)."""
    meta = read_run(run_dir)
    meta["suites_meta"]["example"]["section"] = section
    (run_dir / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    try:
        return write_report(run_dir).read_text(encoding="utf-8")
    finally:
        meta["suites_meta"]["example"]["section"] = "example_suite:render_section"
        (run_dir / "run.json").write_text(json.dumps(meta), encoding="utf-8")


def test_generic_section_when_the_renderer_is_missing(runs, tmp_path: Path) -> None:
    base, _ = runs
    html = _report_naming_section(base, "no_such_module:render")
    section = html[html.index('id="example"'):html.index('id="problems"')]
    assert "no_such_module:render is not imported" in section
    assert section.count("<tr>") == 1 + 8  # header + every record, by declared metric
    assert section.index("toy cost") < section.index("toy score")


def test_report_imports_no_section_a_run_file_alone_names(runs, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A run.json naming an importable module as a section does not get it imported: no suite
    registered here declares it; the suite's own declaration is still used."""
    base, _ = runs
    marker = tmp_path / "imported"
    (tmp_path / "planted_section_mod.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\ndef render(view):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    html = _report_naming_section(base, "planted_section_mod:render")
    assert not marker.exists()
    assert "planted_section_mod:render is not imported" in html
    assert "<h2>Example suite</h2>" in write_report(base).read_text(encoding="utf-8")


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


# ------------------------------------------------------------------ a suite from another package
REPO = Path(__file__).resolve().parents[1]
FIDELITY = REPO / "examples" / "harness-example-suite"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example suite package installed by pip into a folder of its own (the environment is
    not changed): its entry point (group harness.suites) is all that enrolls it."""
    pytest.importorskip("setuptools", reason="building the example package needs setuptools")
    root = tmp_path_factory.mktemp("fidelity")
    shutil.copytree(FIDELITY, root / "src", ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    site = root / "site"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(root / "src")],
        capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    return site


def _harness(site: Path, *args: str, timeout: float = 420) -> subprocess.CompletedProcess:
    """``harness ARGS`` in a fresh process that sees the installed package (as do its workers:
    pool processes and Ray's inherit the environment)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
           "RAY_ADDRESS": "local"}  # a Ray of its own, never another cluster on this machine
    proc = subprocess.Popen([sys.executable, "-c", "from harness.cli import app; app()", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers (a local Ray included)
        out, _ = proc.communicate()
        pytest.fail(f"harness {' '.join(args)} ran past {timeout} s:\n{out[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def _check_installed_run(site: Path, out: Path, executor: str, *options: str) -> None:
    done = _harness(site, "run", "fidelity", "-p", str(FIDELITY / "fidelity.yaml"), "--out",
                    str(out), "--executor", executor, "--no-progress", *options)
    assert done.returncode == 0, done.stdout[-3000:]
    run_dir = (out / "latest").resolve()
    records = read_records(run_dir)
    assert len(records) == 3 * 2 * 2 and {r.status for r in records} == {"ok"}
    error = {(r.attention, r.params["seq_len"]): r.value for r in records
             if r.metric == "max_abs_error"}
    assert error["standard", 1024] < 1e-5 < error["linear", 1024]  # the suite really measures
    meta = read_run(run_dir)
    assert meta["executor"]["name"] == executor
    (plugin,) = [p for p in meta["plugins"] if p["suites"]]
    assert (plugin["entry_point"], plugin["origin"], plugin["version"]) == (
        "fidelity", "harness-fidelity", "0.1.0")
    html = (run_dir / "index.html").read_text(encoding="utf-8")
    section = html[html.index('id="fidelity"'):]
    assert "max abs error vs softmax" in section and "cosine vs softmax" in section


@pytest.mark.slow
def test_installed_suite_runs_on_the_pool_and_appears_in_the_report(installed, tmp_path):
    _check_installed_run(installed, tmp_path / "runs", "pool", "--workers", "1")


@pytest.mark.slow
@pytest.mark.ray
def test_installed_suite_runs_on_ray(installed, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    _check_installed_run(installed, tmp_path / "runs", "ray")
