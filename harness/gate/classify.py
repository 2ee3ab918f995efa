"""Classifying one matched pair of records: status changes, the threshold, and the evidence.

For a pair (``base`` = the reference run, ``new`` = the candidate):

* **informational** - the metric has no direction (``higher_is_better`` is None, or the two runs
  disagree on it), a side has no value, the suite's method changed (``suite_version``), or the
  side-by-side reference changed; shown, never part of the verdict.
* **status changes** - ``ok`` -> ``oom``/``timeout``/``error`` is a regression; the reverse an
  improvement; ``ok`` -> ``skipped`` is *vanished*; skipped -> measured is *new*.
* **values** (both ``ok``) - a **regression** is worse than ``threshold`` (relative, in the
  metric's direction; ``atol`` is the absolute floor under ``|base|``) AND beyond noise by the
  strongest test the records allow (``harness.gate.evidence.judge``). Where both runs have the
  metric's ratio to the reference timed side by side in the same process (duet benchmarking:
  the ratio shares the machine's noise):

  - on a quiet machine both the absolute metric and the ratio must regress (a change of the
    absolute metric alone is the machine's: *unchanged*, "machine drift");
  - when a run was measured on a busy machine (``noisy``) or the calibration matmul shows the
    machine's speed moved by more than ``threshold``, the ratio alone decides; the row is
    *inconclusive* only when the ratio itself is worse beyond the threshold but not beyond its
    noise (the note says what would decide it).

  Without a ratio, a would-be regression on a busy or drifting machine is *inconclusive*.
  The same rules in the better direction give an **improvement**.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from harness.gate.evidence import Change, Evidence, RowSpread, change_of, estimate, judge
from harness.records import Record

__all__ = ["FAILED", "calibration_drift", "classify", "references_differ"]

FAILED = ("oom", "timeout", "error")


def references_differ(base: Record, new: Record) -> bool:
    """Whether two side-by-side ratios were timed against different attentions (then the ratio
    cannot decide; a run that did not record its reference is taken to match)."""
    return None not in (base.reference, new.reference) and base.reference != new.reference


def calibration_drift(base: Record | None, new: Record | None) -> float | None:
    """Relative change of the machine's speed between the runs (same cell), or None."""
    if base is None or new is None or base.status != "ok" or new.status != "ok":
        return None
    b, n = estimate(base), estimate(new)
    if not b or n is None:
        return None
    return n / b - 1.0


def _status_change(base: Record, new: Record, atol: float) -> dict[str, Any] | None:
    """The classification that needs no values (directions, statuses), or None."""
    hib = new.higher_is_better
    bv, nv = getattr(base, "suite_version", None), getattr(new, "suite_version", None)
    if bv is not None and nv is not None and bv != nv:
        return {"status": "informational", "higher_is_better": hib,
                "note": f"method changed (suite_version {bv} -> {nv}): not comparable"}
    if references_differ(base, new):
        return {"status": "informational", "higher_is_better": hib, "note": "side-by-side"
                f" reference changed ({base.reference} -> {new.reference}): not comparable"}
    if hib is None or base.higher_is_better != hib:
        note = "no direction" if base.higher_is_better == hib else \
            "direction differs between runs"
        if base.status != new.status:
            note += f"; {base.status} -> {new.status}"
        out: dict[str, Any] = {"status": "informational", "note": note, "higher_is_better": hib}
        if base.value is not None and new.value is not None:
            out["diff"] = new.value - base.value
            out["rel_change"] = out["diff"] / max(abs(base.value), atol)
            out["absolute_rule"] = abs(base.value) < atol
        return out
    if base.status == "ok" and new.status in FAILED:
        return {"status": "regression", "note": f"ok -> {new.status}: {new.error or ''}".strip()}
    if base.status in FAILED and new.status == "ok":
        return {"status": "improvement", "note": f"{base.status} -> ok"}
    if new.status == "skipped" and base.status != "skipped":
        return {"status": "vanished",
                "note": f"{base.status} -> skipped: {new.error or 'no reason given'}"}
    if base.status == "skipped" and new.status != "skipped":
        return {"status": "new", "note": f"skipped -> {new.status}"}
    if base.status != "ok" or new.status != "ok":
        same = base.status == new.status
        return {"status": "unchanged",
                "note": f"still {new.status}" if same else f"{base.status} -> {new.status}"}
    return None


