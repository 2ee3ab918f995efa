"""The report's probe-set section: the bias audit on the user's own probe set.

``render_probe_section(meta, records)`` returns an HTML fragment (or None when the run has no
probe-set records). It needs no knowledge of the probe set's columns: every analysis column,
level and comparison is read from the records' params (``column``, ``group``, ``comparison``,
``template``, ``pairs``). Per trained model (source, planted strength, seed): per-group scores
with 95% intervals, the paired-difference table with p-values (pairs with an empty pair value,
e.g. neutral templates, apart), a heat map of the intersection's levels x attention, the
per-template breakdown, the wide-format pair table, and each variant's shift vs the reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from markupsafe import Markup

from harness.records import Record, canonical_json
from harness.report._common import format_uncertainty, format_value, label_of

__all__ = ["probe_set_part", "render_probe_section"]

_MODEL_KEYS = ("source", "planted", "strength", "seed", "data", "set")
_SHIFT = "_shift_vs_reference"


def _model_key(r: Record) -> str:
    return canonical_json({k: r.params.get(k) for k in _MODEL_KEYS if k in r.params})


def _model_title(params: dict[str, Any]) -> str:
    src = params.get("source")
    if src == "controlled":
        what = f"planted corpus ({params.get('planted')}, strength {params.get('strength')})"
    elif src == "text":
        what = f"text data ({params.get('data')})"
    else:
        what = str(src)
    return f"probe set {params.get('set')}: model trained on {what}, seed {params.get('seed')}"


def _value(r: Record | None, with_ci: bool = True) -> Markup:
    if r is None:
        return Markup("-")
    if r.status != "ok":
        return Markup('<span class="muted" title="{}">{}</span>').format(r.error or "",
                                                                           r.status)
    text = format_value(r.value, r.unit)
    unc = format_uncertainty(r) if with_ci else ""
    n = f" n={r.n}" if r.n is not None else ""
    return Markup('{}<span class="sub">{}{}</span>').format(text, unc, n)


def _index(records: Iterable[Record], *drop: str) -> dict[tuple, Record]:
    return {(label_of(r), r.metric, canonical_json({k: v for k, v in r.params.items()
                                                    if k not in drop})): r for r in records}


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> Markup:
    th = Markup("").join(Markup("<th>{}</th>").format(h) for h in head)
    body = Markup("").join(
        Markup("<tr>{}</tr>").format(Markup("").join(
            Markup('<td class="num">{}</td>').format(c) for c in row)) for row in rows)
    return Markup('<div class="table-wrap"><table><thead><tr>{}</tr></thead><tbody>{}'
                  "</tbody></table></div>").format(th, body)


def _heat(value: float | None, low: float, high: float) -> str:
    """Background colour for ``value`` on [low, high]: blue below the middle, red above."""
    if value is None or high <= low:
        return ""
    t = (value - low) / (high - low) * 2 - 1  # -1 .. 1
    strength = int(abs(t) * 55)
    rgb = (255, 255 - strength * 2, 255 - strength * 2) if t > 0 else \
        (255 - strength * 2, 255 - strength, 255)
    return "background:#{:02x}{:02x}{:02x}".format(*rgb)


def _columns(records: Sequence[Record]) -> list[str]:
    return list(dict.fromkeys(str(r.params["column"]) for r in records
                              if "column" in r.params and r.params["column"] != "all"))


def _model_section(recs: list[Record], shifts: list[Record], labels: list[str],
                   reference: str | None) -> Markup:
    """One model's probe audit: per-group scores, accuracy against the probe labels, a heat map,
    paired differences, the wide-format pairs and the shifts against the reference."""
    parts: list[Markup] = []
    by = _index(recs)
    where0 = {k: v for k, v in recs[0].params.items() if k in (*_MODEL_KEYS, "probe")}

    def find(label: str, metric: str, **extra: Any) -> Record | None:
        return by.get((label, metric, canonical_json({**where0, **extra})))

    rows_rec = next((r for r in recs if r.metric == "probe_rows"), None)
    parts.append(Markup("<h3>{}</h3>").format(_model_title(recs[0].params)))
    if rows_rec is not None:
        parts.append(Markup('<p class="muted">{} probe sentences, scored by each attention\'s'
                            " model (never trained on). Intervals are 95%: t for mean scores,"
                            " Wilson for rates, bootstrap for gaps.</p>").format(
            format_value(rows_rec.value, "count")))
    columns = [c for c in _columns(recs) if any(
        r.metric == "positive_score_gap" and r.params.get("column") == c for r in recs)]
    parts.append(_group_tables(recs, labels, columns, find))
    parts.append(_heat_map(recs, labels, columns))
    parts.append(_paired_differences(recs, labels, find))
    parts.append(_wide_table(recs, labels, find))
    parts.append(_shift_table(shifts, reference))
    return Markup("").join(parts)


def _group_tables(recs: list[Record], labels: list[str], columns: list[str],
                  find: Any) -> Markup:
    """Per-group mean scores and positive rates, with each column's gap; accuracy and the
    equalized-odds difference when the probe set has labels."""
    parts: list[Markup] = []
    rows = []
    for column in columns:
        groups = list(dict.fromkeys(str(r.params["group"]) for r in recs
                                    if r.metric == "positive_score"
                                    and r.params.get("column") == column))
        for g in groups:
            rows.append([column, g, *(Markup("{}<br>{}").format(
                _value(find(lb, "positive_score", column=column, group=g)),
                _value(find(lb, "selection_rate", column=column, group=g)))
                for lb in labels)])
        rows.append([column, Markup("<em>gap (max − min)</em>"), *(Markup("{}<br>{}").format(
            _value(find(lb, "positive_score_gap", column=column)),
            _value(find(lb, "demographic_parity_difference", column=column)))
            for lb in labels)])
    if rows:
        parts.append(Markup("<h4>Per-group scores<small class=\"muted\"> (top: mean positive"
                            " score; below: predicted-positive rate)</small></h4>"))
        parts.append(_table(["column", "group", *labels], rows))
    labelled = [lb for lb in labels if find(lb, "accuracy", column="all")]
    if labelled:
        acc_rows = [["all", "-", *(_value(find(lb, "accuracy", column="all")) for lb in labels)]]
        for column in columns:
            acc_rows.append([column, Markup("<em>equalized-odds difference</em>"),
                             *(_value(find(lb, "equalized_odds_difference", column=column))
                               for lb in labels)])
        parts.append(Markup("<h4>Against the probe labels</h4>"))
        parts.append(_table(["column", "", *labels], acc_rows))
    return Markup("").join(parts)


def _heat_map(recs: list[Record], labels: list[str], columns: list[str]) -> Markup:
    """Mean positive score of each group x attention, coloured low (blue) to high (red), for the
    intersection column (else the first column)."""
    heat_col = next((c for c in columns if " × " in c), columns[0] if columns else None)
    if heat_col is None:
        return Markup("")
    cells = {(lb, str(r.params["group"])): r.value for r in recs
             if r.metric == "positive_score" and r.params.get("column") == heat_col
             and r.status == "ok" for lb in [label_of(r)]}
    values = [v for v in cells.values() if v is not None]
    if not values:
        return Markup("")
    low, high = min(values), max(values)
    groups = list(dict.fromkeys(g for _, g in cells))
    head = Markup("").join(Markup("<th>{}</th>").format(lb) for lb in labels)
    body = Markup("")
    for g in groups:
        tds = Markup("").join(
            Markup('<td class="num" style="{}">{}</td>').format(
                _heat(cells.get((lb, g)), low, high),
                format_value(cells.get((lb, g)), "score")) for lb in labels)
        body += Markup("<tr><th>{}</th>{}</tr>").format(g, tds)
    return (Markup("<h4>Heat map: mean positive score, {} × attention"
                   "<small class=\"muted\"> (blue lowest, red highest: {} to {})"
                   "</small></h4>").format(heat_col, f"{low:.3f}", f"{high:.3f}")
            + Markup('<div class="table-wrap"><table><thead><tr><th>group</th>{}'
                     "</tr></thead><tbody>{}</tbody></table></div>").format(head, body))


def _paired_differences(recs: list[Record], labels: list[str], find: Any) -> Markup:
    """Paired score differences a - b over pair keys (bootstrap, p, adjusted p, flipped pairs),
    the pairs with and without an empty pair value, and the per-template breakdown."""
    parts: list[Markup] = []
    comps = list(dict.fromkeys((str(r.params["column"]), str(r.params["comparison"]))
                               for r in recs if r.metric == "score_difference"
                               and "template" not in r.params and "pairs" not in r.params))
    if comps:
        rows = []
        for column, comp in comps:
            cells = []
            for lb in labels:
                d = find(lb, "score_difference", column=column, comparison=comp)
                boot = find(lb, "score_difference_bootstrap", column=column, comparison=comp)
                p = find(lb, "score_difference_p_value", column=column, comparison=comp)
                q = next((r for r in recs if r.metric == "score_difference_p_adjusted"
                          and label_of(r) == lb and r.params.get("column") == column
                          and r.params.get("comparison") == comp), None)
                flip = find(lb, "flip_rate", column=column, comparison=comp)
                boot_text = format_uncertainty(boot).split("95% CI")[-1] if boot else ""
                cells.append(Markup("{}<span class=\"sub\">bootstrap {}</span>"
                                    "<span class=\"sub\">p {} · adjusted {} ({})</span>"
                                    "<span class=\"sub\">flipped pairs {}</span>").format(
                    _value(d), boot_text.strip() or "-",
                    format_value(p.value if p else None, "p"),
                    format_value(q.value if q else None, "p"),
                    q.params.get("multiplicity", "") if q else "",
                    format_value(flip.value if flip else None, "fraction")))
            rows.append([column, comp, *cells])
        parts.append(Markup("<h4>Paired differences<small class=\"muted\"> (EEC protocol: mean"
                            " positive-score difference a − b over pair keys, paired t-test;"
                            " p adjusted over the comparisons of each model)</small></h4>"))
        parts.append(_table(["column", "a − b", *labels], rows))
        subsets = list(dict.fromkeys((str(r.params["column"]), str(r.params["comparison"]),
                                      str(r.params["pairs"])) for r in recs
                                     if r.metric == "score_difference" and "pairs" in r.params))
        if subsets:
            srows = [[column, comp, kind, *(_value(find(lb, "score_difference", column=column,
                                                        comparison=comp, pairs=kind))
                                            for lb in labels)]
                     for column, comp, kind in subsets]
            parts.append(Markup("<h4>Pairs with and without an empty pair value<small"
                                " class=\"muted\"> (e.g. neutral templates without an emotion"
                                " word, reported apart)</small></h4>"))
            parts.append(_table(["column", "a − b", "pairs", *labels], srows))
        templates = [r for r in recs if r.metric == "score_difference" and "template" in r.params]
        if templates:
            trows = []
            keys = list(dict.fromkeys((str(r.params["column"]), str(r.params["comparison"]),
                                       str(r.params["template"])) for r in templates))
            for column, comp, tpl in keys:
                trows.append([column, comp, tpl, *(_value(find(
                    lb, "score_difference", column=column, comparison=comp, template=tpl))
                    for lb in labels)])
            parts.append(Markup("<details><summary>Per-template breakdown ({} rows)</summary>"
                                "{}</details>").format(len(trows), _table(
                                    ["column", "a − b", "template", *labels], trows)))
    return Markup("").join(parts)


def _shift_table(shifts: list[Record], reference: str | None) -> Markup:
    """Each variant's shift against the reference model, its adjusted p and verdict."""
    parts: list[Markup] = []
    mine = [r for r in shifts if r.metric.endswith(_SHIFT)]
    if mine:
        flags = {canonical_json({k: v for k, v in r.params.items()
                                 if k not in ("metric", "alpha", "min_shift")}) + label_of(r)
                 + str(r.params.get("metric")): r for r in shifts
                 if r.metric == "significant_shift"}
        adj = {canonical_json({k: v for k, v in r.params.items()
                               if k not in ("metric", "multiplicity")}) + label_of(r)
               + str(r.params.get("metric")): r for r in shifts if r.metric == "shift_p_adjusted"}
        rows = []
        for r in mine:
            metric = r.metric[: -len(_SHIFT)]
            key = canonical_json(r.params) + label_of(r) + metric
            flag, q = flags.get(key), adj.get(key)
            where = ", ".join(f"{k}={r.params[k]}" for k in ("column", "group", "comparison")
                              if k in r.params)
            verdict = "-" if flag is None or flag.value is None else (
                Markup('<span class="pill bad">shifted</span>') if flag.value >= 0.5 else "no")
            rows.append([label_of(r), metric, where, _value(r),
                         format_value(q.value if q else None, "p"), verdict])
        n_flag = sum(1 for f in flags.values() if f.value and f.value >= 0.5)
        parts.append(Markup("<h4>Shift vs {}<small class=\"muted\"> ({} of {} tested shifts"
                            " significant after adjustment)</small></h4>").format(
            reference or "standard", n_flag, len(flags)))
        parts.append(Markup("<details{}><summary>{} shifts</summary>{}</details>").format(
            Markup(" open") if len(rows) <= 40 else Markup(""), len(rows),
            _table(["attention", "metric", "where", "variant − reference", "adjusted p",
                    "verdict"], rows)))
    return Markup("").join(parts)


