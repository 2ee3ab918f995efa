"""Hostile inputs and trust boundaries: time limits on every cell kind and check, exit codes that
mean what they say, and the run directory as a boundary (no write or read through a link)."""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from harness.attention import get_attention, load_plugins
from harness.cli import app
from harness.measure.limits import TimeLimitExceeded, time_limit
from harness.records import Cell, Record
from harness.run.executors import PoolExecutor, SerialExecutor
from harness.run.profiles import profile_from_dict
from harness.run.runner import start_run
from harness.run.store import ResultsStore, StoreError, read_records, read_run

REPO = Path(__file__).resolve().parents[1]
PLUGIN = "misbehaving_attentions"

THROUGHPUT = {"seq_lens": [16, 32], "heads": 1, "head_dim": 8, "min_run_time": 0.01,
              "warmup": 0, "passes": ["forward"], "model": None}
RECALL = {"n_train": 64, "n_val": 24, "n_test": 40, "seq_len": 24, "n_pairs": 4, "n_queries": 2,
          "num_keys": 12, "num_values": 4}
TRAIN = {"steps": 6, "batch_size": 16, "eval_every": 3, "hidden_size": 16, "num_layers": 1,
         "num_heads": 2, "ffn_size": 32, "dropout": 0.0}
ACCURACY = {"tasks": [{"name": "recall", "params": RECALL}], "text": None, "train": TRAIN,
            "n_boot": 20, "threads": 1, "baseline": False, "fidelity": False}


@pytest.fixture(scope="module", autouse=True)
def plugin():
    """The misbehaving attentions, registered for this module only (loading plugins changes
    process-wide state: it is put back afterwards)."""
    import sys

    from harness.attention import base, plugins

    entries, loaded = dict(base._REGISTRY._entries), dict(plugins._LOADED)
    load_plugins([PLUGIN])
    yield
    base._REGISTRY._entries.clear()
    base._REGISTRY._entries.update(entries)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
    sys.modules.pop(PLUGIN, None)


def _profile(attentions, suites, **extra):
    data = {"name": "hostile", "seeds": [0], "device": "cpu", "threads": 1,
            "attentions": [a if isinstance(a, dict) else {"name": a} for a in attentions],
            "suites": copy.deepcopy(suites), **extra}
    return profile_from_dict(data)


def _by_label(records: list[Record]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in records:
        if r.cell and not r.cell.startswith("summary"):
            out.setdefault(r.label or r.attention, set()).add(r.status)
    return out


# ------------------------------------------------------------------------------ time limits
def test_time_limit_stops_python_work_in_the_main_thread_and_in_other_threads():
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded), time_limit(0.2):
        while True:
            time.sleep(0.05)
    assert time.monotonic() - started < 2
    # nested: the inner one fires, the outer one is restored
    with time_limit(5.0), pytest.raises(TimeLimitExceeded), time_limit(0.1):
        time.sleep(10)
    caught: list[BaseException] = []

    def worker():
        try:
            with time_limit(0.2):
                while True:
                    time.sleep(0.02)
        except TimeLimitExceeded as err:
            caught.append(err)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert caught and not thread.is_alive()
    with time_limit(None):  # no limit: nothing armed
        time.sleep(0.01)


def _wrapping_interruption(limit: float) -> None:
    """Work that turns whatever interrupts it into another exception, as transformers' lazy
    imports do (ModuleNotFoundError: Could not import module ...)."""
    with time_limit(limit):
        try:
            while True:
                time.sleep(0.02)
        except BaseException as err:
            raise ModuleNotFoundError("Could not import module 'PreTrainedModel'") from err


def test_a_fired_time_limit_wins_over_the_exception_the_work_made_of_it():
    with pytest.raises(TimeLimitExceeded) as info:
        _wrapping_interruption(0.1)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    caught: list[BaseException] = []

    def worker():
        try:
            _wrapping_interruption(0.1)
        except BaseException as err:  # what arrives, whatever it is
            caught.append(err)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert caught and isinstance(caught[0], TimeLimitExceeded), caught
    with pytest.raises(ValueError), time_limit(5.0):  # no limit fired: the error stays
        raise ValueError("the work's own error")


