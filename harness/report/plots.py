"""Small static-SVG charts for the HTML reports: line (log-log), grouped bars, scatter.

Every chart returns a self-contained ``<svg>`` string (no scripts, no external references) that is
meant to be inlined in HTML. All text coming from data (labels, categories, titles) is escaped
here, so callers may mark the result safe. Points carry ``<title>`` tooltips with their exact
values and uncertainties.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = [
    "PALETTE",
    "Bar",
    "BarSeries",
    "LineSeries",
    "Point",
    "ScatterPoint",
    "bar_chart",
    "format_length",
    "format_number",
    "line_chart",
    "scatter_chart",
]

# Colour-blind-safe (Okabe-Ito, then Tol) hues; the first goes to the reference attention
# (harness.report._common.attention_colors keys the others by label).
PALETTE = (
    "#3b3b3b",
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#d55e00",
    "#56b4e9",
    "#882255",
    "#999933",
    "#44aa99",
)
OOM_COLOR = "#c0392b"
_CHAR_W = 6.6  # rough width of one character of 12px text, for layout
_SLANT_W = 7.4  # a generous width per character of a slanted label, so none is clipped
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def format_number(value: float | None, digits: int = 3) -> str:
    """Compact human formatting: ``1.23k``, ``45.6M``, ``0.0123``; ``-`` for None/non-finite."""
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    mag = abs(value)
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if mag >= limit:
            return f"{value / limit:.{digits}g}{suffix}"
    if mag >= 1e-3:
        return f"{value:.{digits}g}"
    return f"{value:.{max(digits - 1, 1)}e}"


def format_length(value: float) -> str:
    """Sequence lengths in binary thousands: ``256``, ``1k``, ``16k``."""
    return f"{value / 1024:g}k" if value >= 1024 else f"{value:g}"


@dataclass
class Point:
    """One measured point; ``low``/``high`` give its error bar (optional)."""

    x: float
    y: float
    low: float | None = None
    high: float | None = None
    tip: str = ""


@dataclass
class LineSeries:
    """A line of points plus the x positions where the series failed (out of memory)."""

    label: str
    color: str
    points: list[Point] = field(default_factory=list)
    failed_x: list[float] = field(default_factory=list)
    failed_tip: str = "out of memory"


@dataclass
class Bar:
    """One bar value with an optional interval and tooltip."""

    value: float
    low: float | None = None
    high: float | None = None
    tip: str = ""
    dots: list[float] = field(default_factory=list)


@dataclass
class BarSeries:
    """Bars of one series (one attention), keyed by category."""

    label: str
    color: str
    bars: dict[str, Bar] = field(default_factory=dict)


@dataclass
class ScatterPoint:
    """A labelled point with optional intervals on both axes."""

    label: str
    color: str
    x: float
    y: float
    x_low: float | None = None
    x_high: float | None = None
    y_low: float | None = None
    y_high: float | None = None
    tip: str = ""


# ---------------------------------------------------------------------------------------------
# scales and ticks


@dataclass
class _Scale:
    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, v: float) -> float:
        a, b, x = self.lo, self.hi, v
        if self.log:
            a, b, x = math.log(a), math.log(b), math.log(max(v, 1e-300))
        if b == a:
            return (self.start + self.end) / 2
        return self.start + (x - a) / (b - a) * (self.end - self.start)


def _nice_step(span: float, target: int = 5) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _linear_domain(values: Sequence[float], include_zero: bool) -> tuple[float, float, list[float]]:
    lo, hi = min(values), max(values)
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo)
    lo = math.floor(lo / step + 1e-9) * step
    hi = math.ceil(hi / step - 1e-9) * step
    ticks = [lo + i * step for i in range(round((hi - lo) / step) + 1)]
    return lo, hi, [0.0 if abs(t) < step * 1e-9 else t for t in ticks]


def _log_domain(values: Sequence[float], base2: bool,
                max_ticks: int = 8) -> tuple[float, float, list[float]]:
    pos = [v for v in values if v > 0]
    lo, hi = (min(pos), max(pos)) if pos else (1.0, 10.0)
    if hi == lo:
        lo, hi = lo / 2, hi * 2
    if base2:
        k0, k1 = math.floor(math.log2(lo)), math.ceil(math.log2(hi))
        stride = max(1, math.ceil((k1 - k0 + 1) / max_ticks))
        ticks = [2.0**k for k in range(k0 - k0 % stride, k1 + 1, stride)]
        ticks = [t for t in ticks if lo / 1.01 <= t <= hi * 1.01]
    else:
        d0, d1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        mults = (1,) if d1 - d0 > 3 else (1, 2, 5) if d1 - d0 > 1 else (1, 1.5, 2, 3, 5, 7)
        ticks = [m * 10.0**d for d in range(d0, d1 + 1) for m in mults]
        ticks = [t for t in ticks if lo / 1.2 <= t <= hi * 1.2]
    pad = (math.log(hi) - math.log(lo)) * 0.06
    lo2, hi2 = math.exp(math.log(lo) - pad), math.exp(math.log(hi) + pad)
    if ticks:
        lo2, hi2 = min(lo2, min(ticks)), max(hi2, max(ticks))
    return lo2, hi2, ticks


def _tick_labels(ticks: Sequence[float], fmt: Callable[[float], str]) -> list[tuple[float, str]]:
    """Labels for evenly spaced linear ticks; the default format gets the step's decimals."""
    if fmt is not format_number or len(ticks) < 2:
        return [(t, fmt(t)) for t in ticks]
    step = abs(ticks[1] - ticks[0])
    if step >= 1000 or max(abs(t) for t in ticks) >= 1e4:
        return [(t, fmt(t)) for t in ticks]
    decimals = 0
    while decimals < 8 and abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    return [(t, f"{t:.{decimals}f}") for t in ticks]


