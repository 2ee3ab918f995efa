"""A cell measured in several processes (``Suite.replicas``, throughput's ``processes``): the
executors run replica i of every cell in a worker process of their own, kept for the run; the
runner merges the replicas, and a failing replica makes the cell's record, never a crash."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from harness import plugins
from harness.run.executors import (
    Executor,
    ExecutorUnavailableError,
    PoolExecutor,
    SerialExecutor,
    execute_cell,
)
from harness.run.profiles import profile_from_dict
from harness.run.runner import plan_run, start_run
from harness.suites import base as suite_base

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def replica_suite():
    """The plugin suite, loaded here and importable by spawned workers (PYTHONPATH)."""
    loaded = dict(plugins._LOADED)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join([str(REPO), str(REPO / "tests")]))
        plugins.load_plugins(["replica_suite"])
        import replica_suite

        yield replica_suite
    suite_base._SUITES.pop(replica_suite.NAME, None)
    sys.modules.pop("replica_suite", None)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)


def _profile(**section):
    return profile_from_dict({"name": "replicas", "attentions": [{"name": "standard"}],
                              "suites": {"replica_pids": section}})


def _pids(outcome) -> dict[int, list[int]]:
    return {r.params["size"]: r.load["pids"] for r in outcome.records
            if r.metric == "worker_pids"}


@pytest.mark.parametrize("make", [lambda: PoolExecutor(workers=1), SerialExecutor],
                         ids=["pool", "serial"])
def test_each_replica_runs_in_its_own_kept_process(replica_suite, tmp_path, make):
    outcome = start_run(_profile(sizes=[1, 2, 3]), out_dir=tmp_path, argv=["t"],
                        executor=make())
    assert outcome.exit_code == 0
    pids = _pids(outcome)
    assert set(pids) == {1, 2, 3}
    first = pids[1]
    assert len(first) == 2 and len(set(first)) == 2  # two processes, one per replica
    assert os.getpid() not in first  # neither is the driver
    assert pids[2] == pids[3] == first  # every cell meets the same two, in the same order


def test_a_failing_replica_makes_the_cell_that_status_and_the_run_goes_on(replica_suite,
                                                                          tmp_path):
    """A replica that raises: ``error``; one past its limit: ``timeout``; one whose process
    dies: ``error`` naming the death, and a fresh worker takes that replica's place. The
    cell's later replicas do not run; the next cell runs in both processes."""
    outcome = start_run(_profile(sizes=[1, 2, 3, 4], fail=[1, 1], hang=[2, 0], crash=[3, 0],
                                 timeout_s=1.0),
                        out_dir=tmp_path, argv=["t"], executor=PoolExecutor(workers=1,
                                                                            max_retries=0))
    assert outcome.exit_code == 1
    status = {r.params["size"]: r for r in outcome.records if r.metric == "cell_status"}
    assert sorted(status) == [1, 2, 3]
    assert status[1].status == "error"
    assert status[1].error.startswith("process 2/2: RuntimeError: planted failure in replica 1")
    assert status[2].status == "timeout" and status[2].error.startswith("process 1/2: timeout")
    assert status[3].status == "error"
    assert re.search(r"process 1/2: the worker process running this cell died \(pid \d+,"
                     r" exit code 3\)", status[3].error)
    assert len(set(_pids(outcome)[4])) == 2


def test_replica_progress_names_the_process():
    from harness.records import Cell
    from harness.run.executors import CellTask
    from harness.suites import RunContext

    seen: list[tuple[float, str]] = []
    task = CellTask(0, "nope", Cell("nope", "standard", {}, {}), "timing", None,  # type: ignore[arg-type]
                    RunContext(), replica=1, replicas=4)
    execute_cell(task, lambda f, t: seen.append((f, t)))
    assert seen[0] == (0.25, "process 2/4")


class _NoReplicas(Executor):
    name = "no-replicas"

    def submit(self, task):  # pragma: no cover - refused before any cell
        raise AssertionError("nothing may run")

    def next_result(self):  # pragma: no cover
        raise AssertionError("nothing may run")