def test_a_hanging_attention_is_a_timeout_record_and_the_serial_run_goes_on(tmp_path):
    profile = _profile(["standard", "sleepy"], {"throughput": {**THROUGHPUT, "timeout_s": 1.0}})
    started = time.monotonic()
    outcome = start_run(profile, out_dir=tmp_path, argv=["t"], executor=SerialExecutor())
    assert time.monotonic() - started < 30
    statuses = _by_label(outcome.records)
    assert statuses["sleepy"] == {"timeout"} and "ok" in statuses["standard"]
    assert not statuses["standard"] & {"error", "timeout"}
    error = next(r.error for r in outcome.records if r.status == "timeout")
    assert "timeout_s=1" in error
    assert read_run(outcome.run_dir)["status"] == "finished"


@pytest.mark.slow
def test_the_pool_stops_hanging_training_cells_and_kills_a_stuck_worker(tmp_path, monkeypatch):
    """A Python-level hang stops itself in its worker; one that blocks the alarm (as native
    code would) is killed by the driver; the healthy cell beside them is not charged (it has
    no limit here: on a loaded machine its training time is anyone's guess)."""
    import harness.run.runner as runner

    limit = runner.cell_limit
    monkeypatch.setattr(runner, "cell_limit", lambda p, params: None
                        if p.cell.attention == "standard" else limit(p, params))
    profile = _profile(["standard", "sleepy", {"name": "sleepy", "options": {"stubborn": True},
                                                "label": "stuck"}],
                       {"accuracy": {**ACCURACY, "timeout_s": 1.0}})
    executor = PoolExecutor(workers=2, max_retries=0)
    started = time.monotonic()
    outcome = start_run(profile, out_dir=tmp_path, argv=["t"], executor=executor)
    assert time.monotonic() - started < 90
    statuses = _by_label(outcome.records)
    assert statuses["sleepy"] == {"timeout"} and statuses["stuck"] == {"timeout"}, [
        (r.label, r.status, r.error) for r in outcome.records if r.status == "error"]
    assert statuses["standard"] == {"ok"}, outcome.records
    assert outcome.counts.get("error", 0) == 0


def test_check_timeout_s_fails_a_hanging_check():
    started = time.monotonic()
    result = CliRunner().invoke(app, ["check", "sleepy", "--only", "determinism,bad_inputs",
                                      "--timeout-s", "0.5", "--plugin", PLUGIN])
    assert time.monotonic() - started < 20
    assert result.exit_code == 1, result.output
    assert "timeout" in result.output and "--timeout-s 0.5" in result.output
    bad = CliRunner().invoke(app, ["check", "standard", "--timeout-s", "0"])
    assert bad.exit_code == 2 and "--timeout-s" in bad.output


def test_every_suite_has_a_time_limit_in_its_profile_section():
    from harness.suites import get_suite, list_suites

    for name in list_suites():
        field = get_suite(name).Params.model_fields.get("timeout_s")
        assert field is not None, name
        assert field.default >= 300, name


# ------------------------------------------------------------------------ attention outputs
def test_wrong_output_shape_and_numpy_mask_are_named():
    q = torch.randn(1, 2, 8, 4)
    with pytest.raises(ValueError, match=r"'wrong_shape' returned \(1, 2, 8, 5\)"):
        get_attention("wrong_shape")(q, q, q)
    mask = np.ones((1, 8), dtype=bool)
    with pytest.raises(ValueError, match=r"got numpy.ndarray; convert with torch.from_numpy"):
        get_attention("standard")(q, q, q, key_padding_mask=mask)


def test_a_nan_attention_is_named_not_blamed_on_the_learning_rate(tmp_path):
    profile = _profile(["nan_out"], {"accuracy": ACCURACY})
    outcome = start_run(profile, out_dir=tmp_path, argv=["t"], executor=SerialExecutor())
    errors = [r.error for r in outcome.records if r.status == "error"]
    assert errors and all("'nan_out' returned non-finite outputs" in e for e in errors), errors
    assert not any("lower train.lr" in e for e in errors)