def _status_of(ev: Evidence, threshold: float) -> str:
    if not ev.significant:
        return "unchanged"
    return "regression" if (ev.effect or 0.0) < 0 else "improvement"


#: The tests over per-group estimates (``Evidence.test``).
GROUP_TESTS = ("welch_t_processes", "welch_t_windows")


def _too_weak(ev: Evidence, threshold: float) -> bool:
    """Worse beyond the threshold, but not beyond the test's noise."""
    return ev.effect is not None and ev.effect < -threshold and not ev.significant


def _weaker(a: Evidence, b: Evidence) -> Evidence:
    """The evidence that could detect less (unknown power counts as the weakest)."""
    if a.detectable is None:
        return a
    if b.detectable is None or b.detectable > a.detectable:
        return b
    return a


def what_would_decide(ev: Evidence) -> str:
    """What would make an undecided row conclusive, from its evidence."""
    if ev.test in GROUP_TESTS:
        power = f" (it could detect {ev.detectable:.0%})" if ev.detectable is not None else ""
        return (f"{ev.n_base} vs {ev.n_new} {ev.units} too few for the spread between them"
                f"{power}: more windows or processes (throughput `windows`, `processes`), or a"
                " quieter machine")
    if ev.one_process:
        return ("one timing window per run: time in several (throughput `windows: 5` or"
                " `processes: 3`), or on a quieter machine")
    if ev.test in ("intervals", "stderr"):
        return "intervals too wide: more seeds or more test examples"
    return "rerun both sides on a quiet machine"


#: Evidence from one run's figures alone (no spread between runs in it): a suite's declared
#: ``single_run_noise`` applies to it.
ONE_RUN_TESTS = ("threshold", "intervals", "stderr")


def _against_spread(status: str, ev: Evidence, spread: RowSpread, out: dict[str, Any]
                    ) -> tuple[str, Evidence]:
    """A timed row's change must also stand out of the spread of all the suite's rows between
    the two runs (the empirical null); the spread's floor joins the row's power."""
    if ev.effect is None or ev.test not in (*GROUP_TESTS, "mann_whitney_rounds",
                                            "below_threshold"):
        return status, ev
    floor = spread.critical
    ev = replace(ev, detectable=max(ev.detectable or 0.0, floor), detail=spread.text())
    moved = abs(math.log1p(max(ev.effect, -0.999999)))
    if status in ("regression", "improvement", "inconclusive") and moved <= math.log1p(floor):
        out["note"] = (f"{ev.effect:+.1%} is within the spread of the {spread.rows} timed rows"
                       f" of these runs ({spread.text()})")
        status = "unchanged"
    return status, ev


def _against_noise(status: str, ev: Evidence, change: Change, noise: float,
                   out: dict[str, Any]) -> tuple[str, Evidence]:
    """A row judged on one run's figures alone must move by more than its suite's declared
    ``single_run_noise``, which is then its power."""
    if ev.test not in ONE_RUN_TESTS:
        return status, ev
    ev = replace(ev, detectable=max(ev.detectable or 0.0, noise))
    if status in ("regression", "improvement") and abs(change.better) <= noise:
        out["note"] = (f"{change.better:+.1%} is within the {noise:.0%} one measurement of this"
                       " suite moves between runs of identical code")
        status = "unchanged"
    return status, ev


