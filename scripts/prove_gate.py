"""Prove the release gate (`harness compare`) on the shipped quick profile: its false-fail and
detection rates for timing, accuracy and bias.

Timing: every run is `harness run throughput` with the shipped quick profile, as a user runs it
(its own process, the CLI, every attention of the profile). The protocol:

- ``quiet``: ``--quiet-runs`` runs of identical code; ``harness compare`` on every ordered pair
  -> exit 1 in at most 5% of them;
- ``plant``: ``--plant-runs`` runs with one attention (``--slow``) made ``--factor`` times
  slower (its ``forward`` busy-waits for the extra time; a ``sitecustomize`` on the run's
  ``PYTHONPATH``, so every process that times a cell has it), each compared with a quiet run
  -> exit 1 naming only that attention in at least 19 of 20;
- ``hog``: ``--hog-runs`` runs of identical code with a CPU hog busy on one core, each compared
  with a quiet run -> exit 0 or 3, never 1;
- ``hog_plant``: ``--hog-runs`` planted runs under the hog -> exit 1 naming it, never 3.

Accuracy and bias (``--skip-scores`` leaves them out): two runs of `harness run accuracy bias`
(the quick profile's digits task and bias corpus, ``--seeds`` seeds, standard / linear /
sparse), then ``--score-trials`` copies of the second run in which ``--slow``'s per-seed scores
got seed-level noise (the seed-to-seed spread measured in the run: what a harmless change to
that attention's code does), and as many with a planted drop on top: its macro-F1 minus
``--drop`` on digits and its gender demographic-parity difference plus ``--drop``. Identical
code and seeds -> exit 0; noise only -> exit 1 in at most 5%; planted -> exit 1 naming the
metric and group.

It prints each comparison, the rates against their targets and the total runtime, and writes
everything to ``OUT/prove_gate.json``. Exit 0 when every target was met.

    python scripts/prove_gate.py --out /tmp/proof          # the full protocol (see PERFORMANCE.md)
    python scripts/prove_gate.py --trials 2 --out /tmp/p   # at most 2 runs per scenario
    python scripts/prove_gate.py --pairs /tmp/proof        # only re-compare the quiet runs' pairs
    python scripts/prove_gate.py --recompare /tmp/proof    # re-compare every timing comparison
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"quiet": "exit 1 in <= 5% of ordered pairs", "plant": "exit 1 naming only it in >= 95%",
           "hog": "never exit 1", "hog_plant": "exit 1 naming it, never 3",
           "scores_identical": "exit 0", "scores_noise": "exit 1 in <= 5%",
           "scores_plant": "exit 1 naming the metric and group in >= 95%"}

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


def harness(args: list[str], out: Path, *, plant: tuple[str, float] | None = None,
            hog: bool = False) -> Path:
    """One `harness run ARGS --out OUT` in its own process; returns the run directory."""
    cmd = [sys.executable, "-m", "harness.cli", "run", *args, "--out", str(out),
           "--no-progress", "--no-report"]
    env = dict(os.environ)
    if plant is not None:
        folder = out / "plant"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sitecustomize.py").write_text(_PLANT_MODULE, encoding="utf-8")
        env.update(PROVE_GATE_PLANT=plant[0], PROVE_GATE_FACTOR=repr(plant[1]),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(folder),
                                                            env.get("PYTHONPATH")])))
    spinner = None
    if hog:
        core = max(os.sched_getaffinity(0))
        spinner = subprocess.Popen([sys.executable, "-c", _HOG, str(core)])
        time.sleep(1.0)
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False,
                              env=env)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if done.returncode != 0:
        raise SystemExit(f"harness run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return (out / "latest").resolve()


def compare(base: Path, new: Path) -> dict:
    """`harness compare BASE NEW` through the CLI (its exit code and output), and the rows that
    decided (from the same comparison in this process)."""
    done = subprocess.run([sys.executable, "-m", "harness.cli", "compare", str(base), str(new)],
                          cwd=REPO, capture_output=True, text=True, check=False,
                          env={**os.environ, "COLUMNS": "200"})
    from harness.gate import compare_runs

    cmp = compare_runs(base, new)

    def rows(status: str) -> list[dict]:
        return [{"label": r.label, "metric": r.metric, "params": r.params,
                 "rel_change": r.rel_change, "note": r.note or r.noise}
                for r in cmp.by_status(status)]

    if done.returncode != cmp.exit_code:
        raise SystemExit(f"CLI exit {done.returncode} != compare_runs {cmp.exit_code}")
    return {"base": str(base), "new": str(new), "exit_code": done.returncode,
            "regressions": rows("regression"), "inconclusive": rows("inconclusive"),
            "power": [p.text() for p in cmp.power], "advice": cmp.advice,
            "output": done.stdout[-3000:] + done.stderr[-1000:]}


def _ok(scenario: str, result: dict, slow: str) -> bool:
    code, labels = result["exit_code"], {r["label"] for r in result["regressions"]}
    if scenario == "quiet":
        return code != 1
    if scenario == "hog":
        return code in (0, 3)
    if scenario in ("plant", "hog_plant"):
        return code == 1 and labels == {slow}
    return True


def _show(scenario: str, i: int, result: dict, slow: str) -> None:
    names = sorted({r["label"] for r in result["regressions"]})
    power = "; ".join(result["power"])
    print(f"{scenario} #{i + 1}: exit {result['exit_code']}"
          f" ({'ok' if _ok(scenario, result, slow) else 'MISSED TARGET'}); regressions in"
          f" {names or 'none'}; {len(result['inconclusive'])} inconclusive row(s); {power}",
          flush=True)


def timing_protocol(out: Path, args: argparse.Namespace, counts: dict[str, int]) -> dict:
    """The four timing scenarios; returns ``{scenario: [result, ...]}``."""
    results: dict[str, list[dict]] = {s: [] for s in ("quiet", "plant", "hog", "hog_plant")}
    plant = (args.slow, args.factor)
    quiet_runs = [harness(["throughput"], out / "quiet" / str(i))
                  for i in range(counts["quiet"])]
    for i, (a, b) in enumerate(itertools.permutations(quiet_runs, 2)):
        results["quiet"].append(compare(a, b))
        _show("quiet", i, results["quiet"][-1], args.slow)
    for scenario, n, kw in (("plant", counts["plant"], {"plant": plant}),
                            ("hog", counts["hog"], {"hog": True}),
                            ("hog_plant", counts["hog"], {"plant": plant, "hog": True})):
        for i in range(n):
            new = harness(["throughput"], out / scenario / str(i), **kw)  # type: ignore[arg-type]
            results[scenario].append(compare(quiet_runs[i % len(quiet_runs)], new))
            _show(scenario, i, results[scenario][-1], args.slow)
    return results


def scores_profile(path: Path, seeds: int) -> Path:
    """The quick profile's digits task and bias corpus, ``seeds`` seeds, no baseline or
    fidelity."""
    profile = yaml.safe_load((REPO / "suites" / "quick.yaml").read_text(encoding="utf-8"))
    profile = copy.deepcopy(profile)
    profile["seeds"] = list(range(seeds))
    profile["description"] = f"scripts/prove_gate.py: accuracy and bias over {seeds} seeds"
    acc = profile["suites"]["accuracy"]
    acc["tasks"] = [t for t in acc["tasks"] if t["name"] == "digits"]
    acc.update(baseline=False, fidelity=False)
    profile["suites"] = {"accuracy": acc, "bias": profile["suites"]["bias"]}
    path.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    return path


def _planted_copy(run: Path, dest: Path, rng: random.Random, slow: str, drop: float,
                  noise: bool) -> Path:
    """A copy of ``run`` in which ``slow``'s per-seed scores got seed-level noise (each metric's
    seed-to-seed sd in the run: a change to that attention's code reshuffles its training like
    another seed would) and, with ``drop`` > 0, a planted drop: macro-F1 minus ``drop``, the
    gender demographic-parity difference plus ``drop``."""
    shutil.copytree(run, dest)
    lines = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x]
    groups: dict[tuple, list[float]] = {}
    for r in lines:
        if isinstance((r.get("params") or {}).get("seed"), int) and r.get("value") is not None:
            key = (r["suite"], r.get("label"), r["metric"],
                   json.dumps({k: v for k, v in r["params"].items() if k != "seed"},
                              sort_keys=True))
            groups.setdefault(key, []).append(r["value"])
    out = []
    for r in lines:
        params = r.get("params") or {}
        if isinstance(params.get("seed"), int) and r.get("value") is not None and \
                r.get("status") == "ok":
            key = (r["suite"], r.get("label"), r["metric"],
                   json.dumps({k: v for k, v in params.items() if k != "seed"}, sort_keys=True))
            values = groups[key]
            mean = sum(values) / len(values)
            sd = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
            # a change to one attention perturbs only its own training trajectories: the other
            # attentions' per-seed results stay identical (training is deterministic per seed)
            shift = rng.gauss(0.0, sd) if noise and r.get("label") == slow else 0.0
            if drop and r.get("label") == slow:
                if r["metric"] == "macro_f1":
                    shift -= drop
                elif r["metric"] == "demographic_parity_difference" and \
                        params.get("axis") == "gender":
                    shift += drop
            if shift:
                for field in ("value", "ci_low", "ci_high"):
                    if r.get(field) is not None:
                        r[field] = r[field] + shift
        out.append(json.dumps(r))
    (dest / "results.jsonl").write_text("\n".join(out) + "\n", encoding="utf-8")
    return dest


def scores_protocol(out: Path, args: argparse.Namespace, trials: int) -> dict:
    profile = scores_profile(out / "scores.yaml", args.seeds)
    cmd = ["accuracy", "bias", "--profile", str(profile), "--attention",
           "standard,linear,sparse"]
    a = harness(cmd, out / "scores" / "a")
    b = harness(cmd, out / "scores" / "b")
    results: dict[str, list[dict]] = {"scores_identical": [compare(a, b)],
                                      "scores_noise": [], "scores_plant": []}
    _show("scores_identical", 0, results["scores_identical"][0], args.slow)
    rng = random.Random(0)
    for i in range(trials):
        for scenario, drop in (("scores_noise", 0.0), ("scores_plant", args.drop)):
            dest = out / "scores" / f"{scenario}-{i}"
            if dest.exists():
                shutil.rmtree(dest)
            results[scenario].append(compare(a, _planted_copy(b, dest, rng, args.slow, drop,
                                                               True)))
            _show(scenario, i, results[scenario][-1], args.slow)
    return results


def _scores_named(result: dict, slow: str) -> bool:
    metrics = {(r["label"], r["metric"], (r["params"] or {}).get("axis"))
               for r in result["regressions"]}
    return result["exit_code"] == 1 and {m[0] for m in metrics} == {slow} and \
        any(m[1].startswith("macro_f1") for m in metrics) and \
        any(m[1] == "demographic_parity_difference" and m[2] == "gender" for m in metrics)


def quiet_pairs(out: Path) -> dict | None:
    """Every ordered pair of a finished proof's quiet runs (``out/quiet/<i>/latest``) compared
    again (after a change of the gate, without new runs): the summary and the rows that failed,
    or None with fewer than two runs."""
    from collections import Counter

    runs = sorted({p.resolve() for p in out.glob("quiet/*/latest")})
    if len(runs) < 2:
        return None
    results = [compare(a, b) for a, b in itertools.permutations(runs, 2)]
    rows = Counter(f"{r['label']} {r['metric']} N={r['params'].get('seq_len')}"
                   for res in results for r in res["regressions"])
    return {"runs": len(runs), **summarize({"quiet": results}, "")["quiet"],
            "regression_rows": dict(rows.most_common())}


def recompare(out: Path) -> dict | None:
    """Every timing comparison of a finished proof (``out/prove_gate.json``: quiet, plant, hog,
    hog_plant) made again with this checkout's gate, without new runs: the summary, and each
    comparison whose exit code changed. None when the proof is not there."""
    path = out / "prove_gate.json"
    if not path.is_file():
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    results: dict[str, list[dict]] = {}
    changed = []
    for scenario in ("quiet", "plant", "hog", "hog_plant"):
        for old in stored.get("results", {}).get(scenario, []):
            new = compare(Path(old["base"]), Path(old["new"]))
            results.setdefault(scenario, []).append(new)
            if new["exit_code"] != old["exit_code"]:
                changed.append(f"{scenario}: {old['exit_code']} -> {new['exit_code']}"
                               f" ({old['base']} -> {old['new']})")
    return {"summary": summarize(results, stored.get("slow", "sparse")), "changed": changed}


def summarize(results: dict, slow: str) -> dict:
    """Per scenario: comparisons, exit codes and the rate its target is about."""
    out = {}
    for scenario, rows in results.items():
        if not rows:
            continue
        codes = [r["exit_code"] for r in rows]
        seen = {str(c): codes.count(c) for c in sorted(set(codes))}
        if scenario in ("plant", "hog_plant"):
            hits = sum(_ok(scenario, r, slow) for r in rows)
            rate, met = hits / len(rows), (hits / len(rows) >= 0.95 if scenario == "plant"
                                           else 3 not in codes and hits == len(rows))
        elif scenario == "scores_plant":
            hits = sum(_scores_named(r, slow) for r in rows)
            rate, met = hits / len(rows), hits / len(rows) >= 0.95
        elif scenario == "scores_identical":
            rate, met = codes.count(0) / len(rows), all(c == 0 for c in codes)
        else:
            rate = codes.count(1) / len(rows)
            met = rate == 0 if scenario == "hog" else rate <= 0.05
        out[scenario] = {"comparisons": len(rows), "exit_codes": seen,
                         "rate": round(rate, 3), "target": TARGETS[scenario], "met": met}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quiet-runs", type=int, default=5,
                        help="identical-code runs, compared pairwise (default 5: 20 pairs)")
    parser.add_argument("--plant-runs", type=int, default=20, help="planted runs (default 20)")
    parser.add_argument("--hog-runs", type=int, default=5,
                        help="runs under the hog, identical and planted each (default 5)")
    parser.add_argument("--score-trials", type=int, default=20,
                        help="noise-only and planted copies of the scores run (default 20)")
    parser.add_argument("--seeds", type=int, default=5,
                        help="seeds of the score runs (default 5; paired t has seeds - 1 df)")
    parser.add_argument("--trials", type=int, default=None,
                        help="cap every count above at this (quiet runs at least 2)")
    parser.add_argument("--slow", default="sparse", help="the attention to plant (default"
                        " sparse: one label in the quick profile)")
    parser.add_argument("--factor", type=float, default=1.5, help="planted slowdown factor")
    parser.add_argument("--drop", type=float, default=0.1,
                        help="planted macro-F1 drop and gap increase (default 0.1)")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-scores", action="store_true")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the runs and prove_gate.json here (default: a temp folder)")
    parser.add_argument("--pairs", type=Path, default=None, metavar="OUT",
                        help="only compare every ordered pair of a finished proof's quiet runs")
    parser.add_argument("--recompare", type=Path, default=None, metavar="OUT",
                        help="compare again every timing comparison of a finished proof")
    args = parser.parse_args(argv)
    if args.recompare is not None:
        found = recompare(args.recompare)
        if found is None:
            print(f"prove_gate: no prove_gate.json under {args.recompare}", file=sys.stderr)
            return 2
        print(json.dumps(found, indent=1))
        return 0
    if args.pairs is not None:
        found = quiet_pairs(args.pairs)
        if found is None:
            print(f"prove_gate: fewer than two quiet runs under {args.pairs} (expected"
                  " quiet/<i>/latest)", file=sys.stderr)
            return 2
        print(json.dumps(found, indent=1))
        return 0
    counts = {"quiet": args.quiet_runs, "plant": args.plant_runs, "hog": args.hog_runs,
              "scores": args.score_trials}
    if args.trials is not None:
        counts = {k: min(v, args.trials) for k, v in counts.items()}
    if counts["quiet"] < 2 or min(counts.values()) < 0 or args.factor <= 1.0 or \
            args.drop <= 0 or args.seeds < 2:
        parser.error("--quiet-runs (and --trials) >= 2, other counts >= 0, --factor > 1,"
                     " --drop > 0, --seeds >= 2")
    out = args.out or Path(tempfile.mkdtemp(prefix="prove-gate-"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, list[dict]] = {}
    if not args.skip_timing:
        results.update(timing_protocol(out, args, counts))
    if not args.skip_scores:
        results.update(scores_protocol(out, args, counts["scores"]))
    seconds = round(time.perf_counter() - started, 1)
    summary = summarize(results, args.slow)
    load = os.getloadavg()
    (out / "prove_gate.json").write_text(json.dumps(
        {"counts": counts, "slow": args.slow, "factor": args.factor, "drop": args.drop,
         "summary": summary, "seconds": seconds, "load_at_end": load, "results": results},
        indent=1), encoding="utf-8")
    print("\n| scenario | comparisons | exit codes (count) | rate | target | met |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for scenario, s in summary.items():
        shown = ", ".join(f"{c}: {n}" for c, n in s["exit_codes"].items())
        print(f"| {scenario} | {s['comparisons']} | {shown} | {s['rate']:.0%} | {s['target']}"
              f" | {'yes' if s['met'] else 'NO'} |")
    print(f"\ntotal {seconds:.0f} s (load average at the end {load[0]:.1f});"
          f" details: {out / 'prove_gate.json'}")
    return 0 if all(s["met"] for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