# ------------------------------------------------------------------------------ exit codes
def test_check_bad_options_exit_2_before_anything_runs(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["check", "standard", "-O", "nosuch=1"])
    assert result.exit_code == 2 and "unknown option(s) nosuch" in result.output
    assert "valid options" in result.output
    result = runner.invoke(app, ["check", "standard", "-O", "backend=!!python/object:os.system"])
    assert result.exit_code == 2 and "not plain YAML" in result.output
    result = runner.invoke(app, ["check", "standard", "--seq-lens", "64,abc,128"])
    assert result.exit_code == 2 and "--seq-lens: 'abc' is not a whole number" in result.output
    target = tmp_path / "file.json"
    target.write_text("keep")
    started = time.monotonic()
    result = runner.invoke(app, ["check", "standard", "--json", str(target)])
    assert result.exit_code == 2 and "is a file" in result.output
    assert time.monotonic() - started < 5 and target.read_text() == "keep"  # nothing audited


def test_run_refuses_a_named_suite_the_profile_lacks(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "attentions": [{"name": "standard"}],
                                    "suites": {"throughput": THROUGHPUT}}))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "throughput", "memory", "-p", str(path), "--out",
                                      str(out), "--no-progress"])
    assert result.exit_code == 2 and "no section for suite(s) memory" in result.output
    assert not out.exists()


def test_no_progress_still_prints_each_cell_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "device": "cpu", "threads": 1,
                                    "plugins": [PLUGIN],
                                    "attentions": [{"name": "wrong_shape"}],
                                    "suites": {"throughput": THROUGHPUT}}))
    result = CliRunner().invoke(app, ["run", "-p", str(path), "--out", str(tmp_path / "o"),
                                      "--no-progress", "--no-report", "--executor", "serial"])
    assert result.exit_code == 1
    assert "'wrong_shape' returned (1, 1, 16, 9)" in " ".join(result.output.split())


def test_out_with_a_real_latest_folder_leaves_no_run_dir(tmp_path):
    out = tmp_path / "out"
    (out / "latest").mkdir(parents=True)
    result = CliRunner().invoke(app, ["run", "throughput", "--out", str(out), "--no-progress"])
    assert result.exit_code == 2 and "latest" in result.output
    assert [p.name for p in out.iterdir()] == ["latest"]


def test_memory_budget_help_says_inputs_are_not_counted():
    result = CliRunner().invoke(app, ["run", "--help"], terminal_width=200)
    assert "input tensors" in " ".join(result.output.split())


def test_a_full_disk_mid_run_is_exit_2_with_the_resume_command(tmp_path, monkeypatch):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "device": "cpu", "threads": 1,
                                    "attentions": [{"name": "standard"}],
                                    "suites": {"throughput": THROUGHPUT}}))

    def full(self, cell, records):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ResultsStore, "write_cell", full)
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["run", "-p", str(path), "--out", str(out),
                                      "--no-progress", "--executor", "serial"])
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output and "--resume" in result.output
    assert "Traceback" not in result.output
    run_dir = next(p for p in out.iterdir() if p.name != "latest")
    assert read_run(run_dir)["status"] == "interrupted"


def test_torch_load_always_passes_weights_only():
    """Artifacts come from run dirs that may not be the user's: no pickled code runs."""
    for path in (REPO / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load" and getattr(node.func.value, "id", "") == "torch"):
                flags = {k.arg: k.value for k in node.keywords}
                assert "weights_only" in flags, f"{path}:{node.lineno}"
                assert getattr(flags["weights_only"], "value", None) is True, f"{path}"


# --------------------------------------------------------------------- the run dir boundary
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    profile = _profile(["standard"], {"throughput": THROUGHPUT})
    return start_run(profile, out_dir=out, argv=["t"], executor=SerialExecutor()).run_dir


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, symlinks=True)
    return dst


@pytest.mark.parametrize("name", ["summary.csv", "summary.json", "index.html"])
def test_report_never_writes_through_a_link(tiny_run, tmp_path, name):
    run_dir = _copy_run(tiny_run, tmp_path / "run")
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (run_dir / name).unlink(missing_ok=True)
    (run_dir / name).symlink_to(outside)
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 2 and "symbolic link" in result.output
    assert outside.read_text() == "precious"