def classify(base: Record, new: Record, threshold: float, atol: float, *, alpha: float,
             ratio: tuple[Record, Record] | None = None, drift: float | None = None,
             seeds: tuple[Change, Evidence] | None = None,
             spread: RowSpread | None = None, noise: float | None = None) -> dict[str, Any]:
    """The row fields (status, diff, rel_change, note, evidence, ...) of one matched pair.

    ``ratio``: the pair's side-by-side ratio records; ``drift``: the machine's speed change
    (calibration matmul); ``seeds``: the pair's group over seeds, which then decides;
    ``spread``: the empirical null of the suite's timed rows (``RowSpread``); ``noise``: the
    suite's ``single_run_noise``, which a row judged on one run's figures must exceed.
    """
    fixed = _status_change(base, new, atol)
    if fixed is not None:
        return fixed
    change = change_of(base, new, atol)
    if change is None:
        if base.value is None and new.value is None:
            return {"status": "unchanged", "note": "no value in either run"}
        side = "base" if base.value is None else "new"
        return {"status": "informational", "note": f"no value in the {side} run"}
    out: dict[str, Any] = {"diff": change.diff, "rel_change": change.rel,
                           "absolute_rule": change.absolute}
    if seeds is not None:
        mean_change, ev = seeds
        out.update(status=_status_of(ev, threshold), evidence=ev,
                   note=f"over {ev.n_base} seeds: mean {mean_change.rel:+.1%}, {ev.text()}")
        return out
    ev = judge(base, new, change, threshold, alpha, atol)
    status = _status_of(ev, threshold)
    deciding = ev
    noisy = "; ".join(f"{side} run: {r.noisy}" for side, r in (("base", base), ("new", new))
                      if r.noisy)
    drifted = drift is not None and abs(drift) > threshold
    if ratio is not None:
        r_change = change_of(*ratio, atol)
        r_ev = judge(*ratio, r_change, threshold, alpha, atol) if r_change else None
        r_text = (f"{r_change.rel:+.1%}, {r_ev.text()}" if r_change and r_ev
                  else "no ratio value")
        if noisy or drifted:  # the ratio shares the machine's noise: it alone decides
            why = f"machine speed {drift:+.0%}" if drifted else "busy machine"
            if r_ev is None:
                status = "inconclusive" if status == "regression" else status
                out["note"] = f"{why} and no ratio value to decide"
            else:
                deciding = r_ev
                status = _status_of(r_ev, threshold)
                out["note"] = f"{why}: judged on speed vs reference ({r_text})"
                if _too_weak(r_ev, threshold):
                    status = "inconclusive"
                    out["note"] += f"; {what_would_decide(r_ev)}"
                elif status == "regression" and new.label and \
                        ratio[1].reference == new.label:
                    # the reference itself is timed beside the calibration matmul, a different
                    # kind of work that a busy machine slows differently: no duet to decide
                    status = "inconclusive"
                    out["note"] = (f"{why}: the reference attention's own ratio is to the"
                                   f" calibration matmul ({r_text}); rerun on a quiet machine")
        elif r_ev is not None:
            if status == "regression" and _status_of(r_ev, threshold) != "regression":
                status = "unchanged"
                deciding = r_ev
                out["note"] = f"machine drift: speed vs reference unchanged ({r_text})"
            else:  # both tests must reject: the power is the weaker one's
                deciding = _weaker(ev, r_ev)
                if status == "regression":
                    out["note"] = f"confirmed by speed vs reference ({r_text})"
    elif (noisy or drifted) and (status == "regression" or _too_weak(ev, threshold)):
        status = "inconclusive"
        why = f"machine speed {drift:+.0%} (calibration)" if drifted else f"noisy ({noisy})"
        out["note"] = (f"{why} and no ratio to the side-by-side reference to decide; rerun on"
                       " a quiet machine")
    if spread is not None:
        status, deciding = _against_spread(status, deciding, spread, out)
    if noise is not None:
        status, deciding = _against_noise(status, deciding, change, noise, out)
    out["evidence"] = deciding
    out["status"] = status
    if status == "unchanged" and "note" not in out:
        out["note"] = "below threshold" if not change.beyond(threshold) else "within noise"
    return out
