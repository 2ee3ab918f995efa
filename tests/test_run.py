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


def test_an_entry_runs_only_in_its_suites():
    data = json.loads(json.dumps(TINY))
    data["attentions"][1]["suites"] = ["memory"]  # standard[eager]: memory only
    profile = profile_from_dict(data)
    labels = {(p.suite, p.cell.label or p.cell.attention) for p in plan_run(profile)}
    assert ("memory", "standard[eager]") in labels
    assert ("throughput", "standard[eager]") not in labels
    assert ("throughput", "standard") in labels and ("throughput", "linear") in labels
    # an unscoped entry keeps the profile hash it had before `suites:` existed (no key)
    assert all("suites" not in e for e in profile_from_dict(TINY).to_dict()["attentions"])
    assert "suites" in profile.to_dict()["attentions"][1]


@pytest.mark.parametrize(("scope", "expected"), [
    ({1: ["memroy"]}, r"standard\[eager\]'?: suites: unknown suite\(s\) memroy; available"),
    ({1: []}, r"suites: list each suite once, at least one"),
    ({0: ["memory"]}, r"'standard' is the reference.*leave out throughput"),
])
def test_bad_suite_scopes_are_refused(tmp_path, scope, expected):
    data = json.loads(json.dumps(TINY))
    for i, suites in scope.items():
        data["attentions"][i]["suites"] = suites
    path = write_profile(tmp_path / "bad.yaml", data)
    with pytest.raises(ProfileError, match=expected):
        load_profile(path)


def test_the_attention_option_keeps_an_entrys_suites():
    from harness.cli import _apply_overrides

    data = json.loads(json.dumps(TINY))
    data["attentions"][1]["suites"] = ["memory"]
    kwargs = {"seed": None, "device": None, "memory_budget": None, "threads": None, "data": {}}
    chosen = _apply_overrides(profile_from_dict(data), attention="standard*", **kwargs)
    assert [s.label for s in chosen.attention_specs("throughput")] == ["standard"]
    assert [s.label for s in chosen.attention_specs("memory")] == ["standard",
                                                                   "standard[eager]"]


def test_an_attention_named_for_suites_it_does_not_run_in_exits_2(tmp_path):
    data = json.loads(json.dumps(TINY))
    data["attentions"][1]["suites"] = ["memory"]
    path = write_profile(tmp_path / "p.yaml", data)
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["run", "throughput", "--profile", str(path), "-a",
                                      "standard[eager]", "--out", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "standard[eager] runs only in memory" in text and "(throughput)" in text, text
    assert not out.exists()


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


# ---------------------------------------------------------------------------------------------
# store integrity: lock, latest, labels, unusable input found before anything runs


def _tiny_memory(tmp_path, **changes) -> Path:
    data = json.loads(json.dumps(TINY))
    data["suites"] = {"memory": {**TINY["suites"]["memory"], "seq_lens": [64]}}
    data.update(changes)
    return write_profile(tmp_path / "p.yaml", data)


def test_run_lock_refuses_a_second_writer_and_names_the_holder(tmp_path):
    from harness.run.store import RunLock

    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run) as lock:
        assert lock.held and lock.holder()["pid"] == os.getpid()
        with pytest.raises(StoreError, match=rf"in use by pid {os.getpid()}.*--resume"):
            RunLock(run).acquire()
    RunLock(run).acquire().release()  # released: free again


def test_resume_of_a_running_run_is_refused_with_exit_2(tmp_path):
    from harness.run.store import RunLock

    path = _tiny_memory(tmp_path)
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["run", "--profile", str(path), "--out", str(out),
                                      "--no-progress", "--no-report"])
    assert result.exit_code == 0, result.output
    run_dir = (out / "latest").resolve()
    before = (run_dir / "results.jsonl").read_text()
    with RunLock(run_dir):  # a run still writing this directory
        refused = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--no-progress"])
    assert refused.exit_code == 2 and "in use by pid" in refused.output, refused.output
    assert (run_dir / "results.jsonl").read_text() == before  # nothing lost


