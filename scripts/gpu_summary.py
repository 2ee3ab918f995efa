"""Plain-text summary of a ``scripts/gpu_check.py`` folder: every table, target and failure.

Reads only what the steps wrote (the run directory's results.jsonl and bench.jsonl), so it can
be re-made from a fetched bundle:

    PYTHONPATH=. python scripts/gpu_summary.py /path/to/gpu_check
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harness.records import Record  # noqa: E402

#: Memory-exponent bounds checked on CPU (docs/PERFORMANCE.md section 2), applied on the GPU too.
EXPONENT_BOUNDS = {"standard[eager]": (">=", 1.7)}
DEFAULT_BOUND = ("<=", 1.2)
#: standard (sdpa) against bare torch SDPA: speed ratio bare / ours.
SDPA_TARGET = 0.9
MiB = 2**20


def exponent_verdict(label: str, exponent: float | None) -> str:
    """``met`` / ``missed`` against the CPU bound of ``label`` (eager >= 1.7, others <= 1.2)."""
    op, bound = EXPONENT_BOUNDS.get(label, DEFAULT_BOUND)
    if exponent is None:
        return f"{op} {bound}: no fit"
    ok = exponent >= bound if op == ">=" else exponent <= bound
    return f"{op} {bound}: {'met' if ok else 'MISSED'}"


def table(headers: list[str], rows: Iterable[list[Any]]) -> str:
    """A fixed-width text table."""
    rows = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def read_jsonl(path: Path) -> list[Record]:
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as fh:
        return [Record.from_dict(json.loads(line)) for line in fh if line.strip()]


def _label(r: Record) -> str:
    return r.label or r.attention


def grid(records: list[Record], metric: str, scale: float = 1.0, **match: Any) -> str:
    """Labels x lengths of ``metric`` (value / scale); a failed cell shows its status."""
    rows = [r for r in records if r.metric == metric
            and all(r.params.get(k) == v for k, v in match.items())]
    if not rows:
        return f"(no {metric} records)"
    lengths = sorted({r.params["seq_len"] for r in rows})
    labels = list(dict.fromkeys(_label(r) for r in rows))
    value = {(_label(r), r.params["seq_len"]): (r.value / scale if r.status == "ok"
                                                 and r.value is not None else r.status)
             for r in rows}
    return table(["attention", *map(str, lengths)],
                 [[label, *(value.get((label, n)) for n in lengths)] for label in labels])


def crossover_rows(records: list[Record], **match: Any) -> str:
    rows = [r for r in records if r.metric.startswith("crossover_seq_len")
            and all(r.params.get(k) == v for k, v in match.items())]
    if not rows:
        return "(no crossover records)"
    return table(["attention", "pass", "crossover N vs standard (sdpa)", "note"],
                 [[_label(r), r.params.get("pass", "forward"),
                   int(r.value) if r.value is not None else None, r.error or ""]
                  for r in rows])


def exponent_rows(records: list[Record], **match: Any) -> str:
    rows = [r for r in records if r.metric == "memory_exponent"
            and all(r.params.get(k) == v for k, v in match.items())]
    if not rows:
        return "(no memory_exponent records)"
    claimed = {(_label(r), r.params["mode"]): r.value for r in records
               if r.metric == "claimed_exponent"
               and all(r.params.get(k) == v for k, v in match.items())}
    return table(["attention", "mode", "exponent", "95% interval", "claimed", "CPU bound"],
                 [[_label(r), r.params["mode"], r.value, _interval(r),
                   claimed.get((_label(r), r.params["mode"])),
                   exponent_verdict(_label(r), r.value)] for r in rows])


def _interval(r: Record) -> str | None:
    if r.ci_low is None or r.ci_high is None:
        return None
    return f"{r.ci_low:.2f} to {r.ci_high:.2f}"


def time_exponent_rows(records: list[Record], **match: Any) -> str:
    rows = [r for r in records if r.metric == "time_exponent"
            and all(r.params.get(k) == v for k, v in match.items())]
    if not rows:
        return "(no time_exponent records)"
    return table(["attention", "pass", "time exponent", "95% interval", "note"],
                 [[_label(r), r.params.get("pass"), r.value, _interval(r), r.error or ""]
                  for r in rows])


def pair_rows(records: list[Record]) -> str:
    rows = [r for r in records if r.suite == "gpu_pairs" and r.metric == "speed_ratio"
            and r.status == "ok"]
    errors = {(r.params.get("dtype"), r.params.get("seq_len")): r.value for r in records
              if r.metric == "relative_error"}
    if not rows:
        return "(no pair records)"
    out = []
    for r in rows:
        p = r.params
        target = p.get("target")
        verdict = "" if target is None else (
            f">= {target}: {'met' if r.value is not None and r.value >= target else 'MISSED'}")
        if p.get("vs") == "flex_attention" and p.get("pass") == "forward":
            err = errors.get((p["dtype"], p["seq_len"]))
            verdict = "outputs: not compared" if err is None else f"outputs differ by {err:.1e}"
        out.append([f"{_label(r)} vs {p.get('vs')}", p.get("dtype"), p.get("pass"),
                    p.get("seq_len"), p.get("ours_ms"), p.get("peer_ms"), r.value, verdict])
    return table(["pair", "dtype", "pass", "N", "ours ms", "other ms", "other/ours", "target"],
                 out)


def peak_rows(records: list[Record]) -> str:
    rows = [r for r in records if r.metric == "peak_flops_per_s"]
    if not rows:
        return "(no peak records)"
    return table(["dtype", "matmul peak TFLOP/s"],
                 [[r.params.get("dtype"), r.value / 1e12 if r.value else r.status]
                  for r in rows])


def backend_rows(records: list[Record]) -> str:
    """Each backend vs its family's default kernel: error, then default / backend time."""
    errors = [r for r in records if r.suite == "gpu_exact" and r.metric.endswith("error")]
    if not errors:
        return "(no backend records)"
    speed = {(_label(r), r.params.get("dtype"), r.params.get("causal"), r.params.get("pass")): r
             for r in records if r.suite == "gpu_exact" and r.metric == "speed_ratio"}
    out = []
    for r in errors:
        p = r.params
        s = speed.get((_label(r), p.get("dtype"), p.get("causal"), p.get("pass")))
        out.append([_label(r), p.get("dtype"), p.get("causal"), p.get("pass"),
                    r.value if r.status == "ok" else f"{r.status}: {(r.error or '')[:60]}",
                    s.value if s is not None else None,
                    s.params.get("seq_len") if s is not None else None])
    return table(["backend", "dtype", "causal", "pass", "rel. error vs default",
                  "default/backend time", "timed at N"], out)


