"""The HTML report of one run (the comparison of two runs is :mod:`harness.gate`).

>>> from harness.report import write_report
>>> write_report("reports/latest")                       # doctest: +SKIP
"""

from harness.report.html import (
    build_summary,
    render_report,
    summary_table,
    write_report,
)

__all__ = [
    "build_summary",
    "render_report",
    "summary_table",
    "write_report",
]
