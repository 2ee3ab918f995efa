"""Prove the bias suite's verdicts are calibrated: silent on a null, firing on a planted bias.

Runs the bias suite of a profile (default ``quick``: its corpus, model, budget, attentions and
``min_increase`` / ``multiplicity``) at planted strengths 0 and 0.8 over several seeds, then
checks two things on the stored records:

* null (strength 0: the training labels carry no group association): the share of attentions
  with at least one ``significant_increase`` flag against standard (the verdicts, made over
  seeds) must be <= the profile's ``alpha`` (family-wise error, ``multiplicity: holm``; under a
  complete null every flag is false, so with ``bh`` the same share is bounded by the FDR target);
  the share of (attention, seed) families with an adjusted per-seed p-value <= alpha is printed
  for context (those compare one trained model with another, not the attentions);
* planted (strength 0.8): the planted group's demographic-parity gap must be detected for every
  attention and seed: its 95% interval lies above ``min_increase``.

The text probe cells are left out (they need external data). Prints a markdown table for
docs/PERFORMANCE.md and exits 0 when both checks pass, 1 otherwise.

    python scripts/prove_bias_calibration.py                   # 5 seeds, quick bias settings
    python scripts/prove_bias_calibration.py --dry-run         # tiny corpus and budget, 2 seeds
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def _profile(args: argparse.Namespace) -> dict[str, Any]:
    source = Path(args.profile)
    if not source.is_file():
        source = REPO / "suites" / f"{args.profile}.yaml"
    data = yaml.safe_load(source.read_text())
    bias = dict(data["suites"]["bias"])
    bias["strengths"] = [0.0, args.strength]
    bias["text"] = None
    if args.dry_run:
        bias["corpus"] = {**bias.get("corpus", {}), "n_train": 400, "n_val": 100, "n_test": 300}
        bias["train"] = {**bias.get("train", {}), "steps": 40, "eval_every": 20}
        bias["n_boot"] = 50
    data["suites"] = {"bias": bias}
    data["seeds"] = list(range(args.seeds))
    data["name"] = "bias-calibration"
    return data


def _run(profile: dict[str, Any], out: Path, attention: str | None) -> Path:
    path = out / "profile.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    cmd = [sys.executable, "-m", "harness.cli", "run", "bias", "--profile", str(path), "--out",
           str(out), "--no-report", "--no-progress"]
    if attention:
        cmd += ["--attention", attention]
    done = subprocess.run(cmd, cwd=REPO, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"harness run exited {done.returncode}")
    latest = out / "latest"
    return out / (latest.readlink() if latest.is_symlink() else latest.read_text().strip())


def _summarized(run_dir: Path, profile: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's cell records plus the bias summary recomputed by this checkout's code (so a
    stored run can be re-checked after a change to the summary)."""
    from dataclasses import asdict

    from harness.records import Record
    from harness.run.profiles import profile_from_dict
    from harness.suites import RunContext, get_suite

    params = profile_from_dict(profile).suites["bias"]
    cells = [Record.from_dict(json.loads(line)) for line in
             (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    cells = [r for r in cells if r.cell and not r.cell.startswith("summary:")]
    summary = get_suite("bias").summarize(cells, params, RunContext(run_dir=run_dir))
    return [asdict(r) for r in (*cells, *summary)]


def _check(run_dir: Path, profile: dict[str, Any], strength: float) -> tuple[bool, str]:
    bias = profile["suites"]["bias"]
    alpha = float(bias.get("alpha", 0.05))
    margin = float(bias.get("min_increase", 0.0))
    method = bias.get("multiplicity", "holm")
    planted_axis = bias.get("corpus", {}).get("bias_axis", "gender")
    records = _summarized(run_dir, profile)
    flags: dict[str, list[float]] = defaultdict(list)
    per_seed: dict[tuple[str, Any], list[bool]] = defaultdict(list)
    n_flags = n_tests = 0
    for r in records:
        p = r["params"]
        if p.get("strength") != 0.0 or r["value"] is None:
            continue
        if r["metric"] == "significant_increase" and p.get("seed") == "all":
            flags[r["label"]].append(r["value"])
            n_flags += r["value"] == 1.0
            n_tests += 1
        elif r["metric"] == "increase_p_adjusted" and p.get("seed") != "all":
            per_seed[(r["label"], p["seed"])].append(r["value"] <= alpha)
    seed_share = sum(any(v) for v in per_seed.values()) / max(len(per_seed), 1)
    flagged = sorted(k for k, v in flags.items() if 1.0 in v)
    share = len(flagged) / max(len(flags), 1)
    detect: dict[tuple[str, Any], bool] = {}
    for r in records:
        p = r["params"]
        if r["metric"] == "demographic_parity_difference" and r["status"] == "ok" \
                and p.get("axis") == planted_axis and p.get("strength") == strength:
            detect[(r["label"], p["seed"])] = r["ci_low"] is not None and r["ci_low"] > margin
    missed = sorted(k for k, ok in detect.items() if not ok)
    null_ok = share <= alpha and bool(flags)
    planted_ok = not missed and bool(detect)
    labels = sorted(set(flags) | {k[0] for k in detect})
    lines = [
        f"run: {run_dir}",
        "",
        "| check | figure | target | verdict |",
        "| --- | --- | --- | --- |",
        f"| null (strength 0): attentions with any `significant_increase` (over seeds) |"
        f" {len(flagged)} of {len(flags)} ({share:.0%}); {n_flags} flags in {n_tests} tests |"
        f" <= {alpha:.0%} ({method}) | {'pass' if null_ok else 'FAIL'} |",
        f"| context: (attention, seed) families with an adjusted per-seed p <= {alpha:g} (this"
        f" model vs standard's; not a verdict) | {seed_share:.0%} of {len(per_seed)} | - | - |",
        f"| planted (strength {strength:g}): planted {planted_axis} gap detected | "
        f"{len(detect) - len(missed)} of {len(detect)} (attention, seed) | all |"
        f" {'pass' if planted_ok else 'FAIL'} |",
        "",
        f"attentions: {', '.join(labels)}; min_increase {margin:g}; alpha {alpha:g}",
    ]
    if flagged:
        lines.append("flagged null attentions: " + ", ".join(flagged))
    if missed:
        lines.append("missed planted gaps: " + ", ".join(f"{a} seed {s}" for a, s in missed))
    return null_ok and planted_ok, "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", help="profile name or YAML path")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--strength", type=float, default=0.8, help="planted strength")
    parser.add_argument("--attention", default=None, help="comma-separated labels (default all)")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny corpus and budget, 2 seeds: checks the script, not the claim")
    parser.add_argument("--out", type=Path, default=None, help="keep the run here")
    parser.add_argument("--analyze", type=Path, default=None,
                        help="only check an existing run dir (made by this script)")
    args = parser.parse_args()
    if args.dry_run and args.seeds == 5:
        args.seeds = 2
    profile = _profile(args)
    started = time.perf_counter()
    if args.analyze is not None:
        run_dir = args.analyze
    else:
        out = args.out or Path(tempfile.mkdtemp(prefix="bias-calibration-"))
        out.mkdir(parents=True, exist_ok=True)
        run_dir = _run(profile, out, args.attention)
    ok, table = _check(run_dir, profile, args.strength)
    print(table)
    print(f"\n{'calibrated' if ok else 'NOT calibrated'} ({time.perf_counter() - started:.0f} s)")
    return 0 if ok or args.dry_run else 1


if __name__ == "__main__":
    raise SystemExit(main())
