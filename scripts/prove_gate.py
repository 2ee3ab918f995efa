"""Prove the release gate (`harness compare`): silent on identical code, fires on a slowdown.

Three scenarios, each repeated ``--trials`` times; every trial makes a fresh base run and a fresh
new run of the throughput suite (separate processes, the CLI as a user runs it) and compares them:

- ``hog``: identical code, the new run with a CPU hog busy on one core -> exit 0 or 3, never 1;
- ``plant``: one attention made ``--factor`` times slower (its ``forward`` busy-waits for the
  extra time; a ``sitecustomize`` of the new run, so every process that times a cell has it),
  quiet machine -> exit 1 naming it, and no other attention;
- ``quiet``: identical code, quiet machine -> exit 0 (inconclusive is no escape when nothing
  disturbed the runs).

It prints how often each exit code happened per scenario and writes every trial (exit code,
regressions, inconclusive rows, the compare output) to ``OUT/prove_gate.json``. Exit 0 when every
trial met its expectation. Run it on a quiet machine (only the hog scenario adds load):

    python scripts/prove_gate.py                       # the proof: 3 scenarios x 5 trials
    python scripts/prove_gate.py --small --trials 1    # a dry run of the machinery (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ("hog", "plant", "quiet")
EXPECTED = {"hog": {0, 3}, "plant": {1}, "quiet": {0}}

# The proof's sweep: the attention layer alone (no model cells), lengths where every family
# takes milliseconds, threads left at the default (all cores but one), each cell timed in
# three fresh processes (throughput ``processes``) as a release gate should be.
FULL = {"attentions": ["standard", "linear", "sparse"], "seq_lens": [512, 1024, 2048],
        "passes": ["forward", "fwd_bwd"], "min_run_time": 0.3, "processes": 3}
SMALL = {"attentions": ["standard", "linear"], "seq_lens": [64, 128], "passes": ["forward"],
         "min_run_time": 0.02, "processes": 2}

# A ``sitecustomize`` module, first on the new run's PYTHONPATH, that slows one attention's
# forward down by FACTOR (busy-waiting, so the extra time is spent like real work) in every
# Python process of that run: the CLI and each worker process that times a cell (Python imports
# sitecustomize at start-up; the workers inherit the environment with name and factor).
_PLANT_MODULE = """
import os, time
from harness.attention import attention_class
cls = attention_class(os.environ["PROVE_GATE_PLANT"])
factor = float(os.environ["PROVE_GATE_FACTOR"])
original = cls.forward
def forward(self, *args, **kwargs):
    start = time.perf_counter()
    out = original(self, *args, **kwargs)
    until = time.perf_counter() + (factor - 1.0) * (time.perf_counter() - start)
    while time.perf_counter() < until:
        pass
    return out
cls.forward = forward
"""
_HOG = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


def write_profile(path: Path, sweep: dict) -> Path:
    profile = {
        "name": "prove-gate",
        "description": "scripts/prove_gate.py: throughput of a few attentions",
        "seeds": [0],
        "device": "cpu",
        "attentions": [{"name": n} for n in sweep["attentions"]],
        "suites": {"throughput": {"seq_lens": sweep["seq_lens"], "batch_sizes": [1],
                                  "heads": 4, "head_dim": 64, "passes": sweep["passes"],
                                  "min_run_time": sweep["min_run_time"], "warmup": 1,
                                  "processes": sweep["processes"], "model": None}},
    }
    path.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    return path


def harness_run(profile: Path, out: Path, *, plant: tuple[str, float] | None = None) -> Path:
    """One `harness run throughput` in its own process; returns the run directory."""
    cmd = [sys.executable, "-m", "harness.cli", "run", "throughput", "--profile", str(profile),
           "--out", str(out), "--no-progress", "--no-report"]
    env = dict(os.environ)
    if plant is not None:
        folder = out.parent / "plant"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sitecustomize.py").write_text(_PLANT_MODULE, encoding="utf-8")
        env.update(PROVE_GATE_PLANT=plant[0], PROVE_GATE_FACTOR=repr(plant[1]),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(folder),
                                                            env.get("PYTHONPATH")])))
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"harness run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return (out / "latest").resolve()


def compare(base: Path, new: Path) -> tuple[int, dict]:
    """`harness compare BASE NEW` (CLI exit code) and the comparison's rows of interest."""
    done = subprocess.run([sys.executable, "-m", "harness.cli", "compare", str(base), str(new)],
                          cwd=REPO, capture_output=True, text=True, check=False,
                          env={**os.environ, "COLUMNS": "200"})
    from harness.gate import compare_runs

    cmp = compare_runs(base, new)
    def rows(status: str) -> list[dict]:
        return [{"label": r.label, "metric": r.metric, "params": r.params,
                 "rel_change": r.rel_change, "note": r.note or r.noise}
                for r in cmp.by_status(status)]

    return done.returncode, {"regressions": rows("regression"),
                             "inconclusive": rows("inconclusive"),
                             "output": done.stdout[-4000:] + done.stderr[-2000:]}


