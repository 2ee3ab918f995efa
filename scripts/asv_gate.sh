#!/usr/bin/env bash
# Performance regression gate: benchmark BASE and HEAD with asv and fail on a slowdown.
#
#   scripts/asv_gate.sh BASE [HEAD]          e.g. scripts/asv_gate.sh origin/main HEAD
#
# Exit 0: nothing got slower by more than the factor; 1: a regression; 2: asv itself failed.
# Environment: ASV_FACTOR (default 1.1), ASV_BENCH (regex of benchmarks, default: all),
# ASV_MACHINE (default ci-runner: a fixed name, so results from one runner stay comparable),
# ASV_CONFIG (default asv.conf.json).
set -euo pipefail
base=${1:?usage: scripts/asv_gate.sh BASE [HEAD]}
head=${2:-HEAD}
machine=${ASV_MACHINE:-ci-runner}
factor=${ASV_FACTOR:-1.1}
bench_args=()
if [ -n "${ASV_BENCH:-}" ]; then bench_args=(-b "$ASV_BENCH"); fi

asv machine --yes --machine "$machine" >/dev/null
set +e
asv continuous --config "${ASV_CONFIG:-asv.conf.json}" --machine "$machine" -f "$factor" --show-stderr "${bench_args[@]}" "$base" "$head"
status=$?
set -e
case $status in
  0) echo "asv gate: no regression beyond ${factor}x";;
  1) echo "asv gate: REGRESSION beyond ${factor}x (see the table above)";;
  *) echo "asv gate: asv failed (exit $status)"; status=2;;
esac
exit $status
