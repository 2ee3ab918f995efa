"""Report sections: find the renderer a suite declared, or use the generic one.

A suite names its renderer in its ``section`` declaration (``"package.module:function"``),
which run.json keeps in ``suites_meta``; the function takes a :class:`RunView` and returns a
:class:`Section` (or None when the run has nothing to show). It is imported only when it is the
harness's own or a suite registered here declares it. A suite without one, or whose renderer is
not imported here, gets :func:`generic`: a table of its declared metrics.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from harness.report._common import format_params, label_of
from harness.report.view import (
    HIDDEN_PARAMS,
    Glance,
    GlanceCell,
    HeadlineRow,
    RunView,
    Section,
    context_of,
    seed_key,
)
from harness.run.store import Record, canonical_json

__all__ = ["CI_METHODS", "Renderer", "generic", "headline_rows", "interval_cell", "method_text",
           "renderer"]

Renderer = Callable[[RunView], "Section | None"]

#: How each interval method (a record's ``ci_method``) reads in the report.
CI_METHODS = {
    "t": "Student-t interval over seeds",
    "wilson": "Wilson score interval",
    "bootstrap": "percentile bootstrap",
    "paired_bootstrap": "paired percentile bootstrap on the same test examples",
    "normal_approx": "normal approximation",
    "ols_t": "least-squares slope, t-interval",
    "t_over_seeds": "Student-t interval over seeds",
}


#: What an interval without a ``ci_method`` is, by its ``interval`` kind.
_UNNAMED = {"iqr": "interquartile range of the repeated measurements"}


def method_text(method: str | None) -> str:
    """A record's ``ci_method`` for a reader (the name itself when unknown; empty for None)."""
    if not method:
        return ""
    known = CI_METHODS.get(str(method))
    return f"{known} ({method})" if known else str(method)


def interval_cell(view: RunView, r: Record | None) -> dict[str, Any]:
    """``view.cell(r)`` whose hover text (the cell's title) also names how its interval was
    made (``ci_method``), so that every interval shown says its method."""
    cell = view.cell(r)
    how = ""
    if r is not None and cell["unc"]:
        how = method_text(r.ci_method) or _UNNAMED.get(r.interval or "", "method not recorded")
    if how:
        cell["method"] = how
        cell["error"] = "; ".join(x for x in (cell["error"], f"interval: {how}") if x)
    return cell


def headline_rows(view: RunView, suite: str) -> list[HeadlineRow]:
    """The summary table's generic choice (every record of the suite's headline metric without
    a ``group`` parameter, in attention order), with cells that name their interval method."""
    metric = view.headline_metric(suite)
    recs = [r for r in view.select(suite, metric, None)
            if metric and "group" not in r.params and label_of(r) in view.labels]
    recs.sort(key=lambda r: (view.labels.index(label_of(r)), seed_key(r),
                             canonical_json(r.params)))
    return [HeadlineRow(r, format_params(r.params, ("seed", *HIDDEN_PARAMS)),
                        interval_cell(view, r)) for r in recs]


def _declared_here(suite: str, path: str) -> bool:
    """Whether ``path`` is the harness's own code or the section of a suite registered in this
    process (built-in, installed, or loaded by ``--plugin``): a report never imports code only
    because a run.json names it."""
    if path.startswith("harness."):
        return True
    if "harness.suites.base" not in sys.modules:  # no suite registered here
        return False
    from harness.suites.base import get_suite, list_suites

    try:
        return suite in list_suites() and get_suite(suite).section == path
    except ValueError:  # an installed suite that cannot be imported
        return False


def renderer(view: RunView, suite: str) -> Renderer:
    """The section renderer ``suite`` declared in run.json, else the generic one."""
    path = (view.suites_meta.get(suite) or {}).get("section")
    if not path:
        return partial(generic, suite=suite)
    if not _declared_here(suite, str(path)):
        note = (f"Its declared section {path} is not imported (no suite {suite!r} declaring it"
                " is registered here; install its package or pass --plugin): generic view.")
        return partial(generic, suite=suite, note=note)
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
             "cell": interval_cell(view, r)} for r in records]
    headline = view.headline_metric(suite)
    glance = None
    if headline is not None:
        glance = Glance(f"{suite}: {view.display(suite, headline)}")
        for r in records:
            if r.metric == headline and label_of(r) not in glance.cells:
                cell = interval_cell(view, r)
                glance.cells[label_of(r)] = GlanceCell(cell["text"], cell["unc"])
    description = str((view.suites_meta.get(suite) or {}).get("description") or "")
    html = view.template("sections/generic.html", suite=suite, rows=rows, note=note,
                         description=description)
    return Section(suite, suite.capitalize(), html, glance=glance,
                   headline=headline_rows(view, suite))
