"""The Ray executor on a real local cluster started here (and always shut down): the same
metric values as the serial executor, and a worker killed mid-cell is retried or recorded."""

from __future__ import annotations

import copy
import os
import threading
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.run.executors import RayExecutor, SerialExecutor
from harness.run.profiles import profile_from_dict
from harness.run.runner import start_run
from harness.run.store import read_records, read_run
from tests.test_executors import PARITY, TRAIN, parity_profile, values

REPO = Path(__file__).resolve().parents[1]
ray = pytest.importorskip("ray", reason="the ray extra is not installed")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster():
    # workers inherit this environment: they import the tests' plugin attentions too
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(REPO / "tests"),
                                                           saved) if p)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def test_ray_records_a_hanging_cell_as_timeout_and_goes_on(cluster, tmp_path):
    import sys

    from harness.attention import base, load_plugins, plugins

    entries, loaded = dict(base._REGISTRY._entries), dict(plugins._LOADED)
    load_plugins(["misbehaving_attentions"])
    profile = profile_from_dict({
        "name": "hang", "seeds": [0], "device": "cpu", "threads": 1,
        "attentions": [{"name": "standard"}, {"name": "sleepy"}],
        "suites": {"throughput": {"seq_lens": [16, 32], "heads": 1, "head_dim": 8,
                                  "min_run_time": 0.01, "warmup": 0, "passes": ["forward"],
                                  "model": None, "timeout_s": 2.0}}})
    started = time.monotonic()
    outcome = start_run(profile, out_dir=tmp_path, argv=["t"], executor=RayExecutor())
    assert time.monotonic() - started < 120
    status = {r.label: r.status for r in outcome.records if r.cell and r.metric == "cell_status"}
    assert status == {"sleepy": "timeout"}, outcome.records
    assert "ok" in {r.status for r in outcome.records if r.label == "standard"}
    assert not {r.status for r in outcome.records if r.label == "standard"} & {"error", "timeout"}
    base._REGISTRY._entries.clear()  # the plugin was for this test only
    base._REGISTRY._entries.update(entries)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
    sys.modules.pop("misbehaving_attentions", None)


def test_ray_gives_the_serial_executors_values(cluster, tmp_path):
    """Through the CLI: `--executor ray` joins the cluster this process runs."""
    serial = start_run(parity_profile(), out_dir=tmp_path / "serial", argv=["t"],
                       executor=SerialExecutor())
    import yaml

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(PARITY)))
    out = tmp_path / "ray"
    result = CliRunner().invoke(app, ["run", "--profile", str(path), "--out", str(out),
                                      "--no-progress", "--no-report", "--executor", "ray"])
    assert result.exit_code == 0, result.output
    run_dir = (out / "latest").resolve()
    a, b = values(serial.records), values(read_records(run_dir))
    assert a == b
    assert any(k[-1] == "fidelity_rel_error" for k in a)  # needed the shipped checkpoint
    meta = read_run(run_dir)
    assert meta["executor"]["name"] == "ray" and meta["executor"]["nodes"][0]["cpus"] == 2
    assert len(meta["cell_nodes"]) == len({r.cell for r in serial.records
                                           if not r.cell.startswith("summary")})
    # artifacts came back from the workers into the run dir (no shared filesystem assumed)
    cells = {r.cell for r in serial.records if r.metric == "macro_f1"}
    assert all((run_dir / "artifacts" / f"{c}.json").is_file() for c in cells)


def _kill_a_ray_task_worker(stop: threading.Event, killed: list[int]) -> None:
    while not stop.is_set():
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info.get("cmdline") or [])
            if cmd.startswith("ray::_ray_run"):
                time.sleep(0.5)  # mid-cell
                try:
                    proc.kill()
                except psutil.Error:
                    continue
                killed.append(proc.pid)
                return
        time.sleep(0.05)


@pytest.mark.parametrize("retries", [1, 0])
def test_ray_survives_a_worker_killed_mid_cell(cluster, tmp_path, retries):
    data = copy.deepcopy(PARITY)
    data["attentions"] = [{"name": "standard"}]
    data["suites"] = {"bias": {**data["suites"]["bias"],
                               "train": {**TRAIN, "steps": 300, "eval_every": 300}}}
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_a_ray_task_worker, args=(stop, killed))
    killer.start()
    try:
        outcome = start_run(profile_from_dict(data), out_dir=tmp_path, argv=["t"],
                            executor=RayExecutor(max_retries=retries))
    finally:
        stop.set()
        killer.join()
    assert killed, "no Ray worker was killed"
    if retries:
        assert outcome.exit_code == 0 and outcome.counts.get("error", 0) == 0
    else:
        assert outcome.exit_code == 1
        errors = [r for r in outcome.records if r.status == "error"]
        assert len(errors) == 1 and "Ray worker running this cell failed" in errors[0].error
        assert "Worker" in errors[0].error or "died" in errors[0].error.lower()
