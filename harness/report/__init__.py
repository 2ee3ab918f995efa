"""Reports on results stores: the HTML report of one run and the comparison of two runs.

>>> from harness.report import compare_runs, write_report
>>> write_report("reports/latest")                       # doctest: +SKIP
>>> cmp = compare_runs("reports/base", "reports/new")    # doctest: +SKIP
>>> cmp.verdict, cmp.exit_code                           # doctest: +SKIP
"""

from harness.report.compare import (
    ROW_STATUSES,
    CompareRow,
    Comparison,
    compare_records,
    compare_runs,
    render_compare_table,
    write_compare_html,
)
from harness.report.html import (
    build_summary,
    render_report,
    summary_table,
    write_report,
)

__all__ = [
    "ROW_STATUSES",
    "CompareRow",
    "Comparison",
    "build_summary",
    "compare_records",
    "compare_runs",
    "render_compare_table",
    "render_report",
    "summary_table",
    "write_compare_html",
    "write_report",
]