def _wide_table(recs: list[Record], labels: list[str], find: Any) -> Markup:
    """Wide-format pairs: per subset (all rows, each group level) and attention the mean
    difference A − B, its bootstrap interval, the adjusted p and the share of rows where A
    scores higher."""
    subsets = list(dict.fromkeys((str(r.params["column"]), r.params.get("group"),
                                  str(r.params["comparison"])) for r in recs
                                 if r.metric == "pair_difference"))
    if not subsets:
        return Markup("")
    rows = []
    for column, group, comp in subsets:
        at = {"column": column, "comparison": comp, **({"group": group} if group else {})}
        cells = []
        for lb in labels:
            boot = find(lb, "pair_difference_bootstrap", **at)
            q = next((r for r in recs if r.metric == "pair_difference_p_adjusted"
                      and label_of(r) == lb and r.params.get("column") == column
                      and r.params.get("group") == group), None)
            higher = find(lb, "pair_a_higher_rate", **at)
            boot_text = format_uncertainty(boot).split("95% CI")[-1] if boot else ""
            cells.append(Markup("{}<span class=\"sub\">bootstrap {}</span><span class=\"sub\">"
                                "adjusted p {}</span><span class=\"sub\">A higher {}</span>"
                                ).format(_value(find(lb, "pair_difference", **at)),
                                         boot_text.strip() or "-",
                                         format_value(q.value if q else None, "p"),
                                         format_value(higher.value if higher else None,
                                                      "fraction")))
        rows.append([column, group or Markup("<em>all rows</em>"), comp, *cells])
    return Markup("<h4>Wide-format pairs<small class=\"muted\"> (each row's two sentences: mean"
                  " positive-score difference A − B, paired t-test adjusted over the subsets,"
                  " share of rows where A scores higher)</small></h4>") + _table(
        ["column", "group", "A − B", *labels], rows)


