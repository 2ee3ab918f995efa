"""Report findings about what a run read: unreadable media files left out, and text splits
cut at ``max_len`` more than ``TRUNCATION_WARN`` of the time (a model that never sees most of
each review scores something else than the data)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.data.text import TRUNCATION_WARN
from harness.records import Record

__all__ = ["input_findings"]

_NAMED = 10  # skipped files named in the finding


def input_findings(meta: dict[str, Any], records: Iterable[Record]) -> list[tuple[str, str]]:
    """``(tone, text)`` findings for the verdict: skipped files (run.json ``inputs.media``) and
    heavy truncation (``truncated_fraction`` records, and ``probe_truncated_fraction``)."""
    out: list[tuple[str, str]] = []
    media = (meta.get("inputs") or {}).get("media") or {}
    skipped = media.get("skipped_files") or []
    if skipped:
        names = "; ".join(f"{s.get('path')} ({s.get('reason')})" for s in skipped[:_NAMED])
        more = f" and {len(skipped) - _NAMED} more" if len(skipped) > _NAMED else ""
        out.append(("warn", f"{len(skipped)} unreadable media file(s) were left out"
                            f" (--skip-bad-files): {names}{more}."))
    worst: dict[tuple[str, str], float] = {}
    for r in records:
        if r.metric in ("truncated_fraction", "probe_truncated_fraction") and r.value is not None \
                and r.value > TRUNCATION_WARN and r.status == "ok":
            where = (r.suite, str(r.params.get("split") or r.params.get("set") or "probe set"))
            worst[where] = max(worst.get(where, 0.0), float(r.value))
    for (suite, split), value in sorted(worst.items()):
        out.append(("warn", f"{suite}: {value:.0%} of the {split} texts are longer than max_len"
                            f" and were cut (over {TRUNCATION_WARN:.0%}); raise max_len or"
                            " expect scores on the texts' beginnings only."))
    return out