def test_writes_replace_a_link_instead_of_following_it(tmp_path):
    from harness.run.store import write_in_run_dir

    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (tmp_path / "run").mkdir()
    link = tmp_path / "run" / "summary.csv"
    link.symlink_to(outside)
    write_in_run_dir(link, "new")
    assert outside.read_text() == "precious" and not link.is_symlink()
    assert link.read_text() == "new"


@pytest.mark.parametrize("name", ["results.jsonl", "run.json", "artifacts", ".lock"])
def test_resume_refuses_store_files_that_link_out_of_the_run_dir(tiny_run, tmp_path, name):
    run_dir = _copy_run(tiny_run, tmp_path / "run")
    outside = tmp_path / ("outside_dir" if name == "artifacts" else "outside.txt")
    source = run_dir / name
    if name == "artifacts":
        outside.mkdir()
        if source.exists():
            import shutil

            shutil.rmtree(source)
    else:
        outside.write_bytes(source.read_bytes() if source.exists() else b"")
        source.unlink(missing_ok=True)
    before = sorted(p.name for p in outside.iterdir()) if outside.is_dir() else \
        outside.read_bytes()
    source.symlink_to(outside)
    result = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--no-progress",
                                      "--no-report", "--executor", "serial"])
    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.output
    after = sorted(p.name for p in outside.iterdir()) if outside.is_dir() else \
        outside.read_bytes()
    assert after == before


def test_store_lines_are_streamed_and_bad_bytes_named(tiny_run, tmp_path, monkeypatch):
    import harness.run.store as store

    run_dir = _copy_run(tiny_run, tmp_path / "run")
    results = run_dir / "results.jsonl"
    good = results.read_bytes()
    results.write_bytes(good.split(b"\n")[0] + b"\n" + b"\xff\xfe garbage\n")
    with pytest.raises(StoreError, match=r"results.jsonl:2: not UTF-8"):
        read_records(run_dir)
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 2 and "not UTF-8" in result.output
    monkeypatch.setattr(store, "_MAX_LINE", 1000)
    results.write_bytes(b"x" * 5000 + b"\n" + good)
    with pytest.raises(StoreError, match=r"results.jsonl:1: a line of more than 1000 bytes"):
        read_records(run_dir)


def test_a_duplicated_record_and_a_value_off_its_samples_are_named(tiny_run, tmp_path):
    run_dir = _copy_run(tiny_run, tmp_path / "run")
    results = run_dir / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join([lines[0], *lines]))
    first = json.loads(lines[0])
    with pytest.raises(StoreError, match=f"cell {first['cell']} .* a record is duplicated"):
        read_records(run_dir)
    timed = next(i for i, line in enumerate(lines) if json.loads(line).get("samples"))
    row = json.loads(lines[timed])
    row["value"] *= 2
    lines[timed] = json.dumps(row) + "\n"
    results.write_text("".join(lines))
    with pytest.raises(StoreError, match="is not the median of its"):
        read_records(run_dir)
    result = CliRunner().invoke(app, ["compare", str(tiny_run), str(run_dir)])
    assert result.exit_code == 2 and "median" in result.output


