"""Executors: picklable contexts, explicit dependencies, the local pool (same records as serial,
timing cells alone, a dying worker retried or recorded), Ctrl-C leaves a resumable run."""

from __future__ import annotations

import copy
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.records import Cell, Record
from harness.run.executors import (
    CellTask,
    ExecutorUnavailableError,
    PoolExecutor,
    SerialExecutor,
    execute_cell,
    make_executor,
)
from harness.run.profiles import profile_from_dict
from harness.run.runner import plan_run, start_run
from harness.run.store import read_records, read_run
from harness.suites import RunContext, get_suite
from harness.suites.base import DataOptions

REPO = Path(__file__).resolve().parents[1]

RECALL = {"n_train": 64, "n_val": 24, "n_test": 40, "seq_len": 24, "n_pairs": 4, "n_queries": 2,
          "num_keys": 12, "num_values": 4}
TRAIN = {"steps": 6, "batch_size": 16, "eval_every": 3, "hidden_size": 16, "num_layers": 1,
         "num_heads": 2, "ffn_size": 32, "dropout": 0.0}
#: accuracy (with a fidelity probe that needs the reference's checkpoint) + bias, tiny and
#: one-threaded: CPU training is deterministic per seed, so every executor gives the same values.
PARITY = {
    "name": "tiny-parity",
    "seeds": [0],
    "device": "cpu",
    "threads": 1,
    "attentions": [{"name": "standard"}, {"name": "linear", "options": {"feature_map": "favor"}},
                   {"name": "sparse"}],
    "suites": {
        "accuracy": {"tasks": [{"name": "recall", "params": RECALL,
                                "attention_options": {"sparse": {"block_size": 6}}}],
                     "text": None, "train": TRAIN, "n_boot": 20, "threads": 1},
        "bias": {"corpus": {"n_train": 200, "n_val": 60, "n_test": 120},
                 "train": {**TRAIN, "steps": 10, "eval_every": 5}, "audit_axes": ["gender"],
                 "swaps": ["gender"], "template_axes": ["gender"], "n_boot": 20, "text": None,
                 "threads": 1, "attention_options": {"sparse": {"block_size": 2,
                                                                "random_blocks": 0}}},
    },
}


def parity_profile():
    return profile_from_dict(copy.deepcopy(PARITY))


def values(records: list[Record]) -> dict[tuple, tuple]:
    """Every record's identity -> its numbers (the times a cell took excluded)."""
    out = {}
    for r in records:
        if r.metric in ("train_time_s", "train_time_s_mean"):
            continue
        out[r.key] = (r.status, r.value, r.ci_low, r.ci_high, r.stderr, r.n)
    return out


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return start_run(parity_profile(), out_dir=out, argv=["t"], executor=SerialExecutor())


# ---------------------------------------------------------------------------------- the seam
def test_run_context_pickles_and_a_lambda_progress_would_not():
    ctx = RunContext(device="cpu", threads=2, run_dir=Path("/tmp/x"), seeds=(0, 1),
                     data=DataOptions(dataset="glue/sst2"),
                     inputs={"abc": [Record("memory", "standard", {}, {}, "peak_bytes", 1.0)]})
    back = pickle.loads(pickle.dumps(ctx))
    assert back == ctx
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(RunContext(progress=lambda f, t: None))