def test_an_executor_that_cannot_run_replicas_is_refused_before_anything_runs(replica_suite,
                                                                               tmp_path):
    with pytest.raises(ExecutorUnavailableError, match="cannot run a cell's replicas"):
        start_run(_profile(), out_dir=tmp_path, argv=["t"], executor=_NoReplicas())
    assert not list(tmp_path.iterdir())
    start_run(_profile(processes=1, sizes=[1]), out_dir=tmp_path, argv=["t"],
              executor=SerialExecutor())  # one replica: any executor will do


def test_replicas_without_a_merge_are_refused_at_plan_time(replica_suite, monkeypatch):
    monkeypatch.delattr(replica_suite.ReplicaSuite, "merge_replicas")
    with pytest.raises(ValueError, match=r"override Suite\.merge_replicas"):
        plan_run(_profile())
    monkeypatch.setattr(replica_suite.ReplicaSuite, "replicas", lambda self, params: 0)
    with pytest.raises(ValueError, match=r"replicas\(\) must be an int >= 1"):
        plan_run(_profile())


@pytest.mark.ray
def test_ray_runs_each_replica_on_its_own_kept_actor(replica_suite, tmp_path):
    """A local Ray instance started and stopped by the executor: replica i of every cell runs
    on actor i (a process of its own, the same one for each cell)."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from harness.run.executors import RayExecutor

    executor = RayExecutor()
    outcome = start_run(_profile(sizes=[1, 2, 3], fail=[2, 1]), out_dir=tmp_path,
                        argv=["t"], executor=executor)
    assert not executor.ray.is_initialized()  # torn down
    pids = _pids(outcome)
    assert len(pids[1]) == 2 and len(set(pids[1])) == 2 and os.getpid() not in pids[1]
    assert pids[3] == pids[1]  # the same two actors, after a replica that failed between
    status = {r.params["size"]: r for r in outcome.records if r.metric == "cell_status"}
    assert status[2].status == "error" and status[2].error.startswith("process 2/2: Runtime")


def test_ray_sends_a_replica_alone_and_nothing_beside_it(monkeypatch):
    """The Ray executor's order (no cluster needed): a replica waits for the cells in flight,
    cells after it wait for it, and a cell planned before it goes first."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from harness.records import Cell
    from harness.run.executors import CellTask, RayExecutor
    from harness.suites import RunContext

    executor = RayExecutor()
    sent: list[str] = []  # what went to Ray, in order: a cell's id, or "id/replica"

    class Send:
        def __init__(self, replica: bool = False) -> None:
            self.replica = replica

        def options(self, **kwargs):
            return self

        def remote(self, task):
            sent.append(f"{task.cell.id}/{task.replica}" if self.replica else task.cell.id)
            return object()

    class Actor:
        run = Send(replica=True)

    monkeypatch.setattr(executor, "_remote", Send(), raising=False)
    monkeypatch.setattr(executor, "_actor", lambda task: Actor())

    def task(index, name, replica=None):
        return CellTask(index, "s", Cell("s", name, {}, {}), "timing" if replica is not None
                        else "training", None, RunContext(), replica=replica, replicas=2)  # type: ignore[arg-type]

    def finish(label):
        ref = next(r for r, t in executor._refs.items()
                   if label in (t.cell.id, f"{t.cell.id}/{t.replica}"))
        del executor._refs[ref]
        executor._release()

    ids = {}
    for index, name, replica in ((0, "t1", None), (2, "r", 0), (3, "t2", None)):
        t = task(index, name, replica)
        ids[name] = t.cell.id
        executor.submit(t)
    assert sent == [ids["t1"]]  # the replica waits for t1; t2 waits behind the replica
    executor.submit(task(1, "t0"))  # planned before the replica: it goes at once
    assert len(sent) == 2
    finish(ids["t1"])
    assert len(sent) == 2  # t0 still in flight
    finish(sent[1])
    assert sent[2:] == [f"{ids['r']}/0"]  # alone
    finish(sent[2])
    assert sent[3:] == [ids["t2"]]