# ---------------------------------------------------------------------------------------------
# drawing helpers


def _svg_open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_e(title)}" {FONT} font-size="12">',
        f"<title>{_e(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]


def _axes(
    out: list[str],
    xs: _Scale,
    ys: _Scale,
    x_ticks: Sequence[tuple[float, str]],
    y_ticks: Sequence[tuple[float, str]],
    x_label: str,
    y_label: str,
    title: str,
    x_rotate: float = 0.0,
    x_label_dy: float = 36.0,
) -> None:
    """Grid, tick labels, frame and axis titles; ``x_rotate`` slants the x tick labels."""
    left, right, top, bottom = xs.start, xs.end, ys.end, ys.start
    for v, text in y_ticks:
        y = ys(v)
        out.append(f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#e6e8eb" stroke-width="1"/>')
        out.append(f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" '
                   f'fill="#555">{_e(text)}</text>')
    for v, text in x_ticks:
        x = xs(v)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" '
                   'stroke="#f0f1f3" stroke-width="1"/>')
        if x_rotate:
            ty = bottom + 14
            out.append(f'<text x="{x:.1f}" y="{ty:.1f}" text-anchor="end" fill="#555" '
                       f'transform="rotate({-x_rotate:g} {x:.1f} {ty:.1f})">{_e(text)}</text>')
        else:
            out.append(f'<text x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle" '
                       f'fill="#555">{_e(text)}</text>')
    out.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
               f'height="{bottom - top:.1f}" fill="none" stroke="#9aa0a6" stroke-width="1"/>')
    out.append(f'<text x="{(left + right) / 2:.1f}" y="{bottom + x_label_dy:.1f}" '
               'text-anchor="middle" '
               f'fill="#222" font-size="13">{_e(x_label)}</text>')
    cy = (top + bottom) / 2
    out.append(f'<text x="16" y="{cy:.1f}" text-anchor="middle" fill="#222" font-size="13" '
               f'transform="rotate(-90 16 {cy:.1f})">{_e(y_label)}</text>')
    if title:
        out.append(f'<text x="{left:.1f}" y="18" fill="#111" font-size="14" '
                   f'font-weight="600">{_e(title)}</text>')


