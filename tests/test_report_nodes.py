"""The report groups timing sections by node when a run's timing cells ran on several nodes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from report_fixtures import build_run

from harness.report import write_report
from harness.report.nodes import node_groups
from harness.report.view import RunView
from harness.run.store import read_records

NODES = [{"host": "gpu-a", "cpus": 32, "devices": ["cpu", "cuda:0 NVIDIA H100"]},
         {"host": "cpu-b", "cpus": 8, "devices": ["cpu"]}]
ON_A = ("standard[sdpa]", "standard[eager]")  # the other attentions' cells ran on cpu-b


def _place(run_dir: Path, where) -> None:
    """Record in run.json which node ran each cell (``where(record) -> host``)."""
    records = read_records(run_dir)
    cell_nodes = {r.cell: where(r) for r in records if r.cell and not r.cell.startswith("summary")}
    path = run_dir / "run.json"
    meta = json.loads(path.read_text())
    meta.update(cell_nodes=cell_nodes, executor={"name": "ray", "nodes": NODES})
    path.write_text(json.dumps(meta))


def _section(html: str, suite: str) -> str:
    return re.search(rf'<section id="{suite}">(.*?)</section>', html, re.S).group(1)


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory) -> Path:
    run_dir = build_run(tmp_path_factory.mktemp("nodes") / "run",
                        suites=("throughput", "memory", "accuracy"), seq_lens=(256, 1024, 4096))
    _place(run_dir, lambda r: "gpu-a" if (r.label or r.attention) in ON_A else "cpu-b")
    return run_dir


def test_timing_sections_are_grouped_by_node(two_nodes: Path) -> None:
    html = write_report(two_nodes).read_text(encoding="utf-8")
    for suite in ("throughput", "memory"):
        section = _section(html, suite)
        assert "comparable only within one node type" in section
        assert "Node gpu-a (cpu, cuda:0 NVIDIA H100)" in section
        assert "Node cpu-b (cpu)" in section
        groups = {part.split(" ", 1)[0]: part for part in section.split("<h3>Node ")[1:]}
        a, b = groups["gpu-a"], groups["cpu-b"]
        assert "linear[favor]" in b and "linear[favor]" not in a  # each node: its own cells
        assert "standard[eager]" in a and "standard[eager]" not in b
    # training results do not depend on the machine: one accuracy section, no node groups
    assert "Node gpu-a" not in _section(html, "accuracy")


def test_summaries_go_with_their_node_and_mixed_ones_are_left_out(two_nodes: Path,
                                                                    tmp_path: Path) -> None:
    meta = json.loads((two_nodes / "run.json").read_text())
    view = RunView(meta, read_records(two_nodes))
    groups = node_groups(view, "throughput")
    assert groups is not None and set(groups) == {"gpu-a", "cpu-b"}
    fitted = {(r.label, node) for node, recs in groups.items() for r in recs
              if r.metric == "time_exponent"}
    assert ("standard[eager]", "gpu-a") in fitted and ("linear[favor]", "cpu-b") in fitted
    assert node_groups(view, "accuracy") is None
    # one attention's lengths split over both nodes: its exponent mixes machines, not shown
    run_dir = build_run(tmp_path / "mixed", suites=("throughput",), seq_lens=(256, 1024, 4096))
    _place(run_dir, lambda r: "gpu-a" if r.params.get("seq_len") == 4096 else "cpu-b")
    html = write_report(run_dir).read_text(encoding="utf-8")
    assert re.search(r"\d+ summary record\(s\) fitted over cells from several nodes", html)


def test_one_node_leaves_the_report_unchanged(tmp_path: Path) -> None:
    run_dir = build_run(tmp_path / "one", suites=("throughput", "memory"),
                        seq_lens=(256, 1024, 4096))
    before = write_report(run_dir).read_text(encoding="utf-8")
    _place(run_dir, lambda r: "gpu-a")
    after = write_report(run_dir).read_text(encoding="utf-8")
    assert "Node gpu-a" not in after and "one node type" not in after
    strip = re.compile(r'<section id="environment">.*?</section>', re.S)  # executor shown there
    assert _section(strip.sub("", before), "throughput") == _section(strip.sub("", after),
                                                                      "throughput")
