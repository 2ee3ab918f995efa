"""A complete suite in one module: what the 2-file rule (module + profile entry) needs.

It declares its metrics, version and report section; registering it (importing this module)
and naming it in a profile is all it takes to run it, see it in the report and compare it.
"""

from __future__ import annotations

from harness.records import Cell, Record
from harness.report.view import Glance, GlanceCell, RunView, Section
from harness.suites.base import (
    AttentionSpec,
    MetricSpec,
    RunContext,
    Suite,
    SuiteParams,
    register_suite,
)

NAME = "example"

_SECTION = """{% from "macros.html" import value_cell, label_cell %}
<h2>Example suite</h2>
<table class="sortable"><thead><tr><th>attention</th><th>size</th><th>{{ title }}</th></tr></thead>
<tbody>{% for r in rows %}<tr>{{ label_cell(r.label, view.color(r.label)) }}<td>{{ r.size }}</td>
{{ value_cell(r.cell) }}</tr>{% endfor %}</tbody></table>
"""


class ExampleParams(SuiteParams):
    sizes: tuple[int, ...] = (4, 8)
    offset: float = 0.0  # added to every value: a planted regression for compare
    timeout_s: float = 600.0  # per cell


@register_suite
class ExampleSuite(Suite):
    name = NAME
    description = "a toy suite: label length times size, per attention"
    Params = ExampleParams
    version = 3
    section = f"{__name__}:render_section"
    metrics = (
        MetricSpec("toy_cost", "toy cost", "ms", False, headline=True),
        MetricSpec("toy_score", "toy score", "fraction", True),
    )

    def plan(self, params: ExampleParams, attentions: list[AttentionSpec],
             seeds: list[int]) -> list[Cell]:
        return [spec.cell(self.name, {"size": n}) for spec in attentions for n in params.sizes]

    def run_cell(self, cell: Cell, params: ExampleParams, ctx: RunContext) -> list[Record]:
        cost = len(cell.label) * cell.params["size"] + params.offset
        return [self.record(cell, "toy_cost", value=cost, n=1),  # unit, direction: its spec
                self.record(cell, "toy_score", value=1 / cost, n=1)]


def render_section(view: RunView) -> Section | None:
    """The suite's own section: one row per cell, and its column in the at-a-glance table."""
    records = view.select(NAME, "toy_cost", status=None)
    if not records:
        return None
    rows = [{"label": r.label, "size": r.params["size"], "cell": view.cell(r)} for r in records]
    glance = Glance("toy cost", "largest size")
    for r in records:
        glance.cells[str(r.label)] = GlanceCell(view.value_text(r))
    html = view.render_string(_SECTION, rows=rows, title=view.display(NAME, "toy_cost"))
    return Section(NAME, "Example", html, [("good", "The example suite ran.")], glance)
