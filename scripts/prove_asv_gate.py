"""Prove the asv regression gate: it exits 1 on a planted slowdown and 0 without one.

In a throwaway clone of this repository, two commits are made on top of HEAD:

- ``noop``: a comment-only change (the gate must pass: exit 0);
- ``slow``: ``standard`` attention made deliberately slower (the gate must fail: exit 1).

``scripts/asv_gate.sh`` runs on each pair, limited to ``AttentionTime.time_forward`` of the
``standard`` attention (``HARNESS_ASV_ATTENTIONS``) to keep it short. asv environments are shared
with the main checkout's ``.asv/env``, so the second run reuses the first one's installs.

    python scripts/prove_asv_gate.py            # exit 0 when the gate behaves
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLOWDOWN = (
    "        out = self._slow_down(out)  # planted by scripts/prove_asv_gate.py\n"
)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def _commit(clone: Path, message: str) -> str:
    _git(clone, "-c", "user.name=gate", "-c", "user.email=gate@localhost", "commit", "-qam",
         message)
    return _git(clone, "rev-parse", "HEAD")


def _plant_slowdown(clone: Path) -> None:
    path = clone / "harness" / "attention" / "standard.py"
    text = path.read_text()
    anchor = "        if empty is not None:\n"
    if anchor not in text:
        raise SystemExit(f"cannot plant the slowdown: {anchor.strip()!r} not in {path}")
    helper = (
        "    def _slow_down(self, out):\n"
        "        for _ in range(3):  # three extra softmax passes over the output\n"
        "            out = out + 0.0 * torch.softmax(out @ out.transpose(-1, -2), dim=-1) @ out\n"
        "        return out\n\n"
        "    def attend("
    )
    text = text.replace("    def attend(", helper, 1).replace(anchor, SLOWDOWN + anchor, 1)
    path.write_text(text)


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


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="asv-gate-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        base = _git(clone, "rev-parse", "HEAD")
        with open(clone / "README.md", "a") as fh:
            fh.write("\n<!-- gate proof: a change that does not touch the code -->\n")
        noop = _commit(clone, "gate proof: no-op change")
        _plant_slowdown(clone)
        slow = _commit(clone, "gate proof: planted slowdown in standard attention")

        text = re.sub(r"^\s*//.*$", "", (REPO / "asv.conf.json").read_text(), flags=re.M)
        conf = json.loads(text)
        conf.update(repo=str(clone), env_dir=str(REPO / ".asv" / "env"),
                    results_dir=str(Path(tmp) / "results"), html_dir=str(Path(tmp) / "html"))
        config = clone / "asv.gate.json"
        config.write_text(json.dumps(conf, indent=2))

        passed = _gate(clone, config, base, noop)
        failed = _gate(clone, config, noop, slow)
    verdict = passed == 0 and failed == 1
    print(f"gate without a slowdown: exit {passed} (want 0); with the planted slowdown: exit "
          f"{failed} (want 1) -> {'PROVEN' if verdict else 'NOT PROVEN'}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