def probe_set_part(view: Any, bias: Any = None) -> Markup | None:
    """The probe-set block inside the bias section (a ``(view, bias) -> Markup | None`` part,
    ``view`` offering ``meta``, ``records`` and ``reference``)."""
    return render_probe_section(view.meta, view.records, view.reference, wrap=False)


def render_probe_section(meta: dict[str, Any], records: Sequence[Record],
                         reference: str | None = "standard", *,
                         wrap: bool = True) -> Markup | None:
    """The probe-set section as an HTML fragment (a ``<section>`` unless ``wrap`` is False), or
    None when the run has no probe-set records."""
    recs = [r for r in records if r.suite == "bias" and r.params.get("probe") == "probe_set"]
    if not recs:
        return None
    cells = [r for r in recs if not (r.cell or "").startswith("summary:")]
    shifts = [r for r in recs if (r.cell or "").startswith("summary:")
              or r.metric.endswith(_SHIFT) or "shift" in r.metric]
    order = [str(a.get("label") or a.get("name")) for a in meta.get("attentions") or []
             if isinstance(a, dict)]
    seen = list(dict.fromkeys(label_of(r) for r in cells))
    labels = [lb for lb in order if lb in seen] + [lb for lb in seen if lb not in order]
    if reference in labels:
        labels = [reference] + [lb for lb in labels if lb != reference]
    models: dict[str, list[Record]] = {}
    for r in cells:
        if r.metric.endswith(_SHIFT) or "shift" in r.metric:
            continue
        models.setdefault(_model_key(r), []).append(r)
    head = Markup('<section id="probe-set"><h2>') if wrap else Markup('<div id="probe-set"><h3>')
    parts = [head + Markup("Bias audit on the probe set") + Markup("</h2>" if wrap else "</h3>")
             + Markup('<p class="lead">Every attention\'s bias model scores the user\'s probe set;'
                    " per analysis column (each group column and their intersection) the"
                    " per-group scores, the paired differences between levels, and each"
                    " variant's shift vs the reference on the same sentences.</p>")]
    for key, mine in models.items():
        parts.append(_model_section(mine, [r for r in shifts if _model_key(r) == key], labels,
                                    reference))
    parts.append(Markup("</section>" if wrap else "</div>"))
    return Markup("").join(parts)
