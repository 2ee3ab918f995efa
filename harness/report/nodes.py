"""Timing sections grouped by node: where a run's timing cells ran on several nodes.

A time or a peak measured on one machine compares only with others measured on the same kind
of machine. run.json records the node (host) each cell ran on (``cell_nodes``, written by the
executors) and the nodes with their devices (``executor.nodes``). When the cells of a timing
suite (resource class ``timing`` or ``memory``) ran on more than one node, its section is drawn
once per node from that node's records; a summary (an exponent fit, a crossover) goes with the
node that ran all of its attention's cells, and one whose cells ran on several nodes is left
out (it mixes machines) with a note. One node, or no node recorded: the section is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from markupsafe import Markup

from harness.report._common import label_of
from harness.report.view import HeadlineRow, RunView, Section
from harness.run.store import Record

__all__ = ["TIMING_RESOURCES", "grouped_section", "node_groups", "node_text"]

#: resource classes whose measurements depend on the machine that ran them
TIMING_RESOURCES = ("timing", "memory")


def _resource(view: RunView, suite: str) -> str | None:
    """The suite's resource class: run.json ``suites_meta`` (else the registered suite)."""
    found = (view.suites_meta.get(suite) or {}).get("resource")
    if found is None:
        try:
            from harness.suites import get_suite

            found = get_suite(suite).resource
        except (KeyError, ValueError, ImportError):
            return None
    return str(found)


def node_groups(view: RunView, suite: str) -> dict[str, list[Record]] | None:
    """The suite's records per node, when it is a timing suite whose cells ran on two or more
    nodes; else None. Summary records go with the one node that ran their attention's cells."""
    if _resource(view, suite) not in TIMING_RESOURCES:
        return None
    ran_on = view.meta.get("cell_nodes")
    if not isinstance(ran_on, dict):
        return None
    records = [r for r in view.records if r.suite == suite]
    nodes = sorted({str(ran_on[r.cell]) for r in records if r.cell in ran_on})
    if len(nodes) < 2:
        return None
    groups: dict[str, list[Record]] = {node: [] for node in nodes}
    label_nodes: dict[str, set[str]] = {}
    for r in records:
        if r.cell in ran_on:
            node = str(ran_on[r.cell])
            groups[node].append(r)
            label_nodes.setdefault(label_of(r), set()).add(node)
    for r in records:
        if r.cell not in ran_on:  # a summary (or a cell from before nodes were recorded)
            where = label_nodes.get(label_of(r), set())
            if len(where) == 1:
                groups[next(iter(where))].append(r)
    return groups


def node_text(view: RunView, node: str) -> str:
    """``host (devices)`` from run.json's executor nodes (devices, else CPUs and GPUs)."""
    executor = view.meta.get("executor") if isinstance(view.meta.get("executor"), dict) else {}
    for info in executor.get("nodes") or []:
        if isinstance(info, dict) and str(info.get("host")) == node:
            if info.get("devices"):
                return f"{node} ({', '.join(str(d) for d in info['devices'])})"
            parts = [f"{info[k]:g} {k}" for k in ("cpus", "gpus")
                     if isinstance(info.get(k), (int, float)) and info.get(k)]
            return f"{node} ({', '.join(parts)})" if parts else node
    return node


def grouped_section(view: RunView, suite: str,
                    render: Callable[[RunView], Section | None]) -> Section | None:
    """The suite's section, drawn once per node when its timing cells ran on several nodes."""
    groups = node_groups(view, suite)
    if groups is None:
        return render(view)
    others = [r for r in view.records if r.suite != suite]
    parts: list[Markup] = []
    findings: list[tuple[str, str]] = []
    headline: list[HeadlineRow] = []
    first: Section | None = None
    for node, records in groups.items():
        section = render(RunView(view.meta, [*others, *records]))
        if section is None:
            continue
        text = node_text(view, node)
        parts.append(Markup('<div class="node-group"><h3>Node {}</h3>{}</div>').format(
            text, section.html))
        findings += [(tone, f"[{node}] {finding}") for tone, finding in section.findings]
        headline += [HeadlineRow(row.record, f"{node}: {row.context}", row.cell)
                     for row in section.headline or []]
        first = first or section
    if first is None:
        return None
    shown = {id(r) for records in groups.values() for r in records}
    left = [r for r in view.records if r.suite == suite and id(r) not in shown]
    note = Markup(
        '<p class="lead"><span class="pill warn">{} nodes</span> This run\'s {} cells ran on'
        " several nodes. Timings are comparable only within one node type, so each node's"
        " cells are shown on their own.{}</p>").format(
        len(groups), suite, Markup(
            " {} summary record(s) fitted over cells from several nodes are not shown."
        ).format(len(left)) if left else "")
    glance = first.glance
    if glance is not None:
        glance.sub = f"{glance.sub} · node {next(iter(groups))}".strip(" ·")
    return Section(first.suite, first.title, Markup("").join([note, *parts]), findings, glance,
                   headline or None)