def _legend(out: list[str], items: Sequence[tuple[str, str, str]], x0: float, y0: float,
            max_x: float) -> float:
    """Draw legend entries (label, colour, kind) flowing left to right; returns the end y."""
    x, y = x0, y0
    for label, color, kind in items:
        w = 26 + 6.8 * len(label)
        if x + w > max_x and x > x0:
            x, y = x0, y + 18
        if kind == "oom":
            out.append(_cross(x + 8, y - 4, OOM_COLOR, 5))
        elif kind == "box":
            out.append(f'<rect x="{x + 2:.1f}" y="{y - 10:.1f}" width="12" height="10" '
                       f'fill="{color}"/>')
        else:
            out.append(f'<line x1="{x:.1f}" x2="{x + 16:.1f}" y1="{y - 4:.1f}" y2="{y - 4:.1f}" '
                       f'stroke="{color}" stroke-width="2.5"/>')
            out.append(f'<circle cx="{x + 8:.1f}" cy="{y - 4:.1f}" r="3.5" fill="{color}"/>')
        out.append(f'<text x="{x + 20:.1f}" y="{y:.1f}" fill="#222">{_e(label)}</text>')
        x += w + 12
    return y


def _cross(x: float, y: float, color: str, r: float = 5.0, tip: str = "") -> str:
    title = f"<title>{_e(tip)}</title>" if tip else ""
    return (
        f'<g stroke="{color}" stroke-width="2.5" stroke-linecap="round">{title}'
        f'<line x1="{x - r:.1f}" y1="{y - r:.1f}" x2="{x + r:.1f}" y2="{y + r:.1f}"/>'
        f'<line x1="{x - r:.1f}" y1="{y + r:.1f}" x2="{x + r:.1f}" y2="{y - r:.1f}"/></g>'
    )


def _whisker(x: float, y1: float, y2: float, color: str, cap: float = 4.0) -> str:
    return (
        f'<g stroke="{color}" stroke-width="1.4">'
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y1:.1f}" y2="{y2:.1f}"/>'
        f'<line x1="{x - cap:.1f}" x2="{x + cap:.1f}" y1="{y1:.1f}" y2="{y1:.1f}"/>'
        f'<line x1="{x - cap:.1f}" x2="{x + cap:.1f}" y1="{y2:.1f}" y2="{y2:.1f}"/></g>'
    )


def _legend_rows(labels: Sequence[str], width: float) -> int:
    rows, x = 1, 0.0
    for label in labels:
        w = 26 + 6.8 * len(label) + 12
        if x + w > width and x > 0:
            rows, x = rows + 1, 0.0
        x += w
    return rows


# ---------------------------------------------------------------------------------------------
# charts


def _plottable(v: float | None, log: bool) -> bool:
    """Whether ``v`` can be placed on an axis (finite; positive on a log axis)."""
    return v is not None and math.isfinite(v) and (v > 0 or not log)


def _draw_line_series(out: list[str], s: LineSeries, xs: _Scale, ys: _Scale, *, log_x: bool,
                      log_y: bool, top: float, fail_slots: dict[float, int],
                      x_format: Callable[[float], str]) -> None:
    """One series of a line chart: its line, markers with error bars, and a cross on the top
    edge for each failed x (stacked by ``fail_slots``, shared across series), joined to the last
    measured point by a dashed segment."""
    good = sorted((p for p in s.points if _plottable(p.x, log_x) and _plottable(p.y, log_y)),
                  key=lambda p: p.x)
    if len(good) > 1:
        path = " ".join(f"{'M' if i == 0 else 'L'}{xs(p.x):.1f},{ys(p.y):.1f}"
                        for i, p in enumerate(good))
        out.append(f'<path d="{path}" fill="none" stroke="{s.color}" stroke-width="2.2" '
                   'stroke-linejoin="round"/>')
    for p in good:
        if _plottable(p.low, log_y) and _plottable(p.high, log_y) and p.low != p.high:
            out.append(_whisker(xs(p.x), ys(p.low), ys(p.high), s.color, 3))  # type: ignore[arg-type]
        tip = f"<title>{_e(p.tip)}</title>" if p.tip else ""
        out.append(f'<circle cx="{xs(p.x):.1f}" cy="{ys(p.y):.1f}" r="3.6" fill="{s.color}" '
                   f'stroke="#fff" stroke-width="1">{tip}</circle>')
    for fx in sorted(x for x in s.failed_x if _plottable(x, log_x)):
        slot = fail_slots.get(fx, 0)
        fail_slots[fx] = slot + 1
        fy = top + 7 + 12 * slot
        if good and good[-1].x < fx:
            last = good[-1]
            out.append(f'<line x1="{xs(last.x):.1f}" y1="{ys(last.y):.1f}" x2="{xs(fx):.1f}" '
                       f'y2="{fy:.1f}" stroke="{s.color}" stroke-width="1.5" '
                       'stroke-dasharray="4 4"/>')
        out.append(_cross(xs(fx), fy, s.color, 5, f"{s.label}: {s.failed_tip} at "
                                                    f"{x_format(fx)}"))


