#!/usr/bin/env bash
# Performance regression gate: benchmark BASE and HEAD with asv and fail on a slowdown.
#
#   scripts/asv_gate.sh BASE [HEAD]          e.g. scripts/asv_gate.sh origin/main HEAD
#
# Exit 0: nothing got slower by more than the factor; 1: a regression, seen twice; 2: asv failed.
# The two commits are timed in alternating processes (`--interleave-rounds`, ASV_ROUNDS
# processes per commit and benchmark), so a drift of the machine lands on both sides and asv's
# statistics see the spread between processes, not only within one. A benchmark that regresses
# is timed again (the same way, that benchmark only): the gate fails only when it regresses
# both times, so a one-off slow process on a shared runner cannot fail it alone.
# Environment: ASV_FACTOR (default 1.1), ASV_ROUNDS (default 4), ASV_BENCH (regex of
# benchmarks, default: all), ASV_MACHINE (default ci-runner: a fixed name, so results from one
# runner stay comparable), ASV_CONFIG (default asv.conf.json).
set -euo pipefail
base=${1:?usage: scripts/asv_gate.sh BASE [HEAD]}
head=${2:-HEAD}
machine=${ASV_MACHINE:-ci-runner}
factor=${ASV_FACTOR:-1.1}
rounds=${ASV_ROUNDS:-4}
config=${ASV_CONFIG:-asv.conf.json}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

continuous() {  # continuous REGEX: one interleaved asv continuous; output in $log
  local bench_args=()
  if [ -n "$1" ]; then bench_args=(-b "$1"); fi
  set +e
  asv continuous --config "$config" --machine "$machine" -f "$factor" --interleave-rounds \
    -a "rounds=$rounds" --show-stderr "${bench_args[@]}" "$base" "$head" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  set -e
  return "$status"
}

asv machine --yes --machine "$machine" >/dev/null
status=0
continuous "${ASV_BENCH:-}" || status=$?
if [ "$status" = 1 ]; then
  # the benchmarks asv listed as slower ("+" rows, with or without "|" columns), parameters cut
  names=$(tr -d '|' <"$log" | awk '$1 == "+"' \
    | grep -o '[A-Za-z_][A-Za-z0-9_.]*\.\(time\|timeraw\|mem\|peakmem\|track\)_[A-Za-z0-9_]*' \
    | sort -u | paste -sd'|' - || true)
  if [ -n "$names" ]; then
    echo "asv gate: confirming the slower benchmarks once more: $names"
    status=0
    continuous "(${names//./\\.})" || status=$?
  fi
fi
case $status in
  0) echo "asv gate: no regression beyond ${factor}x";;
  1) echo "asv gate: REGRESSION beyond ${factor}x, seen twice (see the tables above)";;
  *) echo "asv gate: asv failed (exit $status)"; status=2;;
esac
exit $status