def trial(scenario: str, profile: Path, work: Path, args: argparse.Namespace) -> dict:
    base = harness_run(profile, work / "base")
    hog = None
    try:
        if scenario == "hog":
            core = max(os.sched_getaffinity(0))
            hog = subprocess.Popen([sys.executable, "-c", _HOG, str(core)])
            time.sleep(1.0)  # let it spin up
        new = harness_run(profile, work / "new",
                          plant=(args.slow, args.factor) if scenario == "plant" else None)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    code, detail = compare(base, new)
    ok = code in EXPECTED[scenario]
    if scenario == "plant" and ok:  # it must name the planted attention, and only it
        labels = {r["label"] for r in detail["regressions"]}
        ok = labels == {args.slow}
    return {"scenario": scenario, "exit_code": code, "ok": ok, "base": str(base),
            "new": str(new), **detail}


def identical_pairs(out: Path) -> dict:
    """``harness compare`` on every ordered pair of the proof's runs of identical code on a quiet
    machine (every quiet run and every base run) in ``out``: the false-failure rate measured on
    more pairs than the trials (the pairs share runs: not independent trials)."""
    import itertools
    from collections import Counter

    from harness.gate import compare_runs

    found = [*out.glob("quiet/*/*/latest"), *out.glob("*/*/base/latest")]
    runs = sorted({p.resolve() for p in found})
    codes: Counter = Counter()
    rows: Counter = Counter()
    for a, b in itertools.permutations(runs, 2):
        cmp = compare_runs(a, b)
        codes[cmp.exit_code] += 1
        rows.update(f"{r.label} {r.metric} N={r.params.get('seq_len')}" for r in cmp.regressions)
    return {"runs": len(runs), "pairs": sum(codes.values()),
            "exit_codes": {str(c): n for c, n in sorted(codes.items())},
            "regression_rows": dict(rows.most_common())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="trials per scenario (default 5)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from {', '.join(SCENARIOS)}")
    parser.add_argument("--slow", default="linear", help="the attention label to slow down")
    parser.add_argument("--factor", type=float, default=1.5, help="planted slowdown factor")
    parser.add_argument("--small", action="store_true",
                        help="tiny sweep: checks the machinery, proves nothing")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the runs and prove_gate.json here (default: a temp folder)")
    parser.add_argument("--pairs", type=Path, default=None, metavar="OUT",
                        help="only compare every ordered pair of identical-code runs of a "
                             "finished proof in OUT (no new runs)")
    args = parser.parse_args(argv)
    if args.pairs is not None:
        if not args.pairs.is_dir():
            parser.error(f"--pairs {args.pairs}: no such folder (give a finished proof's --out)")
        found = identical_pairs(args.pairs)
        if not found["pairs"]:
            print(f"prove_gate: no two quiet or base runs under {args.pairs} (expected "
                  "quiet/<trial>/<side>/latest and <scenario>/<trial>/base/latest)",
                  file=sys.stderr)
            return 2
        print(json.dumps(found, indent=1))
        return 0
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad or args.trials < 1 or args.factor <= 1.0:
        parser.error(f"scenarios from {SCENARIOS} (got {bad}), --trials >= 1, --factor > 1")
    sweep = SMALL if args.small else FULL
    if args.slow not in sweep["attentions"]:
        parser.error(f"--slow must be one of the sweep's attentions: {sweep['attentions']}")
    out = args.out or Path(tempfile.mkdtemp(prefix="prove-gate-"))
    out.mkdir(parents=True, exist_ok=True)
    profile = write_profile(out / "profile.yaml", sweep)
    results = []
    started = time.perf_counter()
    for scenario in scenarios:
        for i in range(args.trials):
            t0 = time.perf_counter()
            result = trial(scenario, profile, out / scenario / str(i), args)
            result["seconds"] = round(time.perf_counter() - t0, 1)
            results.append(result)
            names = sorted({r["label"] for r in result["regressions"]})
            print(f"{scenario} #{i + 1}: exit {result['exit_code']}"
                  f" ({'as expected' if result['ok'] else 'UNEXPECTED'}); regressions in"
                  f" {names or 'none'}; {len(result['inconclusive'])} inconclusive row(s);"
                  f" {result['seconds']} s", flush=True)
    summary = {}
    for scenario in scenarios:
        codes = [r["exit_code"] for r in results if r["scenario"] == scenario]
        summary[scenario] = {str(c): codes.count(c) for c in sorted(set(codes))}
    (out / "prove_gate.json").write_text(json.dumps(
        {"sweep": sweep, "small": args.small, "slow": args.slow, "factor": args.factor,
         "summary": summary, "trials": results,
         "seconds": round(time.perf_counter() - started, 1)}, indent=1), encoding="utf-8")
    print("\n| scenario | expected exit | exit codes seen (count) |\n| --- | --- | --- |")
    for scenario, seen in summary.items():
        expected = " or ".join(map(str, sorted(EXPECTED[scenario])))
        shown = ", ".join(f"{c}: {n}" for c, n in seen.items())
        print(f"| {scenario} | {expected} | {shown} |")
    print(f"\ndetails: {out / 'prove_gate.json'}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