def line_chart(
    series: Sequence[LineSeries],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = True,
    log_y: bool = True,
    x_base2: bool = True,
    y_base2: bool = False,
    y_format: Callable[[float], str] = format_number,
    x_format: Callable[[float], str] = format_length,
    width: int = 680,
    height: int = 400,
) -> str:
    """Lines with markers and error bars; failed points are crosses on the top edge.

    Log axes put ticks at decades (``*_base2=False``) or at powers of two (``True``, e.g.
    sequence lengths and byte counts). A dashed segment joins a series' last measured point to
    its first failure, so it reads as "ran out of memory here". Non-positive values are dropped
    on log axes.
    """
    pts = [p for s in series for p in s.points
           if _plottable(p.x, log_x) and _plottable(p.y, log_y)]
    any_failed = any(s.failed_x for s in series)
    legend_items = [(s.label, s.color, "line") for s in series]
    if any_failed:
        legend_items.append(("out of memory", OOM_COLOR, "oom"))
    margin_l, margin_r, margin_t = 72, 20, 34
    legend_h = 18 * _legend_rows([i[0] for i in legend_items], width - margin_l - margin_r) + 8
    height = height + legend_h
    margin_b = 52 + legend_h
    out = _svg_open(width, height, title)
    if not pts:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#777">'
                   "no measured points</text></svg>")
        return "\n".join(out)
    xv = [p.x for p in pts] + [x for s in series for x in s.failed_x if _plottable(x, log_x)]
    yv = [p.y for p in pts]
    yv += [v for p in pts for v in (p.low, p.high) if _plottable(v, log_y)]  # type: ignore[misc]
    if log_x:
        x_lo, x_hi, x_ticks = _log_domain(xv, x_base2)
    else:
        x_lo, x_hi, x_ticks = _linear_domain(xv, include_zero=False)
    if log_y:
        y_lo, y_hi, y_ticks = _log_domain(yv, base2=y_base2, max_ticks=7)
    else:
        y_lo, y_hi, y_ticks = _linear_domain(yv, include_zero=False)
    top = margin_t + (14 if any_failed else 0)
    xs = _Scale(x_lo, x_hi, margin_l, width - margin_r, log_x)
    ys = _Scale(y_lo, y_hi, height - margin_b, top, log_y)
    x_labels = [(t, x_format(t)) for t in x_ticks] if log_x else _tick_labels(x_ticks, x_format)
    y_labels = [(t, y_format(t)) for t in y_ticks] if log_y else _tick_labels(y_ticks, y_format)
    _axes(out, xs, ys, x_labels, y_labels, x_label, y_label, title)
    if any_failed:
        out.append(f'<text x="{width - margin_r:.1f}" y="{top - 6:.1f}" text-anchor="end" '
                   f'fill="{OOM_COLOR}" font-size="11">out of memory ↓</text>')
    fail_slots: dict[float, int] = {}
    for s in series:
        _draw_line_series(out, s, xs, ys, log_x=log_x, log_y=log_y, top=top,
                          fail_slots=fail_slots, x_format=x_format)
    _legend(out, legend_items, margin_l, height - legend_h + 10, width - margin_r)
    out.append("</svg>")
    return "\n".join(out)


def _draw_ref_lines(out: list[str], ref_lines: Sequence[tuple[float, str]], ys: _Scale,
                    xs_left: float, xs_right: float) -> None:
    """Dashed horizontal lines ``(y, label)`` across the plot, labelled at the right end;
    non-finite ``y`` are skipped."""
    for y_ref, text in ref_lines:
        if not math.isfinite(y_ref):
            continue
        yy = ys(y_ref)
        out.append(f'<line x1="{xs_left}" x2="{xs_right}" y1="{yy:.1f}" y2="{yy:.1f}" '
                   'stroke="#c5221f" stroke-width="1" stroke-dasharray="5 4"/>')
        out.append(f'<text x="{xs_right - 4:.1f}" y="{yy - 4:.1f}" text-anchor="end" '
                   f'fill="#c5221f" font-size="11">{_e(text)}</text>')