def failures(records: list[Record]) -> list[str]:
    """One line per record that is not ``ok`` (errors, oom, skipped cells and fits)."""
    return [f"{r.status}: {r.suite}/{_label(r)} {r.metric} {r.params}: {r.error}"
            for r in records if r.status != "ok"]


def _suites_section(records: list[Record]) -> list[str]:
    out = ["== harness run throughput memory (float32) =="]
    for metric in ("forward_ms", "backward_ms", "fwd_bwd_ms"):
        out += [f"-- {metric} (attention layer, batch 1, 4 heads, head_dim 64)",
                grid(records, metric, kind="attention")]
    out += ["-- crossover", crossover_rows(records), "-- time exponents",
            time_exponent_rows(records)]
    for mode in ("forward", "fwd_bwd"):
        out += [f"-- peak MiB above inputs, {mode}",
                grid(records, "peak_bytes", MiB, mode=mode)]
    out += ["-- memory exponents", exponent_rows(records)]
    return out


def _bench_section(records: list[Record]) -> list[str]:
    out = []
    dtypes = list(dict.fromkeys(r.params["dtype"] for r in records
                                if r.suite in ("throughput", "memory") and "dtype" in r.params))
    out += ["== matmul peak (the denominator of % of peak) ==", peak_rows(records),
            "== backends vs their family's default kernel ==", backend_rows(records)]
    for dtype in dtypes:
        out.append(f"== gpu_bench sweep, {dtype} ==")
        for metric in ("forward_ms", "fwd_bwd_ms"):
            out += [f"-- {metric}", grid(records, metric, dtype=dtype, kind="attention")]
        for metric in ("forward_peak_fraction", "fwd_bwd_peak_fraction"):
            out += [f"-- {metric} (% of the {dtype} matmul peak)",
                    grid(records, metric, 0.01, dtype=dtype, kind="attention")]
        out += ["-- crossover", crossover_rows(records, dtype=dtype), "-- time exponents",
                time_exponent_rows(records, dtype=dtype)]
        for mode in ("forward", "fwd_bwd"):
            out += [f"-- peak MiB above inputs, {mode}",
                    grid(records, "peak_bytes", MiB, mode=mode, dtype=dtype)]
        out += ["-- memory exponents", exponent_rows(records, dtype=dtype)]
    out += ["== side by side (interleaved rounds; other/ours > 1: ours faster) ==",
            pair_rows(records)]
    return out