def test_latest_pointer_survives_concurrent_updates(tmp_path):
    import threading

    from harness.run.store import point_latest

    runs = [tmp_path / f"r{i}" for i in range(8)]
    for r in runs:
        r.mkdir()
    errors: list[BaseException] = []

    def flip(run: Path) -> None:
        for _ in range(25):
            try:
                point_latest(tmp_path, run)
            except BaseException as err:
                errors.append(err)

    threads = [threading.Thread(target=flip, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert (tmp_path / "latest").resolve() in {r.resolve() for r in runs}
    assert not list(tmp_path.glob(".latest*"))  # no temporary left behind


def test_same_configuration_under_two_labels_both_run(tmp_path):
    data = json.loads(json.dumps(TINY))
    data["attentions"] = [{"name": "linear"}, {"name": "linear", "label": "linear-copy"},
                          {"name": "standard", "options": {"backend": "sdpa"}, "label": "sdpa"}]
    data["suites"]["memory"]["seq_lens"] = [64]
    profile = profile_from_dict(data)
    planned = plan_run(profile, ["memory"])
    assert len({p.cell.id for p in planned}) == len(planned) == 3
    outcome = start_run(profile, suites=["memory"], out_dir=tmp_path, argv=["t"])
    labels = Counter(r.label for r in outcome.records if r.metric == "peak_bytes")
    assert labels == {"linear": 1, "linear-copy": 1, "sdpa": 1}


def test_attention_selection_is_by_exact_label_or_family_glob(tmp_path):
    from harness.cli import _apply_overrides

    profile = profile_from_dict(TINY)
    kwargs = {"seed": None, "device": None, "memory_budget": None, "threads": None, "data": {}}

    def labels(attention: str) -> list[str]:
        chosen = _apply_overrides(profile, attention=attention, **kwargs)
        return [s.label for s in chosen.attention_specs()]

    assert labels("standard") == ["standard"]
    assert labels("standard[eager]") == ["standard[eager]"]
    assert labels("standard*") == ["standard", "standard[eager]"]
    assert labels("linear,standard[eager]") == ["standard[eager]", "linear"]
    with pytest.raises(ProfileError, match=r"no attention labelled 'sparse'.*'standard\*'"):
        labels("sparse")


@pytest.mark.parametrize(("args", "message"), [
    (["--threads", "0"], "threads must be >= 1"),
    (["--threads", "-3"], "threads must be >= 1"),
    (["--memory-budget", "lots"], "cannot read 'lots' as a memory size"),
])
def test_bad_run_options_exit_2(tmp_path, args, message):
    path = _tiny_memory(tmp_path)
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["run", "--profile", str(path), "--out", str(out), *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not out.exists()


def test_memory_size_in_scientific_notation_is_accepted():
    assert parse_bytes("1e9") == 10**9 and parse_bytes("2.5e3 MiB") == 2500 * 2**20
    with pytest.raises(ValueError, match="memory size"):
        parse_bytes("1e9x")


def _bad_out(tmp_path: Path, kind: str) -> tuple[str, str]:
    if kind == "file":
        (tmp_path / "afile").write_text("x")
        return str(tmp_path / "afile"), "is a file"
    if kind == "under_file":
        (tmp_path / "afile").write_text("x")
        return str(tmp_path / "afile" / "runs"), "is a file"
    return "/proc/harness-runs", "virtual filesystem"


@pytest.mark.parametrize("kind", ["file", "under_file", "proc"])
def test_unusable_out_dir_exit_2_before_anything_runs(tmp_path, kind):
    path = _tiny_memory(tmp_path)
    out, message = _bad_out(tmp_path, kind)
    result = CliRunner().invoke(app, ["run", "--profile", str(path), "--out", out])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) in (["p.yaml"], ["afile", "p.yaml"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_out_dir_exit_2(tmp_path):
    path = _tiny_memory(tmp_path)
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    result = CliRunner().invoke(app, ["run", "--profile", str(path), "--out", str(locked)])
    assert result.exit_code == 2 and "cannot write" in result.output
    assert list(locked.iterdir()) == []


def _data(tmp_path: Path, name: str, rows: list[tuple[str, str]] | bytes,
          header: str = "sentence\tlabel") -> Path:
    path = tmp_path / name
    if isinstance(rows, bytes):
        path.write_bytes(rows)
    else:
        path.write_text("\n".join([header] + [f"{t}\t{y}" for t, y in rows]) + "\n")
    return path


def _good_rows(n: int) -> list[tuple[str, str]]:
    return [(f"sentence number {i} is {'good' if i % 2 else 'bad'}", "pos" if i % 2 else "neg")
            for i in range(n)]


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "train file not found"),
    ("binary", "is binary"),
    ("column", "label_column 'label' not in the train split"),
    ("nan_label", "has no label in column 'label' (found 'NaN')"),
    ("empty_label", "has no label in column 'label'"),
    ("tiny", "too few rows to benchmark on"),
    ("rare_class", "too few train rows of class 'odd'"),
])
def test_unusable_data_files_exit_2_and_leave_no_run_dir(tmp_path, case, message):
    path = _tiny_memory(tmp_path)
    rows = _good_rows(250)
    if case == "missing":
        train = tmp_path / "nope.tsv"
    elif case == "binary":
        train = _data(tmp_path, "train.tsv", b"sentence\tlabel\n\x00\x01\x02\xff" * 20)
    elif case == "column":
        train = _data(tmp_path, "train.tsv", rows, header="sentence\tclass")
    elif case == "nan_label":
        train = _data(tmp_path, "train.tsv", [*rows[:40], ("no label here", "NaN"), *rows[40:]])
    elif case == "empty_label":
        train = _data(tmp_path, "train.tsv", [*rows[:40], ("no label here", ""), *rows[40:]])
    elif case == "tiny":
        train = _data(tmp_path, "train.tsv", rows[:3])
    else:
        train = _data(tmp_path, "train.tsv", [*rows, ("strange one", "odd")])
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["run", "--profile", str(path), "--out", str(out),
                                      "--data-files", f"train={train}"])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not out.exists()
    # the same command with good data gets past the check (a broken check would refuse it)
    good = _data(tmp_path, "good.tsv", rows)
    from harness.run.runner import preflight

    data = json.loads(json.dumps(TINY))
    data["data"] = {"data_files": {"train": str(good)}}
    preflight(profile_from_dict(data), ["memory"], tmp_path / "o2")