def _draw_bar(out: list[str], b: Bar, x: float, bar_w: float, ys: _Scale, zero: float,
              color: str) -> None:
    """One bar from the zero line to ``b.value`` at ``x``, with its dots and its whisker."""
    y = ys(b.value)
    tip = f"<title>{_e(b.tip)}</title>" if b.tip else ""
    out.append(f'<rect x="{x + 1:.1f}" y="{min(y, zero):.1f}" width="{bar_w - 2:.1f}" '
               f'height="{abs(zero - y):.1f}" fill="{color}" fill-opacity="0.85">'
               f"{tip}</rect>")
    cx = x + bar_w / 2
    for d in b.dots:
        out.append(f'<circle cx="{cx:.1f}" cy="{ys(d):.1f}" r="2.4" fill="#fff" '
                   f'stroke="#222" stroke-width="1"/>')
    if b.low is not None and b.high is not None:
        out.append(_whisker(cx, ys(b.low), ys(b.high), "#222", min(5, bar_w / 3)))


def bar_chart(
    categories: Sequence[str],
    series: Sequence[BarSeries],
    *,
    title: str,
    y_label: str,
    x_label: str = "",
    y_format: Callable[[float], str] = format_number,
    width: int = 680,
    height: int = 360,
    y_min: float | None = None,
    y_max: float | None = None,
    ref_lines: Sequence[tuple[float, str]] = (),
) -> str:
    """Grouped bars (one group per category, one bar per series) with interval whiskers.

    The value axis always includes 0; ``y_min``/``y_max`` widen it (e.g. 0..1 for fractions).
    Optional ``Bar.dots`` draws individual observations (e.g. per-seed scores) over the bar.
    ``ref_lines`` draws dashed horizontal lines ``(y, label)``, e.g. a decision margin.
    Category labels too long for their slot are slanted (the chart grows to fit them).
    """
    legend_items = [(s.label, s.color, "box") for s in series]
    margin_l, margin_r, margin_t = 72, 20, 34
    legend_h = 18 * _legend_rows([i[0] for i in legend_items], width - margin_l - margin_r) + 8
    slot = (width - margin_l - margin_r) / max(len(categories), 1)
    longest = max((_CHAR_W * len(c) for c in categories), default=0.0)
    rotate = 35.0 if longest > slot - 6 else 0.0
    drop = math.ceil(min(longest, 260.0) * math.sin(math.radians(rotate))) if rotate else 0
    if rotate and categories:  # room on the left for every slanted label (they lean left)
        for _ in range(3):  # the slot narrows as the margin grows: settle in a few steps
            slot = (width - margin_l - margin_r) / len(categories)
            reach = max(_SLANT_W * len(c) * math.cos(math.radians(rotate)) - (i + 0.5) * slot
                        for i, c in enumerate(categories))
            margin_l = max(margin_l, math.ceil(reach + 8))
    height = height + legend_h + drop
    margin_b = 52 + legend_h + drop
    out = _svg_open(width, height, title)
    values = [v for s in series for b in s.bars.values()
              for v in (b.value, b.low, b.high, *b.dots) if v is not None and math.isfinite(v)]
    if not values or not categories:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#777">'
                   "no measured values</text></svg>")
        return "\n".join(out)
    values += [v for v in (y_min, y_max) if v is not None]
    values += [y for y, _ in ref_lines if math.isfinite(y)]
    lo, hi, ticks = _linear_domain(values, include_zero=True)
    xs_left, xs_right = margin_l, width - margin_r
    ys = _Scale(lo, hi, height - margin_b, margin_t, False)
    group_w = (xs_right - xs_left) / len(categories)
    xs = _Scale(0, len(categories), xs_left, xs_right)
    cat_ticks = [(i + 0.5, c) for i, c in enumerate(categories)]
    _axes(out, xs, ys, cat_ticks, _tick_labels(ticks, y_format), x_label, y_label, title,
          x_rotate=rotate, x_label_dy=36.0 + drop)
    zero = ys(0.0)
    out.append(f'<line x1="{xs_left}" x2="{xs_right}" y1="{zero:.1f}" y2="{zero:.1f}" '
               'stroke="#555" stroke-width="1"/>')
    _draw_ref_lines(out, ref_lines, ys, xs_left, xs_right)
    n = max(len(series), 1)
    bar_w = min(44.0, group_w * 0.8 / n)
    for ci, cat in enumerate(categories):
        x0 = xs_left + ci * group_w + (group_w - bar_w * n) / 2
        for si, s in enumerate(series):
            b = s.bars.get(cat)
            if b is not None and math.isfinite(b.value):
                _draw_bar(out, b, x0 + si * bar_w, bar_w, ys, zero, s.color)
    _legend(out, legend_items, margin_l, height - legend_h + 10, width - margin_r)
    out.append("</svg>")
    return "\n".join(out)


