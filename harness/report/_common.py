"""Helpers shared by the report and the comparison page: value formatting and the templates."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from harness.report.plots import PALETTE, format_number
from harness.run.store import Record

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATUS_ORDER = ("error", "oom", "skipped", "ok")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The jinja2 environment: autoescape on for every template, strict undefined names."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    return env


def render(template: str, **context: Any) -> str:
    """Render one template of ``harness/report/templates`` with autoescaping."""
    return environment().get_template(template).render(**context)


def reference_of(meta: dict[str, Any], labels: Sequence[str] = ()) -> str | None:
    """The run's reference label: run.json ``reference``; stores of schema 1 lack it, and
    their suites compared with the attention labelled ``standard``."""
    if "reference" in meta:
        ref = meta.get("reference")
        return str(ref) if ref else None
    return "standard" if "standard" in labels else None


def attention_colors(meta: dict[str, Any], records: Sequence[Record] = (),
                     base: dict[str, str] | None = None,
                     prefer: dict[str, str] | None = None) -> dict[str, str]:
    """One colour per attention label, keyed by the label itself.

    The reference gets the first colour; every other label starts from a slot picked by a hash
    of its text (a collision takes the next free slot, in run.json order), so a label keeps its
    colour across runs, reports and comparison pages. ``base`` colours are kept as they are
    (compare: the new run's colours, then the base run's other labels).
    """
    specs = [str(a.get("label") or a.get("name") or "") for a in meta.get("attentions") or []
             if isinstance(a, dict)]
    labels = list(dict.fromkeys([*specs, *sorted({label_of(r) for r in records})]))
    colors = dict(base or {})
    ref = reference_of(meta, labels)
    if ref is not None and ref not in colors and PALETTE[0] not in colors.values():
        colors[ref] = PALETTE[0]
    rest = len(PALETTE) - 1
    for label in labels:
        if label in colors:
            continue
        used = set(colors.values())
        start = zlib.crc32(label.encode("utf-8")) % rest
        slots = [*([prefer[label]] if prefer and label in prefer else []),
                 *(PALETTE[1 + (start + i) % rest] for i in range(rest))]
        colors[label] = next((c for c in slots if c not in used), slots[0])
    return colors


def label_of(record: Record) -> str:
    """The display label of a record's attention."""
    return record.label or record.attention


def format_params(params: dict[str, Any], drop: tuple[str, ...] = ()) -> str:
    """``k=v, k=v`` for display (empty string when nothing is left)."""
    return ", ".join(f"{k}={v}" for k, v in params.items() if k not in drop)


def format_bytes(value: float) -> str:
    """``6 GiB``, ``1.5 MiB``, ``512 B`` (binary units, 3 significant digits)."""
    mag = abs(value)
    for limit, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if mag >= limit:
            return f"{value / limit:.3g} {suffix}"
    return f"{value:.0f} B"


def format_seconds(value: float) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 5 s``, ``1 h 32 min``."""
    if abs(value) < 1:
        return f"{format_number(value * 1e3)} ms"
    if abs(value) < 60:
        return f"{format_number(value)} s"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def format_value(value: float | None, unit: str | None, fmt: str | None = None) -> str:
    """A value in its unit, compact and human: ``12.3 ms``, ``1.50 GiB``, ``0.812``.

    ``fmt`` is the metric's declared format (run.json ``suites_meta``): ``signed`` gives
    differences an explicit sign, ``percent`` shows a fraction as a percentage.
    """
    if value is None or not math.isfinite(value):
        return "-"
    if fmt == "signed":
        if unit in (None, "f1", "fraction", "score", "exponent", "p", "ratio"):
            return "±0.000" if round(value, 3) == 0 else f"{value:+.3f}"
        text = format_value(abs(value), unit)
        return text if value == 0 else ("+" if value > 0 else "−") + text
    if fmt == "percent":
        return f"{value * 100:.1f}%"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "ms":
        return f"{format_number(value)} ms"
    if unit == "s":
        return format_seconds(value)
    if unit in ("tokens/s", "steps/s"):
        return f"{format_number(value)} {unit.replace('tokens', 'tok')}"
    if unit in ("tokens", "count", "steps"):
        return f"{value:,.0f}" if abs(value) < 1e6 else format_number(value)
    if unit in ("bool", "flag"):
        return "yes" if value >= 0.5 else "no"
    if unit in ("f1", "fraction", "score"):
        return f"{value:.3f}"
    if unit == "p":
        return f"{value:.3f}" if value >= 1e-3 else f"{value:.1e}"
    if unit == "exponent":
        return f"{value:.2f}"
    return format_number(value, 4)


def format_uncertainty(record: Record) -> str:
    """``± se``, ``95% CI [lo, hi]`` or ``IQR [lo, hi]``; empty when the record carries none."""
    parts = []
    if record.stderr is not None:
        parts.append(f"± {format_value(record.stderr, _spread_unit(record.unit))}")
    if record.ci_low is not None and record.ci_high is not None:
        kind = {"ci95": "95% CI", "iqr": "IQR"}.get(record.interval or "", "interval")
        lo, hi = format_value(record.ci_low, record.unit), format_value(record.ci_high, record.unit)
        parts.append(f"{kind} [{lo}, {hi}]")
    return " ".join(parts)


def _spread_unit(unit: str | None) -> str | None:
    return "exponent" if unit == "exponent" else unit


def format_time(stamp: str | None) -> str:
    """ISO-8601 time as ``YYYY-mm-dd HH:MM UTC`` (the raw text when it does not parse)."""
    if not stamp:
        return "-"
    try:
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return str(stamp)
    return when.strftime("%Y-%m-%d %H:%M UTC" if when.tzinfo else "%Y-%m-%d %H:%M")


def format_duration(start: str | None, end: str | None) -> str:
    """``1 h 32 min`` between two ISO-8601 times; empty when either is missing or unparsable."""
    try:
        a = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        b = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
        seconds = (b - a).total_seconds()
    except (TypeError, ValueError):
        return ""
    if seconds < 0:
        return ""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def run_header(meta: dict[str, Any]) -> dict[str, str]:
    """The identifying fields of a run for page headers."""
    env = meta.get("environment") or {}
    sha = env.get("git_sha")
    sha_text = (str(sha)[:10] + (" (dirty)" if env.get("git_dirty") else "")) if sha else "-"
    device = str(env.get("device") or "-")
    if env.get("gpu"):
        device = f"{device} ({env['gpu']})"
    elif env.get("cpu") and device.startswith("cpu"):
        device = f"{device} ({env['cpu']}, {env.get('torch_threads', '?')} threads)"
    profile = meta.get("profile")
    profile_name = profile.get("name", "-") if isinstance(profile, dict) else str(profile or "-")
    return {
        "run_id": str(meta.get("run_id") or "-"),
        "status": str(meta.get("status") or "unknown"),
        "profile": str(profile_name),
        "device": device,
        "date": format_time(meta.get("start_time")),
        "duration": format_duration(meta.get("start_time"), meta.get("end_time")),
        "git_sha": sha_text,
        "model": _model_line(meta.get("model")),
    }


def _model_line(model: Any) -> str:
    """Which user model the run measured (run.json ``model``); empty for the harness encoder."""
    if not isinstance(model, dict):
        return ""
    how = ("fine-tuned per attention" if model.get("finetune", True)
           else "evaluated as given, attention swapped (no retraining)")
    init = "; random init (no weights in the folder)" if model.get("random_init") else ""
    return (f"{model.get('id', '?')} ({model.get('model_class', '?')}, {model.get('source', '?')};"
            f" {how}{init})")