def test_memory_sweep_dependencies_are_explicit():
    profile = profile_from_dict({
        "name": "m", "seeds": [0], "device": "cpu", "attentions": [{"name": "linear"}],
        "suites": {"memory": {"seq_lens": [64, 32, 128], "modes": ["forward", "fwd_bwd"]}}})
    planned = plan_run(profile)
    by_id = {p.cell.id: p for p in planned}
    for p in planned:
        assert p.resource == "memory"
        n, mode = p.cell.params["seq_len"], p.cell.params["mode"]
        deps = [(by_id[d].cell.params["mode"], by_id[d].cell.params["seq_len"]) for d in p.after]
        assert deps == ([] if n == 32 else [(mode, n // 2)])
    suite = get_suite("memory")
    cell = planned[1].cell
    oom = Record.for_cell(planned[0].cell, "peak_bytes", status="oom", error="over budget")
    assert "first oom (N=32)" in suite.skip_reason(cell, [oom])
    assert suite.skip_reason(cell, [Record.for_cell(planned[0].cell, "peak_bytes", value=1)]) \
        is None


def test_a_dependency_planned_after_its_cell_is_refused(monkeypatch):
    suite = get_suite("memory")
    monkeypatch.setattr(suite, "depends_on", lambda cell, cells: [cells[-1]])
    profile = profile_from_dict({"name": "m", "seeds": [0], "device": "cpu",
                                 "attentions": [{"name": "linear"}],
                                 "suites": {"memory": {"seq_lens": [32, 64]}}})
    with pytest.raises(ValueError, match="depends on a cell planned after it"):
        plan_run(profile)


def test_execute_cell_ships_artifacts_in_and_out_without_a_shared_filesystem(tmp_path):
    """A cell on a worker without the run dir sees its inputs' files and returns what it wrote."""
    cell = Cell("memory", "linear", {}, {"mode": "forward", "seq_len": 32, "batch": 1})
    suite = get_suite("memory")

    class Writes:
        def run_cell(self, cell, params, ctx):
            seen = (ctx.artifacts / "dep.pt").read_bytes()
            (ctx.artifacts / f"{cell.id}.json").write_text("out")
            return [Record.for_cell(cell, "peak_bytes", value=len(seen))]

    task = CellTask(0, "memory", cell, "timing", suite.Params(), RunContext(run_dir=None),
                    files={"dep.pt": b"12345"})
    original = suite.run_cell
    try:
        suite.run_cell = Writes().run_cell
        result = execute_cell(task)
    finally:
        suite.run_cell = original
    assert result.records[0].value == 5.0
    assert result.files == {f"{cell.id}.json": b"out"}


def test_unknown_executor_and_ray_without_ray_exit_2(tmp_path, monkeypatch):
    with pytest.raises(ExecutorUnavailableError, match="choose one of serial, pool, ray"):
        make_executor("dask")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ExecutorUnavailableError, match=r'pip install -e "\.\[ray\]"'):
        make_executor("ray")
    result = CliRunner().invoke(app, ["run", "memory", "--executor", "ray", "--out",
                                      str(tmp_path), "--no-progress"])
    assert result.exit_code == 2 and "pip install" in result.output
    assert not list(tmp_path.iterdir())  # nothing ran


# ------------------------------------------------------------------------------- local pool
class _Watched(PoolExecutor):
    """A pool that notes, for each finished cell, how many cells were running beside it, and
    the pids of the processes that started cells."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.overlaps: list[tuple[str, int]] = []
        self.workers_up: list[tuple[str, bool]] = []  # suite, whether the pool's workers lived
        self.pids: list[int] = []

    def start(self, events) -> None:
        def watch(event):
            if event[0] == "started" and event[3].isdigit() and int(event[3]) != os.getpid():
                self.pids.append(int(event[3]))
            events(event)

        super().start(watch)

    def next_result(self):
        result = super().next_result()
        self.overlaps.append((result.cell.suite, len(self._running)))
        self.workers_up.append((result.cell.suite, self._pool is not None))
        return result


def test_pool_same_records_as_serial_timing_alone_memory_shared(serial_run, tmp_path):
    data = copy.deepcopy(PARITY)
    data["suites"]["memory"] = {"seq_lens": [32, 64], "heads": 2, "head_dim": 8,
                                "modes": ["forward"]}
    data["suites"]["throughput"] = {"seq_lens": [32], "heads": 2, "head_dim": 8,
                                    "min_run_time": 0.01, "warmup": 0, "passes": ["forward"],
                                    "model": None}
    executor = _Watched(workers=2)
    pooled = start_run(profile_from_dict(data), out_dir=tmp_path, argv=["t"], executor=executor)
    assert serial_run.exit_code == pooled.exit_code == 0
    a = values(serial_run.records)
    b = values([r for r in pooled.records if r.suite not in ("memory", "throughput")])
    assert a == b
    assert any(k[-1] == "fidelity_rel_error" for k in a) and any(k[0] == "bias" for k in a)
    assert len(set(executor.pids)) == 2  # training cells ran in two worker processes
    timing = [n for suite, n in executor.overlaps if suite == "throughput"]
    assert len(timing) == 3 and set(timing) == {0}  # nothing ran beside a timing cell
    # no training cell was left: the idle workers were stopped before the timing cells
    assert [up for suite, up in executor.workers_up if suite == "throughput"] == [False] * 3
    memory = [n for suite, n in executor.overlaps if suite == "memory"]
    assert len(memory) == 6 and max(memory) == 1  # memory cells share: one training beside
    meta = read_run(pooled.run_dir)
    assert meta["executor"]["name"] == "pool" and meta["executor"]["workers"] == 2
    assert set(meta["cell_seconds"]) == {"accuracy", "bias", "memory", "throughput"}


def _worker_view(name: str) -> tuple[int, str | None, str, bool]:
    """What a pool worker sees: its parent, an environment variable, its working directory,
    and whether a module on the driver's path imports."""
    import importlib.util

    return (os.getppid(), os.environ.get(name), os.getcwd(),
            importlib.util.find_spec("harness_probe_module") is not None)


@pytest.mark.skipif("forkserver" not in __import__("multiprocessing").get_all_start_methods(),
                    reason="no fork server on this platform")
def test_pool_workers_fork_from_the_server_and_see_the_drivers_path_cwd_and_env(
        tmp_path, monkeypatch):
    """Workers fork from the fork server (not a new interpreter each), yet see the driver's
    sys.path, working directory and environment as they are now, not as when the server
    started."""
    from harness.measure.memory import fork_server

    fork_server(start=True)  # started before the driver's state changes below
    (tmp_path / "harness_probe_module.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_PROBE_VAR", "seen")
    executor = PoolExecutor(workers=1)
    executor.start(lambda event: None)
    pool = executor._new_pool()
    try:
        ppid, var, cwd, found = pool.submit(_worker_view, "HARNESS_PROBE_VAR").result(60)
    finally:
        pool.shutdown()
        executor.close()
    assert ppid != os.getpid()  # forked by the server, not spawned by this process
    assert (var, Path(cwd).resolve(), found) == ("seen", tmp_path.resolve(), True)


def test_cell_imports_name_each_resource_classs_modules_and_the_pool_imports_its_own(
        tmp_path, monkeypatch):
    """What the planned cells import, per resource class (``Suite.imports``), and the pool
    importing its timing cells' modules as the first cell is asked for."""
    from harness.run.runner import cell_imports

    data = copy.deepcopy(PARITY)
    data["suites"]["memory"] = {"seq_lens": [32], "heads": 2, "head_dim": 8, "modes": ["forward"]}
    data["suites"]["throughput"] = {"seq_lens": [32], "heads": 2, "head_dim": 8,
                                    "passes": ["forward"], "model": {"seq_lens": [32]}}
    profile = profile_from_dict(data)
    found = cell_imports(plan_run(profile, list(profile.suites)), False)
    assert found == {"training": ("harness.models",), "memory": ("harness.suites.memory",),
                     "timing": ("harness.models",)}
    user = cell_imports(plan_run(profile, ["memory"]), True)
    assert user == {"memory": ("harness.models._memory",)}
    data["suites"]["throughput"]["model"] = None  # attention cells alone import nothing more
    profile = profile_from_dict(data)
    assert "timing" not in cell_imports(plan_run(profile, ["throughput"]), False)

    (tmp_path / "harness_probe_timing.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "harness_probe_timing", raising=False)
    executor = PoolExecutor(workers=1)
    # a module that does not import is left to the cell that needs it (its error, its record)
    executor.preload({"timing": ("harness_no_such_module", "harness_probe_timing")})
    executor.start(lambda event: None)
    try:
        executor._warm_up()
    finally:
        executor.close()
    assert "harness_probe_timing" in sys.modules


_TIMING_ONLY = """
import json, sys
from multiprocessing import forkserver
from harness.run.executors import PoolExecutor
from harness.run.profiles import profile_from_dict
from harness.run.runner import start_run
outcome = start_run(profile_from_dict(json.loads(sys.argv[1])), out_dir=sys.argv[2], argv=["t"],
                    executor=PoolExecutor(workers=2))
print(outcome.exit_code, forkserver._forkserver._forkserver_pid)
"""


def test_a_timing_only_run_starts_no_fork_server(tmp_path):
    """Nothing would fork from it: a server importing beside the first timing cells would only
    disturb them (a run with training or memory cells starts it: the tests above)."""
    data = {"name": "t", "seeds": [0], "device": "cpu", "threads": 1,
            "attentions": [{"name": "standard"}],
            "suites": {"throughput": {"seq_lens": [32], "heads": 2, "head_dim": 8,
                                      "min_run_time": 0.01, "warmup": 0, "passes": ["forward"],
                                      "model": None}}}
    done = subprocess.run([sys.executable, "-c", _TIMING_ONLY, json.dumps(data), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["0", "None"], done.stdout + done.stderr


def test_a_worker_gets_its_next_cell_while_memory_cells_run_here(tmp_path, monkeypatch):
    """Memory cells run in the driver beside one training worker: a training cell that finished
    meanwhile is collected and the worker refilled before the next memory cell starts, not after
    the whole memory sweep (each memory cell here waits until the training cell beside it is
    done, so an idle worker shows as every memory result arriving before any training one)."""
    data = copy.deepcopy(PARITY)
    data["suites"] = {"memory": {"seq_lens": [32, 64], "heads": 2, "head_dim": 8,
                                 "modes": ["forward"]},
                      "bias": data["suites"]["bias"]}
    executor = _Watched(workers=2)
    suite = get_suite("memory")
    measure = suite.run_cell

    def beside_training(cell, params, ctx):
        deadline = time.monotonic() + 10
        while executor._running and time.monotonic() < deadline \
                and not any(f.done() for f in executor._running):
            time.sleep(0.02)
        return measure(cell, params, ctx)

    monkeypatch.setattr(suite, "run_cell", beside_training)
    outcome = start_run(profile_from_dict(data), out_dir=tmp_path, argv=["t"], executor=executor)
    assert outcome.exit_code == 0
    order = [s for s, _ in executor.overlaps]
    last_memory = max(i for i, s in enumerate(order) if s == "memory")
    assert order.count("memory") == 6 and order.count("bias") == 3
    # 3 bias cells, one worker slot beside the memory cells: all of them finish meanwhile
    assert order[:last_memory].count("bias") >= 2, order


def _kill_when_started(executor: _Watched, stop: threading.Event, killed: list[int]) -> None:
    while not stop.is_set():
        if executor.pids:
            time.sleep(0.5)  # mid-cell
            os.kill(executor.pids[0], signal.SIGKILL)
            killed.append(executor.pids[0])
            return
        time.sleep(0.02)


@pytest.mark.parametrize("retries", [1, 0])
def test_pool_survives_a_worker_killed_mid_cell(tmp_path, retries):
    data = copy.deepcopy(PARITY)
    data["attentions"] = [{"name": "standard"}]
    data["suites"] = {"bias": {**data["suites"]["bias"],
                               "train": {**TRAIN, "steps": 300, "eval_every": 300}}}
    executor = _Watched(workers=1, max_retries=retries)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_when_started, args=(executor, stop, killed))
    killer.start()
    try:
        outcome = start_run(profile_from_dict(data), out_dir=tmp_path, argv=["t"],
                            executor=executor)
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was killed"
    if retries:
        assert outcome.exit_code == 0 and outcome.counts.get("error", 0) == 0
        assert len(set(executor.pids)) == 2  # the cell ran again in a fresh worker
    else:
        assert outcome.exit_code == 1
        errors = [r for r in outcome.records if r.status == "error"]
        assert len(errors) == 1 and "worker process running this cell died" in errors[0].error
        assert read_run(outcome.run_dir)["status"] == "failed"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_cancels_the_pool_and_leaves_a_resumable_run(tmp_path, how):
    """One cell finishes, the other waits on a file (the held plugin attention), so the signal
    always lands mid-run, however loaded the machine. Ctrl-C (SIGINT to the whole group) and
    SIGTERM (to the driver alone, as `kill` sends it) both mark the run interrupted, print the
    resume command, exit 130 and stop the pool's workers; the resume finishes the run."""
    import psutil

    hold = tmp_path / "hold"
    hold.touch()
    data = {"name": "held", "seeds": [0], "device": "cpu", "threads": 1,
            "plugins": ["misbehaving_attentions"],
            "attentions": [{"name": "standard"}, {"name": "held", "options": {"hold": str(hold)}}],
            "suites": {"accuracy": {**PARITY["suites"]["accuracy"], "baseline": False,
                                    "fidelity": False}}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    cmd = [sys.executable, "-m", "harness.cli", "run", "--profile", str(path), "--out", str(out),
           "--no-progress", "--no-report", "--executor", "pool", "--workers", "2"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    results = None
    while time.time() < deadline and results is None and proc.poll() is None:
        found = list(out.glob("*/results.jsonl"))
        if found and found[0].read_text().count("\n") >= 1:
            results = found[0]
        time.sleep(0.05)
    workers = psutil.Process(proc.pid).children(recursive=True)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    else:
        os.kill(proc.pid, signal.SIGTERM)  # `kill PID`: the driver alone
    _, err = proc.communicate(timeout=60)
    assert results is not None, err
    assert proc.returncode == 130, err
    assert b"harness run --resume" in err
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, alive  # no orphaned pool worker
    run_dir = results.parent
    assert read_run(run_dir)["status"] == "interrupted"
    done = {r.cell for r in read_records(run_dir)}
    assert len(done) == 1
    if how == "sigterm":
        return
    hold.unlink()
    resumed = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--resume",
                              str(run_dir), "--no-progress", "--no-report", "--plugin",
                              "misbehaving_attentions"], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    records = read_records(run_dir)
    cells = {r.cell for r in records if not r.cell.startswith("summary")}
    assert len(cells) == 2 and done <= cells
    per_cell = [json.loads(line)["cell"] for line in (run_dir / "results.jsonl").open()]
    assert len(per_cell) == len(records)  # nothing duplicated