def _place_label(label: str, x: float, y: float, placed: list[tuple[float, float, float, float]],
                 left: float, right: float) -> tuple[float, float, str]:
    """Pick a label position next to (x, y) that overlaps no label or point placed so far."""
    w, h = 7.0 * len(label), 13.0
    fitting = []
    for dy in (-8.0, 16.0, -22.0, 30.0, -36.0, 44.0):
        for side in (1, -1):
            tx, anchor = x + 9 * side, "start" if side > 0 else "end"
            x0 = tx if side > 0 else tx - w
            box = (x0, y + dy - h + 2, x0 + w, y + dy + 2)
            if box[0] < left or box[2] > right:
                continue
            fitting.append((tx, y + dy, anchor))
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                       for b in placed):
                placed.append(box)
                return tx, y + dy, anchor
    return fitting[0] if fitting else (x + 9, y - 8, "start")


def scatter_chart(
    points: Sequence[ScatterPoint],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_format: Callable[[float], str] = format_number,
    y_format: Callable[[float], str] = format_number,
    note: str = "",
    width: int = 680,
    height: int = 400,
) -> str:
    """Labelled points with crosshair intervals on both axes; ``note`` goes in a corner."""
    margin_l, margin_r, margin_t, margin_b = 72, 30, 34, 52
    out = _svg_open(width, height, title)
    pts = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    if not pts:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#777">'
                   "no points</text></svg>")
        return "\n".join(out)
    xv = [v for p in pts for v in (p.x, p.x_low, p.x_high) if v is not None]
    yv = [v for p in pts for v in (p.y, p.y_low, p.y_high) if v is not None]
    x_lo, x_hi, x_ticks = _linear_domain(xv, include_zero=False)
    y_lo, y_hi, y_ticks = _linear_domain(yv, include_zero=True)
    xs = _Scale(x_lo, x_hi, margin_l, width - margin_r)
    ys = _Scale(y_lo, y_hi, height - margin_b, margin_t)
    _axes(out, xs, ys, _tick_labels(x_ticks, x_format), _tick_labels(y_ticks, y_format),
          x_label, y_label, title)
    if note:
        out.append(f'<text x="{width - margin_r - 6:.1f}" y="{height - margin_b - 8:.1f}" '
                   f'text-anchor="end" fill="#777" font-size="11">{_e(note)}</text>')
    placed: list[tuple[float, float, float, float]] = [
        (xs(p.x) - 7, ys(p.y) - 7, xs(p.x) + 7, ys(p.y) + 7) for p in pts]
    for p in pts:
        x, y = xs(p.x), ys(p.y)
        g = [f'<g stroke="{p.color}" stroke-width="1.4">']
        if p.x_low is not None and p.x_high is not None:
            g.append(f'<line x1="{xs(p.x_low):.1f}" x2="{xs(p.x_high):.1f}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/>')
        if p.y_low is not None and p.y_high is not None:
            g.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{ys(p.y_low):.1f}" '
                     f'y2="{ys(p.y_high):.1f}"/>')
        g.append("</g>")
        out.append("".join(g))
        tip = f"<title>{_e(p.tip or p.label)}</title>"
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{p.color}" stroke="#fff" '
                   f'stroke-width="1.5">{tip}</circle>')
        tx, ty, anchor = _place_label(p.label, x, y, placed, margin_l, width - margin_r)
        out.append(f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}" '
                   f'fill="{p.color}" font-weight="600" paint-order="stroke" stroke="#fff" '
                   f'stroke-width="3">{_e(p.label)}</text>')
    out.append("</svg>")
    return "\n".join(out)