def test_malformed_run_json_on_resume_exit_2(tmp_path):
    run = tmp_path / "run"
    ResultsStore.create(run, {"run_id": "x"})
    runner = CliRunner()
    for text, message in (("{broken", "corrupt JSON"), ("[1, 2]", "a JSON object is expected"),
                          (json.dumps({"schema_version": 2}), "malformed run file"),
                          (json.dumps({"schema_version": 1, "profile": {}}),
                           "schema_version 1")):
        (run / "run.json").write_text(text)
        result = runner.invoke(app, ["run", "--resume", str(run), "--no-progress"])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), (
            text, result.output)
        assert "Traceback" not in result.output
    result = runner.invoke(app, ["run", "--resume", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no such run directory" in result.output


def test_memory_timeout_is_recorded_as_timeout_not_oom(tmp_path, monkeypatch):
    from harness.measure.memory import MemoryResult
    from harness.suites import memory as memory_suite

    def slow(target, kwargs, **kw):
        if kwargs["seq_len"] >= 256:
            return MemoryResult(status="timeout", peak_bytes=None, baseline_bytes=None,
                                error="no result within timeout_s=1 s; killed by the parent")
        return original(target, kwargs, **kw)

    original = memory_suite.measure_cpu_peak
    monkeypatch.setattr(memory_suite, "measure_cpu_peak", slow)
    data = json.loads(json.dumps(TINY))
    data["attentions"] = [{"name": "linear"}]
    data["suites"] = {"memory": {**TINY["suites"]["memory"], "seq_lens": [128, 256, 512]}}
    outcome = start_run(profile_from_dict(data), suites=["memory"], out_dir=tmp_path, argv=["t"])
    by_n = {r.params["seq_len"]: r for r in outcome.records if r.metric == "peak_bytes"}
    assert by_n[128].status == "ok" and by_n[256].status == "timeout"
    assert "oom" not in (by_n[256].error or "")
    skipped = [r for r in outcome.records if r.metric == "cell_status"]
    assert [r.params["seq_len"] for r in skipped] == [512] and "timeout" in skipped[0].error
    longest = next(r for r in outcome.records if r.metric == "max_seq_len_under_budget")
    assert longest.value == 128


def test_ctrl_c_prints_the_resume_command_and_exits_130(tmp_path, monkeypatch):
    suite = get_suite("memory")

    def interrupt(cell, params, ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(suite, "run_cell", interrupt)
    path = _tiny_memory(tmp_path)
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["run", "--profile", str(path), "--out", str(out),
                                      "--no-progress"])
    run_dir = (out / "latest").resolve()
    assert result.exit_code == 130, result.output
    assert f"harness run --resume {run_dir}" in " ".join(result.output.split())
    assert read_run(run_dir)["status"] == "interrupted"


def test_throughput_records_carry_samples_reference_ratio_and_load(tmp_path):
    data = json.loads(json.dumps(TINY))
    data["attentions"] = [{"name": "standard"}, {"name": "linear"}]
    data["suites"] = {"throughput": {**TINY["suites"]["throughput"], "seq_lens": [32],
                                     "passes": ["forward"], "model": None}}
    outcome = start_run(profile_from_dict(data), suites=["throughput"], out_dir=tmp_path,
                        argv=["t"])
    recs = {(r.label, r.metric): r for r in outcome.records}
    fwd = recs[("linear", "forward_ms")]
    assert fwd.n == len(fwd.samples) >= 10 and min(fwd.samples) > 0
    assert {"heads", "head_dim", "dtype", "causal", "batch"} <= set(fwd.params)
    assert fwd.load["threads"] == 1 and "others_cores" in fwd.load
    assert fwd.load["allocator"].startswith(("glibc fixed", "default"))
    ratio = recs[("linear", "forward_speed_vs_reference")]
    assert ratio.unit == "x" and len(ratio.samples) == fwd.n and ratio.higher_is_better
    assert ratio.reference == "standard"  # the run's reference, named on the ratio
    assert fwd.reference is None and '"reference"' not in fwd.to_json()
    gflops = recs[("standard", "calibration_gflops")]
    assert gflops.value > 0 and gflops.higher_is_better is None
    meta = read_run(outcome.run_dir)
    assert meta["schema_version"] == 2
    assert meta["compare_rules"]["throughput"]["reference_metrics"]["forward_ms"] == \
        "forward_speed_vs_reference"


def test_throughput_times_each_cell_beside_the_runs_reference(tmp_path):
    """The profile's ``reference`` is the attention each cell is timed beside; ``standard``
    (sdpa) stands in when the run has none or when its reference rejects the shape."""
    from harness.suites import throughput
    from harness.suites.base import AttentionSpec

    linear = AttentionSpec("linear", {}, "linear")
    lsh = AttentionSpec("lsh", {}, "lsh")
    cell = AttentionSpec("standard", {}, "standard").cell("throughput", {"seq_len": 32})
    built: list[str] = []

    def build(spec: AttentionSpec) -> dict:
        built.append(spec.label)

        def forward() -> None:
            if spec.name == "lsh":
                raise ValueError("lsh: sequence shorter than 2 * bucket_size * n_hashes")

        return {"forward": forward}

    def beside(ctx: RunContext, of=cell) -> tuple[str, bool]:
        built.clear()
        spec, fns = throughput._beside(of, ctx, build, "forward")
        return spec.label, fns is not None

    assert beside(RunContext(reference="linear", reference_spec=linear)) == ("linear", True)
    assert built == ["linear"]
    assert beside(RunContext()) == ("standard", False)  # standard (sdpa) is the reference
    assert beside(RunContext(reference=None)) == ("standard", False)
    # the run's reference cannot run this shape: standard (sdpa), and the record says so
    assert beside(RunContext(reference="lsh", reference_spec=lsh)) == ("standard", False)
    assert built == ["lsh"]
    # the reference itself: the calibration matmul stands in
    mine = linear.cell("throughput", {"seq_len": 32})
    assert beside(RunContext(reference="linear", reference_spec=linear), mine) == \
        ("linear", False)
    # a whole run: every ratio names the profile's reference
    data = json.loads(json.dumps(TINY))
    data["attentions"] = [{"name": "standard"}, {"name": "linear"}]
    data["reference"] = "linear"
    data["suites"] = {"throughput": {**TINY["suites"]["throughput"], "seq_lens": [32],
                                     "passes": ["forward"], "model": None}}
    outcome = start_run(profile_from_dict(data), suites=["throughput"], out_dir=tmp_path,
                        argv=["t"])
    ratios = {r.label: r.reference for r in outcome.records
              if r.metric == "forward_speed_vs_reference"}
    assert ratios == {"standard": "linear", "linear": "linear"}


def test_a_run_without_threads_leaves_one_core_free(tmp_path, monkeypatch):
    """No thread count in the profile: the run (and its timings) use all cores but one."""
    from harness.run import runner

    data = json.loads(json.dumps(TINY))
    data.pop("threads", None)
    data["attentions"] = [{"name": "linear"}]
    data["suites"] = {"throughput": {**TINY["suites"]["throughput"], "seq_lens": [32],
                                     "passes": ["forward"], "model": None}}
    import torch

    monkeypatch.setattr(runner, "default_threads", lambda: 3)  # not torch's own default
    before = torch.get_num_threads()
    try:
        outcome = start_run(profile_from_dict(data), suites=["throughput"], out_dir=tmp_path,
                            argv=["t"])
    finally:
        torch.set_num_threads(before)
    assert read_run(outcome.run_dir)["threads"] == 3


def test_throughput_cells_timed_in_several_fresh_processes(tmp_path):
    """``processes: 2``: each cell timed in two spawned workers (other pids than the run's),
    the samples pooled with ``sample_groups``; summaries still computed."""
    data = json.loads(json.dumps(TINY))
    data["attentions"] = [{"name": "standard"}, {"name": "linear"}]
    data["suites"] = {"throughput": {**TINY["suites"]["throughput"], "seq_lens": [32, 64],
                                     "passes": ["forward"], "model": None, "processes": 2,
                                     "min_run_time": 0.02}}
    outcome = start_run(profile_from_dict(data), suites=["throughput"], out_dir=tmp_path,
                        argv=["t"])
    recs = {(r.label, r.metric, r.params.get("seq_len")): r for r in outcome.records}
    fwd = recs[("linear", "forward_ms", 32)]
    assert fwd.status == "ok" and len(fwd.sample_groups) == 2
    assert sum(fwd.sample_groups) == len(fwd.samples) == fwd.n
    assert all(g >= 4 for g in fwd.sample_groups)  # min_rounds shared: ceil(10 / 2) = 5
    ratio = recs[("linear", "forward_speed_vs_reference", 32)]
    assert ratio.sample_groups == fwd.sample_groups and ratio.reference == "standard"
    assert len(fwd.load["rounds"]) == 2
    assert recs[("linear", "calibration_gflops", 32)].sample_groups is not None
    assert any(r.metric == "time_exponent" or r.metric == "crossover_seq_len"
               for r in outcome.records)


def test_throughput_passes_timed_in_windows_taking_turns(tmp_path, monkeypatch):
    """``windows: 3``: in one process each pass is timed in three windows, the passes taking
    turns; the records carry one sample group per window, and a later window neither warms up
    again nor re-probes its block size (the run's timing budget stays the same)."""
    import harness.suites.throughput as tp

    data = json.loads(json.dumps(TINY))
    data["attentions"] = [{"name": "standard"}, {"name": "linear"}]
    data["suites"] = {"throughput": {**TINY["suites"]["throughput"], "seq_lens": [32],
                                     "passes": ["forward", "backward"], "model": None,
                                     "windows": 3, "min_run_time": 0.02, "warmup": 1}}
    labels: list[tuple[str, int, bool]] = []
    real = tp.time_interleaved

    def spy(fns, **kw):
        labels.append((kw["label"], kw["warmup"], kw.get("numbers") is not None))
        return real(fns, **kw)

    monkeypatch.setattr(tp, "time_interleaved", spy)
    outcome = start_run(profile_from_dict(data), suites=["throughput"], out_dir=tmp_path,
                        argv=["t"])
    recs = {(r.label, r.metric): r for r in outcome.records}
    fwd = recs[("linear", "forward_ms")]
    assert fwd.status == "ok" and len(fwd.sample_groups) == 3 and fwd.load["groups"] == "windows"
    assert sum(fwd.sample_groups) == len(fwd.samples) and min(fwd.sample_groups) >= 4
    assert recs[("linear", "forward_speed_vs_reference")].sample_groups == fwd.sample_groups
    assert len(recs[("linear", "calibration_gflops")].sample_groups) == 3
    mine = [x for x in labels if x[0].startswith("linear ")]
    assert [x[0] for x in mine] == [f"linear {p} N=32 window {w}/3" for w in (1, 2, 3)
                                    for p in ("forward", "backward")]
    # later windows: known block sizes; only backward (a new graph each window) warms up again
    assert [(w, n) for _, w, n in mine] == [(1, False), (1, False)] + [(0, True), (1, True)] * 2


def test_throughput_plan_lets_the_attentions_take_turns():
    """Cells run length by length with the attentions taking turns, so one attention's cells
    lie apart in time (the gate asks a one-process regression to show in two of them)."""
    from harness.suites.base import AttentionSpec
    from harness.suites.throughput import ThroughputParams, ThroughputSuite

    params = ThroughputParams(seq_lens=[64, 128], model={"seq_lens": [32]})
    cells = ThroughputSuite().plan(params, [AttentionSpec("standard"), AttentionSpec("linear")],
                                   [0])
    assert [(c.label, c.params["kind"], c.params["seq_len"]) for c in cells] == [
        ("standard", "attention", 64), ("linear", "attention", 64),
        ("standard", "attention", 128), ("linear", "attention", 128),
        ("standard", "model", 32), ("linear", "model", 32)]


def test_merge_processes_pools_samples_and_keeps_failures():
    from harness.suites.throughput import merge_processes

    def rec(samples, status="ok", noisy=None):
        return Record("throughput", "linear", {}, {"seq_len": 32}, "forward_ms",
                      value=samples[0] if samples else None, samples=samples or None,
                      status=status, noisy=noisy, load={"rounds": len(samples or [])},
                      error=None if status == "ok" else "boom")

    merged = merge_processes([[rec([1.0, 2.0, 3.0])], [rec([4.0, 5.0], noisy="busy")]])
    assert merged[0].samples == [1.0, 2.0, 3.0, 4.0, 5.0] and merged[0].sample_groups == [3, 2]
    assert merged[0].value == 3.0 and merged[0].n == 5 and merged[0].noisy == "busy"
    assert merged[0].load["rounds"] == [3, 2]
    failed = merge_processes([[rec([1.0, 2.0])], [rec([], status="error")]])
    assert failed[0].status == "error" and failed[0].sample_groups is None
    assert merge_processes([[rec([1.0])]])[0].sample_groups is None
    # processes of windows: each process's own groups kept, named as such
    windows = [merge_processes([[rec([1.0, 2.0])], [rec([3.0])]], "windows") for _ in range(2)]
    nested = merge_processes(windows)
    assert nested[0].sample_groups == [2, 1, 2, 1]
    assert nested[0].load["groups"] == "processes of windows"