def test_compare_html_to_an_unwritable_place_is_exit_2_before_comparing(tiny_run, tmp_path):
    result = CliRunner().invoke(app, ["compare", str(tiny_run), str(tiny_run), "--html",
                                      str(tmp_path / "no" / "such" / "x.html")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert "verdict" not in result.output.lower()


def test_compare_names_a_suite_whose_method_changed(tiny_run, tmp_path):
    run_dir = _copy_run(tiny_run, tmp_path / "run")
    results = run_dir / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    for row in rows:
        row["suite_version"] = (row.get("suite_version") or 1) + 1
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["compare", str(tiny_run), str(run_dir)])
    assert "warning" in result.output and "suite throughput: method changed" in result.output
    assert "not judged" in result.output


def test_every_record_carries_a_cell(tmp_path):
    """A store written by hand (no executor) keeps the writer's contract: the fixture's check."""
    store = ResultsStore.create(tmp_path / "r", {"run_id": "r"})
    cell = Cell("throughput", "standard", {}, {"seq_len": 16})
    store.write_cell(cell, [Record.for_cell(cell, "m", value=1.0, samples=[1.0, 1.0, 1.0])])
    assert [r.cell for r in read_records(tmp_path / "r")] == [cell.id]
    assert os.stat(tmp_path / "r" / "results.jsonl").st_mode & 0o777 == 0o644


# -------------------------------------------------------------------------------------- Ray
def test_an_unreachable_ray_address_is_exit_2_in_seconds_with_no_run_dir(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from harness.run.executors import RayExecutor

    if ray.is_initialized():
        pytest.skip("a Ray instance runs in this process")
    monkeypatch.setattr(RayExecutor, "connect_timeout_s", 1.0)
    for address in ("ray://127.0.0.1:9", "[::1]:9"):  # closed ports: refused at once
        with pytest.raises(ValueError, match=f"--ray-address {re.escape(address)}: no Ray"):
            RayExecutor(address)._check_reachable()
    joining = threading.Event()

    def never_answers(*args, **kwargs):  # an address that accepts but is no cluster
        joining.set()
        time.sleep(3600)

    monkeypatch.setattr(ray, "init", never_answers)
    monkeypatch.setattr(RayExecutor, "_check_reachable", lambda self: None)
    out = tmp_path / "out"
    started = time.monotonic()
    result = CliRunner().invoke(app, ["run", "throughput", "--executor", "ray",
                                      "--ray-address", "10.255.255.1:6379", "--out", str(out),
                                      "--no-progress"])
    assert joining.is_set() and time.monotonic() - started < 60  # not 14 minutes
    assert result.exit_code == 2, result.output
    assert "no Ray cluster answered within 1 s" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_ray_auto_without_a_cluster_is_exit_2_with_no_run_dir(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")

    if ray.is_initialized():
        pytest.skip("a Ray instance runs in this process")

    def no_cluster(*args, **kwargs):
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(ray, "init", no_cluster)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "throughput", "--executor", "ray", "--ray-address",
                                      "auto", "--out", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "cannot join a Ray cluster" in result.output and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.slow
def test_a_worker_death_charges_only_its_own_cell(tmp_path):
    """With --max-retries 0, the cell whose worker died is an error naming that; the cell of a
    healthy worker that stopped with the broken pool runs again and is ok."""
    hold = tmp_path / "hold"
    hold.touch()
    pids: dict[str, int] = {}

    class Watched(PoolExecutor):
        def start(self, events):
            def watch(event):
                if event[0] == "started" and event[3].isdigit():
                    pids.setdefault(event[1], int(event[3]))
                events(event)

            super().start(watch)

    profile = _profile([{"name": "held", "options": {"hold": str(hold)}, "label": "victim"},
                        {"name": "held", "options": {"hold": str(tmp_path / "hold2")},
                         "label": "bystander"}],
                       {"accuracy": ACCURACY})
    (tmp_path / "hold2").touch()
    executor = Watched(workers=2, max_retries=0)
    cells = {}

    def kill_victim():
        deadline = time.monotonic() + 120
        while len(pids) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        for task in list(executor._running.values()):
            cells[task.cell.label] = task.cell.id
        time.sleep(0.5)
        os.kill(pids[cells["victim"]], 9)
        (tmp_path / "hold2").unlink()  # the bystander may finish when it runs again

    killer = threading.Thread(target=kill_victim)
    killer.start()
    try:
        outcome = start_run(profile, out_dir=tmp_path / "o", argv=["t"], executor=executor)
    finally:
        killer.join()
    errors = {r.label: r.error for r in outcome.records if r.status == "error"}
    assert list(errors) == ["victim"], errors
    assert "the worker process running this cell died" in errors["victim"]
    assert "ok" in _by_label(outcome.records)["bystander"]


def test_a_suite_without_its_own_timeout_still_has_a_time_limit():
    from types import SimpleNamespace

    from harness.run.runner import cell_limit
    from harness.suites.base import DEFAULT_TIMEOUT_S

    planned = SimpleNamespace(resource="training")
    assert cell_limit(planned, SimpleNamespace()) == DEFAULT_TIMEOUT_S
    assert cell_limit(planned, SimpleNamespace(timeout_s=5.0)) == 5.0
