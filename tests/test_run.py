"""Runner, profiles, results store, CLI end to end, resume after kill -9, memory oom path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.records import Cell, Record
from harness.run.profiles import ProfileError, load_profile, parse_bytes, profile_from_dict
from harness.run.runner import plan_run, start_run
from harness.run.store import ResultsStore, StoreError, read_records, read_run
from harness.suites import RunContext, get_suite

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny",
    "seeds": [0],
    "device": "cpu",
    "threads": 1,
    "memory_budget": "2GiB",
    "attentions": [
        {"name": "standard"},
        {"name": "standard", "options": {"backend": "eager"}},
        {"name": "linear"},
    ],
    "suites": {
        "throughput": {
            "seq_lens": [32, 64],
            "heads": 2,
            "head_dim": 8,
            "min_run_time": 0.01,
            "warmup": 0,
            "model": {"seq_lens": [16], "batch": 2, "hidden_size": 16, "num_layers": 1,
                      "num_heads": 2},
        },
        "memory": {"seq_lens": [128, 256], "heads": 2, "head_dim": 8, "modes": ["forward"]},
    },
}


def write_profile(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_profiles_validate():
    for name in ("quick", "release"):
        profile = load_profile(name)
        assert {"throughput", "memory"} <= set(profile.suites)
        labels = [s.label for s in profile.attention_specs()]
        assert "standard[eager]" in labels and "standard" in labels


def test_parse_bytes():
    assert parse_bytes("6GiB") == 6 * 2**30
    assert parse_bytes("512 MB") == 512 * 2**20
    assert parse_bytes(1e9) == 10**9
    for bad in ("-1GB", "lots", 0):
        with pytest.raises(ValueError):
            parse_bytes(bad)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["suites"]["throughput"].update(seq_lenz=[1]), r"suites\.throughput\.seq_lenz"),
        (lambda d: d["suites"]["throughput"].update(seq_lens=[-4]), r"seq_lens\.0"),
        (lambda d: d["suites"].update(speed={}), r"unknown suite; available: .*throughput"),
        (lambda d: d["attentions"].append({"name": "fancy"}), r"unknown attention 'fancy'"),
        (lambda d: d.update(devise="cpu"), r"devise: unknown key; allowed keys here: .*device"),
        (lambda d: d["attentions"].append({"name": "standard", "options": {"backend": "x"}}),
         r"backend must be one of"),
    ],
)
def test_bad_profiles_name_file_key_and_allowed_values(tmp_path, change, expected):
    data = json.loads(json.dumps(TINY))
    change(data)
    path = write_profile(tmp_path / "bad.yaml", data)
    with pytest.raises(ProfileError, match=expected) as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_bad_profile_via_cli_exits_2_and_runs_nothing(tmp_path):
    data = json.loads(json.dumps(TINY))
    data["suites"]["memory"]["seq_lens"] = [0]
    path = write_profile(tmp_path / "bad.yaml", data)
    result = CliRunner().invoke(app, ["run", "--profile", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "seq_lens" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_unknown_attention_and_suite_exit_2(tmp_path):
    path = write_profile(tmp_path / "p.yaml", TINY)
    runner = CliRunner()
    out = runner.invoke(app, ["run", "--profile", str(path), "-a", "nope", "--out", str(tmp_path)])
    assert out.exit_code == 2 and "choose from" in out.output
    out = runner.invoke(app, ["run", "speed", "--profile", str(path), "--out", str(tmp_path)])
    assert out.exit_code == 2 and "unknown suite" in out.output


def test_plan_is_suite_x_attention_x_params():
    profile = profile_from_dict(TINY)
    planned = plan_run(profile)
    by_suite = Counter(p.suite for p in planned)
    assert by_suite["throughput"] == 3 * (2 + 1)
    assert by_suite["memory"] == 3 * 2
    assert len({p.cell.id for p in planned}) == len(planned)


def test_cli_end_to_end(tmp_path):
    path = write_profile(tmp_path / "p.yaml", TINY)
    out_dir = tmp_path / "reports"
    result = CliRunner().invoke(
        app, ["run", "--profile", str(path), "--out", str(out_dir), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    latest = out_dir / "latest"
    assert latest.exists()
    run_dir = latest.resolve()
    meta = read_run(run_dir)
    assert meta["status"] == "finished"
    assert meta["environment"]["packages"]["torch"]
    records = read_records(run_dir)
    metrics = Counter(r.metric for r in records)
    assert metrics["forward_ms"] == 6 and metrics["peak_bytes"] == 6
    assert metrics["train_steps_per_s"] == 3 and metrics["memory_exponent"] == 3
    assert metrics["crossover_seq_len"] == 2
    fwd = [r for r in records if r.metric == "forward_ms"]
    assert all(r.value > 0 and r.ci_low <= r.value <= r.ci_high and r.n >= 1 for r in fwd)
    assert all(r.higher_is_better is False and r.interval == "iqr" for r in fwd)
    assert (run_dir / "index.html").is_file()
    assert "results:" in result.output and "report:" in result.output


def test_failing_cell_is_recorded_and_run_goes_on(tmp_path, monkeypatch):
    profile = profile_from_dict(TINY)
    suite = get_suite("memory")
    original = suite.run_cell

    def flaky(cell, params, ctx):
        if cell.label == "linear":
            raise RuntimeError("planted failure")
        return original(cell, params, ctx)

    monkeypatch.setattr(suite, "run_cell", flaky)
    outcome = start_run(profile, suites=["memory"], out_dir=tmp_path, argv=["test"])
    assert outcome.exit_code == 1
    errors = [r for r in outcome.records if r.status == "error"]
    assert len(errors) == 2 and all("planted failure" in r.error for r in errors)
    assert sum(r.metric == "peak_bytes" and r.status == "ok" for r in outcome.records) == 4
    assert read_run(outcome.run_dir)["status"] == "failed"


def test_memory_budget_turns_cells_into_oom_and_stops_the_sweep(tmp_path):
    data = json.loads(json.dumps(TINY))
    data["memory_budget"] = "8MiB"
    data["attentions"] = [{"name": "standard", "options": {"backend": "eager"}}]
    data["suites"]["memory"]["seq_lens"] = [128, 2048, 4096]
    outcome = start_run(profile_from_dict(data), suites=["memory"], out_dir=tmp_path, argv=["t"])
    assert outcome.exit_code == 0
    cells = {r.params["seq_len"]: r for r in outcome.records if r.metric in ("peak_bytes",
                                                                           "cell_status")}
    assert cells[128].status == "ok"
    assert cells[2048].status == "oom"  # 2 heads x 2048^2 x 4 B x >= 2 = 64 MiB > 8 MiB
    assert cells[4096].status == "skipped" and "first oom" in cells[4096].error


def test_memory_exponent_fit_recovers_a_known_slope():
    suite = get_suite("memory")
    params = suite.Params(seq_lens=[1024, 2048, 4096, 8192])
    records = []
    for label, name, opts, slope in (("standard[eager]", "standard", {"backend": "eager"}, 2.0),
                                     ("linear", "linear", {}, 1.0)):
        for n in params.seq_lens:
            cell = Cell("memory", name, opts, {"mode": "forward", "seq_len": n, "batch": 1}, label)
            records.append(Record.for_cell(cell, "peak_bytes", value=7.0 * n**slope))
    out = {(r.label, r.metric): r for r in suite.summarize(records, params, RunContext())}
    assert out[("standard[eager]", "memory_exponent")].value == pytest.approx(2.0, abs=1e-9)
    assert out[("linear", "memory_exponent")].value == pytest.approx(1.0, abs=1e-9)
    assert out[("linear", "exponent_matches_claim")].value == 1.0
    assert out[("linear", "max_seq_len_under_budget")].value == 8192


def test_memory_claims_are_upper_bounds():
    """O(N^2) measured as N^2 holds; N^0.5 under an O(N^2) claim holds but is constant-dominated
    (not a violated claim); N^2 under O(N) is violated; a noisy fit straddling the bound is
    inconclusive (no verdict)."""
    suite = get_suite("memory")
    params = suite.Params(seq_lens=[1024, 2048, 4096, 8192], exponent_tolerance=0.2)
    cases = {"exact": ("standard", {"backend": "eager"}, [2.0, 2.0, 2.0]),
             "flat": ("standard", {"backend": "eager"}, [0.5, 0.5, 0.5]),
             "over": ("linear", {}, [2.0, 2.0, 2.0]),
             "noisy": ("linear", {}, [0.2, 2.6, 0.4])}
    records = []
    for label, (name, opts, steps) in cases.items():
        value = 1e6
        for n, step in zip(params.seq_lens, [0.0, *steps], strict=True):
            value *= 2**step
            cell = Cell("memory", name, opts, {"mode": "forward", "seq_len": n, "batch": 1}, label)
            records.append(Record.for_cell(cell, "peak_bytes", value=value))
    out = {(r.label, r.metric): r for r in suite.summarize(records, params, RunContext())}

    def verdict(label: str) -> tuple[float | None, float]:
        return (out[(label, "exponent_matches_claim")].value,
                out[(label, "constant_dominated")].value)

    assert verdict("exact") == (1.0, 0.0)
    assert verdict("flat") == (1.0, 1.0) and "constant-dominated" in \
        out[("flat", "constant_dominated")].error
    assert verdict("over") == (0.0, 0.0) and "exceeds" in out[("over",
                                                                "exponent_matches_claim")].error
    assert verdict("noisy")[0] is None and "straddles" in \
        out[("noisy", "exponent_matches_claim")].error
    exp = out[("noisy", "memory_exponent")]
    assert exp.ci_method == "ols_t" and exp.n == 4 and exp.interval == "ci95"


def test_time_exponent_skips_constant_dominated_lengths_and_never_shows_a_bare_negative():
    suite = get_suite("throughput")
    params = suite.Params(seq_lens=[256, 512, 1024, 2048, 4096])
    cases = {"quadratic": [1.0, 1.05, 4.2, 16.8, 67.0],  # flat until 512, then N^2
             "flat": [1.0, 1.1, 1.0, 1.05, 1.1],  # fixed costs throughout
             "noisy": [1.0, 0.5, 0.7, 0.6, 0.65]}
    records = []
    for label, times in cases.items():
        for n, t in zip(params.seq_lens, times, strict=True):
            cell = Cell("throughput", "standard", {}, {"kind": "attention", "seq_len": n,
                                                      "batch": 1}, label)
            records.append(Record.for_cell(cell, "forward_ms", value=t))
    out = {r.label: r for r in suite.summarize(records, params, RunContext())
           if r.metric == "time_exponent"}
    quad = out["quadratic"]
    assert quad.status == "ok" and quad.value == pytest.approx(2.0, abs=0.02)
    assert quad.n == 4 and quad.ci_method == "ols_t" and "N=512" in quad.error
    for label in ("flat", "noisy"):
        assert out[label].status == "skipped" and out[label].value is None
    assert "constant-dominated" in out["flat"].error


def test_list_shows_each_configurations_memory_claim():
    """`harness list` reads the same claim as the memory suite and the report."""
    from harness.attention import attention_class
    from harness.cli import memory_claim

    standard = attention_class("standard")
    assert memory_claim("standard") == standard().claimed_memory[0]
    assert "O(N)" in memory_claim("standard")  # sdpa by default: not the class's O(N^2)
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    assert "fused SDPA" in result.output


def test_store_drops_torn_and_incomplete_cells(tmp_path):
    store = ResultsStore.create(tmp_path / "run", {"run_id": "x"})
    a = Cell("memory", "standard", {}, {"seq_len": 1})
    b = Cell("memory", "standard", {}, {"seq_len": 2})
    store.write_cell(a, [Record.for_cell(a, "m1", value=1), Record.for_cell(a, "m2", value=2)])
    store.write_cell(b, [Record.for_cell(b, "m1", value=3), Record.for_cell(b, "m2", value=4)])
    lines = store.results_path.read_text().splitlines(keepends=True)
    # Simulate a kill in the middle of cell b's write: one full line and half of the next.
    store.results_path.write_text("".join(lines[:3]) + lines[3][:10])
    reopened = ResultsStore.open(tmp_path / "run")
    assert reopened.is_done(a) and not reopened.is_done(b)
    assert [r.metric for r in read_records(tmp_path / "run")] == ["m1", "m2"]


def test_store_rejects_corrupt_and_foreign_schema(tmp_path):
    run = tmp_path / "run"
    ResultsStore.create(run, {"run_id": "x"})
    (run / "results.jsonl").write_text('{"suite": "x"\n{"also": broken}\n')
    with pytest.raises(StoreError, match="corrupt record"):
        read_records(run)
    (run / "run.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(StoreError, match="schema_version 99"):
        read_run(run)
    with pytest.raises(StoreError, match="not found"):
        read_run(tmp_path / "missing")
    with pytest.raises(StoreError, match="already holds results"):
        ResultsStore.create(run, {})


@pytest.mark.slow
def test_resume_after_kill_9_loses_nothing_and_duplicates_nothing(tmp_path):
    data = json.loads(json.dumps(TINY))
    data["suites"] = {"throughput": {**TINY["suites"]["throughput"],
                                     "seq_lens": [16, 24, 32, 40, 48, 56, 64, 72],
                                     "min_run_time": 0.05, "model": None}}
    path = write_profile(tmp_path / "p.yaml", data)
    out_dir = tmp_path / "reports"
    cmd = [sys.executable, "-m", "harness.cli", "run", "--profile", str(path), "--out",
           str(out_dir), "--no-progress", "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    results = None
    deadline = time.time() + 120
    while time.time() < deadline:
        found = list(out_dir.glob("*/results.jsonl"))
        if found and found[0].read_text().count("\n") >= 3 * 5:
            results = found[0]
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert results is not None, "the run never wrote records"
    before = {r.cell for r in read_records(results.parent)}
    assert 0 < len(before) < 24
    assert read_run(results.parent)["status"] == "running"

    resumed = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--resume", str(results.parent),
         "--no-progress", "--no-report"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    records = read_records(results.parent)
    cells = Counter(r.cell for r in records if r.metric == "forward_ms")
    assert len(cells) == 24 and set(cells.values()) == {1}
    assert before <= {r.cell for r in records}
    meta = read_run(results.parent)
    assert meta["status"] == "finished" and len(meta["resumed"]) == 1


def test_labels_with_brackets_survive_the_terminal_output(tmp_path):
    """rich reads `[eager]` as markup unless escaped: the label must print as written."""
    data = json.loads(json.dumps(TINY))
    data["suites"] = {"memory": {**TINY["suites"]["memory"], "seq_lens": [64, 128]}}
    path = write_profile(tmp_path / "p.yaml", data)
    result = CliRunner().invoke(
        app, ["run", "--profile", str(path), "--out", str(tmp_path / "o"), "--no-progress",
              "--no-report"]
    )
    assert result.exit_code == 0, result.output
    assert "standard[eager]" in result.output
