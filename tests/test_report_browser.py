"""Open the generated pages in headless Chromium: no console errors, the charts are there.

Skipped when no Chromium is installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_fixtures import build_run

from harness.gate import compare_runs, write_compare_html
from harness.report import write_report
from harness.run.store import Record

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome", "chrome")
                if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium/Chrome on PATH")
CONSOLE = re.compile(r"CONSOLE|Uncaught|net::ERR_", re.I)


def _open(page: Path, profile: Path, *extra: str) -> tuple[str, list[str]]:
    """Load ``page``; return the DOM after load and the console / load-error log lines."""
    cmd = [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=2000", *extra, page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if CONSOLE.search(line)]


def test_console_check_catches_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><svg></svg><script>missing_fn()</script></body></html>")
    _, errors = _open(bad, tmp_path / "profile", "--dump-dom")
    assert any("missing_fn" in line for line in errors)


def test_report_renders_without_console_errors(tmp_path: Path) -> None:
    page = write_report(build_run(tmp_path / "run"))
    dom, errors = _open(page, tmp_path / "profile", "--dump-dom")
    assert errors == []
    assert dom.count("<svg") == 11
    assert len(re.findall(r"<circle", dom)) > 100  # the plotted points
    for section in ("verdict", "summary", "throughput", "memory", "accuracy", "bias"):
        assert f'id="{section}"' in dom
    shot = tmp_path / "report.png"
    _, errors = _open(page, tmp_path / "profile", f"--screenshot={shot}",
                      "--window-size=1400,3000", "--hide-scrollbars")
    assert errors == [] and shot.stat().st_size > 50_000


def test_escaped_labels_do_not_execute(tmp_path: Path) -> None:
    label = "<img src=x onerror=console.error('xss')><script>console.error('xss')</script>"
    page = write_report(build_run(tmp_path / "run", suites=("throughput", "bias"),
                                  attentions=("standard[sdpa]", label)))
    dom, errors = _open(page, tmp_path / "profile", "--dump-dom")
    assert errors == []  # neither the script nor the onerror handler ran
    assert "<img" not in dom and "&lt;img src=x" in dom


def test_compare_page_renders_without_console_errors(tmp_path: Path) -> None:
    def slower(r: Record) -> Record:
        if r.metric == "forward_ms" and r.label == "linear[favor]":
            r.value, r.ci_low, r.ci_high = r.value * 2, r.ci_low * 2, r.ci_high * 2  # type: ignore[operator]
        return r

    base = build_run(tmp_path / "base", suites=("throughput",))
    new = build_run(tmp_path / "new", suites=("throughput",), transform=slower)
    page = write_compare_html(compare_runs(base, new), tmp_path / "compare.html")
    dom, errors = _open(page, tmp_path / "profile", "--dump-dom")
    assert errors == []
    assert '<div class="banner fail">FAIL</div>' in dom and 'id="regression"' in dom
