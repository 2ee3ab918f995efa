"""Prove the asv regression gate: it exits 1 on a planted 1.5x slowdown and 0 without one.

In a throwaway clone of this repository, two commits are made on top of HEAD:

- ``noop``: a comment-only change (the gate must pass: exit 0);
- ``slow``: ``standard`` attention's forward made ``--factor`` times slower (it busy-waits for
  the extra time, like real work; the gate must fail: exit 1).

``scripts/asv_gate.sh`` runs ``--trials`` times on each pair, limited to
``AttentionTime.time_forward`` of the ``standard`` attention (``HARNESS_ASV_ATTENTIONS``) to keep
it short; it prints how often each pair passed and failed and the total runtime. asv
environments are shared with this checkout's ``.asv/env``, so later runs reuse the first one's
installs (the first builds a virtualenv with torch: minutes, and a download).

    python scripts/prove_asv_gate.py --trials 5   # exit 0 when every trial behaved
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLANT = """

# planted by scripts/prove_asv_gate.py: forward {factor}x slower (busy-waits for the extra time)
import time as _time  # noqa: E402

_planted_forward = StandardAttention.forward


def _slow_forward(self, *args, **kwargs):
    start = _time.perf_counter()
    out = _planted_forward(self, *args, **kwargs)
    until = _time.perf_counter() + ({factor} - 1.0) * (_time.perf_counter() - start)
    while _time.perf_counter() < until:
        pass
    return out


StandardAttention.forward = _slow_forward
"""


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def _commit(clone: Path, message: str) -> str:
    _git(clone, "-c", "user.name=gate", "-c", "user.email=gate@localhost", "commit", "-qam",
         message)
    return _git(clone, "rev-parse", "HEAD")


def _plant_slowdown(clone: Path, factor: float) -> None:
    path = clone / "harness" / "attention" / "standard.py"
    text = path.read_text()
    if "class StandardAttention" not in text:
        raise SystemExit(f"cannot plant the slowdown: no StandardAttention in {path}")
    path.write_text(text + PLANT.format(factor=factor))


def _gate(clone: Path, config: Path, base: str, head: str) -> int:
    env = {
        **os.environ,
        "ASV_BENCH": "AttentionTime.time_forward",
        "HARNESS_ASV_ATTENTIONS": "standard",
        "ASV_MACHINE": os.environ.get("ASV_MACHINE", "ci-runner"),
        "ASV_CONFIG": str(config),
    }
    print(f"$ scripts/asv_gate.sh {base[:8]} {head[:8]}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(["bash", "scripts/asv_gate.sh", base, head], cwd=clone, env=env,
                          text=True, capture_output=True)
    print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n")
    print(f"exit {proc.returncode} after {time.perf_counter() - started:.0f} s\n", flush=True)
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1, help="gate runs per pair (default 1)")
    parser.add_argument("--factor", type=float, default=1.5, help="planted slowdown factor")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.factor <= 1.0:
        parser.error("--trials >= 1 and --factor > 1")
    started = time.perf_counter()
    codes: dict[str, list[int]] = {"noop": [], "slow": []}
    with tempfile.TemporaryDirectory(prefix="asv-gate-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        base = _git(clone, "rev-parse", "HEAD")
        with open(clone / "README.md", "a") as fh:
            fh.write("\n<!-- gate proof: a change that does not touch the code -->\n")
        noop = _commit(clone, "gate proof: no-op change")
        _plant_slowdown(clone, args.factor)
        slow = _commit(clone, f"gate proof: standard attention {args.factor}x slower")

        text = re.sub(r"^\s*//.*$", "", (REPO / "asv.conf.json").read_text(), flags=re.M)
        conf = json.loads(text)
        conf.update(repo=str(clone), env_dir=str(REPO / ".asv" / "env"),
                    results_dir=str(Path(tmp) / "results"), html_dir=str(Path(tmp) / "html"))
        config = clone / "asv.gate.json"
        config.write_text(json.dumps(conf, indent=2))

        for _ in range(args.trials):
            codes["noop"].append(_gate(clone, config, base, noop))
            codes["slow"].append(_gate(clone, config, noop, slow))
    fails_noop = sum(c == 1 for c in codes["noop"])
    caught = sum(c == 1 for c in codes["slow"])
    print(f"identical code: exit 1 in {fails_noop} of {args.trials} (want 0); planted"
          f" {args.factor}x slowdown: exit 1 in {caught} of {args.trials} (want all);"
          f" exit codes {codes}; total {time.perf_counter() - started:.0f} s")
    verdict = all(c == 0 for c in codes["noop"]) and all(c == 1 for c in codes["slow"])
    print("PROVEN" if verdict else "NOT PROVEN")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
