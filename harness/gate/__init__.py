"""The release gate (`harness compare`): two runs in, a verdict and its evidence out.

* :mod:`harness.gate.evidence` - estimates and tests: a typed :class:`Evidence` per decision
  (test, statistic, p, effect, power);
* :mod:`harness.gate.matching` - matching records of two runs;
* :mod:`harness.gate.classify` - one pair's status (threshold, noise, the side-by-side ratio);
* :mod:`harness.gate.compare` - :func:`compare_runs` / :func:`compare_records`, the verdict
  and exit code (0 pass, 1 regression, 2 unusable input, 3 inconclusive) and the power per suite;
* :mod:`harness.gate.render` - the verdict line, rich table and HTML page.

>>> from harness.gate import compare_runs
>>> cmp = compare_runs("reports/base", "reports/new")    # doctest: +SKIP
>>> cmp.verdict, cmp.exit_code, [p.text() for p in cmp.power]   # doctest: +SKIP
"""

from harness.gate.compare import (
    ALPHA,
    EXIT_CODES,
    ROW_STATUSES,
    CompareRow,
    Comparison,
    SuitePower,
    compare_records,
    compare_runs,
)
from harness.gate.evidence import Evidence
from harness.gate.render import (
    power_lines,
    render_compare_table,
    unmatched_summary,
    verdict_line,
    write_compare_html,
)

__all__ = [
    "ALPHA",
    "EXIT_CODES",
    "ROW_STATUSES",
    "CompareRow",
    "Comparison",
    "Evidence",
    "SuitePower",
    "compare_records",
    "compare_runs",
    "power_lines",
    "render_compare_table",
    "unmatched_summary",
    "verdict_line",
    "write_compare_html",
]
