"""scripts/same_records.py: two runs compared record for record (timings by presence, measured
bytes within a relative tolerance, every other metric by value)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from harness.records import Cell, Record
from harness.run.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("same_records",
                                                  REPO / "scripts" / "same_records.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["same_records"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def _records(**changes) -> list[tuple[Cell, list[Record]]]:
    """A small run: an accuracy cell (F1 with its interval, a training time), a throughput
    timing, a memory peak and a bias summary; ``changes`` replace fields of one metric's record
    (``metric=dict(...)``, or ``metric=None`` to leave it out)."""
    acc = Cell("accuracy", "linear", {}, {"task": "recall", "seed": 0})
    thr = Cell("throughput", "linear", {}, {"seq_len": 256, "pass": "forward"})
    mem = Cell("memory", "linear", {}, {"seq_len": 1024, "mode": "forward"})
    rows = [
        (acc, [Record("accuracy", "linear", {}, acc.params, "macro_f1", 0.8125, "f1", True,
                     ci_low=0.75, ci_high=0.86, n=500),
              Record("accuracy", "linear", {}, acc.params, "train_time_s", 12.5, "s", False)]),
        (thr, [Record("throughput", "linear", {}, thr.params, "forward_ms", 3.2, "ms", False)]),
        (mem, [Record("memory", "linear", {}, mem.params, "peak_bytes", 4.0e6, "bytes", False)]),
        (Cell("bias", "*", {}, {"strength": 0.8}), [
            Record("bias", "linear", {}, {"strength": 0.8, "seed": 0},
                   "demographic_parity_difference_diff_vs_reference", -0.0123, None, False)]),
    ]
    changed = []
    for cell, records in rows:
        kept = []
        for r in records:
            if r.metric not in changes:
                kept.append(r)
            elif changes[r.metric] is not None:
                kept.append(Record(**{**r.__dict__, **changes[r.metric]}))
        changed.append((cell, kept))
    return changed


def _run(path: Path, **changes) -> Path:
    store = ResultsStore.create(path, {"profile": {"name": "t"}})
    for cell, records in _records(**changes):
        store.write_cell(cell, records)
    return path


def test_two_runs_with_the_same_values_are_the_same(script, tmp_path, capsys):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", train_time_s={"value": 30.0}, forward_ms={"value": 9.9},
             peak_bytes={"value": 4.1e6}, macro_f1={"value": 0.8125 + 1e-9})
    assert script.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "2 compared by value" in out and "1 by bytes" in out
    assert "2 timing-derived by presence" in out and out.rstrip().endswith("the same")


@pytest.mark.parametrize(("changes", "expected"), [
    ({"macro_f1": {"value": 0.8}}, "differs: accuracy/linear/macro_f1"),
    ({"macro_f1": {"ci_high": 0.9}}, "ci_high 0.86 vs 0.9"),
    ({"demographic_parity_difference_diff_vs_reference": {"value": -0.0124}},
     "differs: bias/linear/demographic_parity_difference_diff_vs_reference"),
    ({"peak_bytes": {"value": 4.5e6}}, "beyond 0.05 relative"),
    ({"forward_ms": {"status": "oom", "value": None}}, "status ok vs oom"),
    ({"forward_ms": None}, "only in A: throughput/linear/forward_ms"),
    ({"macro_f1": {"params": {"task": "recall", "seed": 1}}},
     'only in B: accuracy/linear/macro_f1 {"seed":1,"task":"recall"}'),
])
def test_a_changed_or_missing_record_is_named(script, tmp_path, capsys, changes, expected):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", **changes)
    assert script.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert expected in out, out
    assert "difference(s)" in out


def test_tolerances_are_options(script, tmp_path, capsys):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", macro_f1={"value": 0.8126}, peak_bytes={"value": 4.5e6})
    assert script.main([str(a), str(b)]) == 1
    assert script.main([str(a), str(b), "--rtol", "1e-3", "--bytes-rtol", "0.2"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        script.main([str(a), str(b), "--rtol", "-1"])
    assert stop.value.code == 2


def test_a_folder_that_is_no_run_exits_2(script, tmp_path, capsys):
    a = _run(tmp_path / "a")
    assert script.main([str(a), str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
