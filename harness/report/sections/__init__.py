"""Report sections: find the renderer a suite declared, or use the generic one.

A suite names its renderer in its ``section`` declaration (``"package.module:function"``),
which run.json keeps in ``suites_meta``; the function takes a :class:`RunView` and returns a
:class:`Section` (or None when the run has nothing to show). A suite without one, or whose
renderer cannot be imported here, gets :func:`generic`: a table of its declared metrics.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial

from harness.report._common import label_of
from harness.report.view import Glance, GlanceCell, RunView, Section, context_of, seed_key

__all__ = ["Renderer", "generic", "renderer"]

Renderer = Callable[[RunView], "Section | None"]


def renderer(view: RunView, suite: str) -> Renderer:
    """The section renderer ``suite`` declared in run.json, else the generic one."""
    path = (view.suites_meta.get(suite) or {}).get("section")
    if not path:
        return partial(generic, suite=suite)
    module, _, name = str(path).partition(":")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        note = f"Its declared section {path} is not available here ({err}): generic view."
        return partial(generic, suite=suite, note=note)
    if not callable(found):
        return partial(generic, suite=suite, note=f"{path} is not callable: generic view.")
    return found


def generic(view: RunView, suite: str, note: str = "") -> Section | None:
    """Every record of the suite's declared metrics (then any others) as one table, and the
    headline metric's first value per attention in the at-a-glance table."""
    records = view.select(suite, status=None)
    if not records:
        return None
    declared = [m["name"] for m in view.metrics(suite)]
    order = {name: i for i, name in enumerate(declared)}
    labels = {label: i for i, label in enumerate(view.labels)}
    records.sort(key=lambda r: (order.get(r.metric, len(order)), r.metric,
                                labels.get(label_of(r), len(labels)), seed_key(r)))
    rows = [{"label": label_of(r), "color": view.color(label_of(r)),
             "metric": view.display(suite, r.metric), "context": context_of(r),
             "cell": view.cell(r)} for r in records]
    headline = view.headline_metric(suite)
    glance = None
    if headline is not None:
        glance = Glance(f"{suite}: {view.display(suite, headline)}")
        for r in records:
            if r.metric == headline and label_of(r) not in glance.cells:
                cell = view.cell(r)
                glance.cells[label_of(r)] = GlanceCell(cell["text"], cell["unc"])
    description = str((view.suites_meta.get(suite) or {}).get("description") or "")
    html = view.template("sections/generic.html", suite=suite, rows=rows, note=note,
                         description=description)
    return Section(suite, suite.capitalize(), html, glance=glance)
