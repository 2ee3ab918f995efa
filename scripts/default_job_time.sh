#!/usr/bin/env bash
# The README's default job (`harness run`: every suite, quick profile), before and after a change,
# run side by side (alternating, ROUNDS times each) on the same machine; prints each run's
# duration_s, cell seconds per suite and load average, then the records only one side has.
#
# usage: scripts/default_job_time.sh [BASE_REF] [ROUNDS] [OUT]
#   BASE_REF  commit of "before" (default 1f6f04f: serial runner, memory 2048-16384)
#   ROUNDS    runs per side (default 2)
#   OUT       scratch folder (default /tmp/default-job)
# DRY_RUN=1 runs one tiny job per side (memory suite, linear only) to check the script.
# Run it from an activated venv of this checkout (the "after" side); "before" runs the BASE_REF
# sources (git archive) through PYTHONPATH with the same packages.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-1f6f04f}
rounds=${2:-2}
out=${3:-/tmp/default-job}
mkdir -p "$out"
if [ ! -d "$out/base-src" ]; then  # the sources of BASE_REF (no git state is changed)
  mkdir -p "$out/base-src"
  git -C "$repo" archive "$base" | tar -x -C "$out/base-src"
fi
args=(--no-progress --no-report)
if [ "${DRY_RUN:-0}" = 1 ]; then
  rounds=1
  args+=(memory --attention linear)
fi

one() {  # one: SIDE SRC
  local side=$1 src=$2
  (cd "$out" && PYTHONPATH="$src" python -m harness.cli run "${args[@]}" --out "$out/$side" \
     >"$out/$side.log" 2>&1) || echo "($side exited $?; see $out/$side.log)"
  python - "$out/$side" "$side" <<'EOF'
import json, os, sys
from pathlib import Path
run = (Path(sys.argv[1]) / "latest").resolve()
meta = json.loads((run / "run.json").read_text())
print(f"{sys.argv[2]:6} {run.name}  duration_s={meta.get('duration_s')}  "
      f"status={meta.get('status')}  executor={meta.get('executor', {}).get('name', 'serial')}  "
      f"counts={meta.get('counts')}  cell_seconds={meta.get('cell_seconds')}  "
      f"load={os.getloadavg()[0]:.2f}")
EOF
}

for i in $(seq "$rounds"); do
  one before "$out/base-src"
  one after "$repo"
done

python - "$out" <<'EOF'
import json, sys
from pathlib import Path
def keys(side):
    run = (Path(sys.argv[1]) / side / "latest").resolve()
    rows = [json.loads(line) for line in (run / "results.jsonl").open()]
    return {(r["suite"], r["label"], json.dumps(r["params"], sort_keys=True), r["metric"],
             r["status"]) for r in rows}
before, after = keys("before"), keys("after")
print(f"records: before {len(before)}, after {len(after)}, in both {len(before & after)}")
for name, only in (("only before", before - after), ("only after", after - before)):
    for k in sorted(only):
        print(f"  {name}: {k}")
EOF