def latest_run(folder: Path) -> Path | None:
    """The newest run directory under ``folder`` (not the ``latest`` link), if any."""
    runs = sorted(p.parent for p in folder.glob("*/results.jsonl") if not p.parent.is_symlink())
    return runs[-1] if runs else None


def summary_text(out_dir: Path, info: dict[str, Any], steps: list[Any],
                 run_dir: Path | None, elapsed: float) -> str:
    """The whole summary as text."""
    suite_records = read_jsonl(run_dir / "results.jsonl") if run_dir else []
    bench_records = read_jsonl(out_dir / "bench.jsonl")
    v = info.get("versions", {})
    lines = [
        f"gpu_check summary ({out_dir.name}), {elapsed:.0f} s",
        f"device {info.get('device')}: {info.get('gpu_name') or 'no GPU'}"
        f" ({(info.get('gpu_memory_bytes') or 0) / 2**30:.0f} GiB, capability "
        f"{info.get('capability')}); torch {v.get('torch')}, CUDA {info.get('torch_cuda_build')},"
        f" cuDNN {info.get('cudnn')}, triton {v.get('triton')}, python {info.get('python')}",
        "",
        table(["step", "status", "seconds"],
              [[s.name, s.status, round(s.seconds, 1)] for s in steps]),
        "",
    ]
    if run_dir is not None:
        lines += [f"run directory: {run_dir.relative_to(out_dir)}", *_suites_section(suite_records),
                  ""]
    lines += _bench_section(bench_records)
    training = latest_run(out_dir / "runs-training")
    training_records = read_jsonl(training / "results.jsonl") if training else []
    if training is not None:
        counts: dict[str, int] = {}
        for r in training_records:
            counts[r.status] = counts.get(r.status, 0) + 1
        lines += ["", "== training smoke (harness run accuracy bias) ==",
                  f"run directory: {training.relative_to(out_dir)}; records by status: {counts}"]
    problems = [f"[{s.name}] {d}" for s in steps for d in s.detail]
    problems += failures(suite_records) + failures(bench_records) + failures(training_records)
    lines += ["", f"== problems ({len(problems)}) ==", *(problems or ["none"])]
    overall = all(s.status == "passed" for s in steps)
    lines += ["", f"gpu_check: {'PASSED' if overall else 'FAILED'}"]
    return "\n".join(lines) + "\n"


def write_summary(out_dir: Path, info: dict[str, Any], steps: list[Any], run_dir: Path | None,
                  elapsed: float) -> str:
    """Write ``out_dir/summary.txt`` and return its text."""
    text = summary_text(out_dir, info, steps, run_dir, elapsed)
    (out_dir / "summary.txt").write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    from types import SimpleNamespace

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python scripts/gpu_summary.py GPU_CHECK_FOLDER", file=sys.stderr)
        return 2
    out = Path(args[0])
    info = json.loads((out / "env.json").read_text()) if (out / "env.json").is_file() else {}
    steps = [SimpleNamespace(name="(re-made)", status="passed", seconds=0.0, detail=[])]
    print(summary_text(out, info, steps, latest_run(out / "runs"), 0.0), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
