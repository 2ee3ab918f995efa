#!/usr/bin/env bash
# Record asv results for the last N commits of the current branch and publish the history site.
#
#   scripts/asv_history.sh [N]               default N=3; the site lands in .asv/html (gitignored)
#
# Each commit is built and installed in asv's virtualenv (torch pinned to 2.13.0, threads pinned to
# 1); commits already measured on this machine are skipped. ASV_BENCH narrows the benchmarks.
set -euo pipefail
n=${1:-3}
machine=${ASV_MACHINE:-ci-runner}
bench_args=()
if [ -n "${ASV_BENCH:-}" ]; then bench_args=(-b "$ASV_BENCH"); fi
asv machine --yes --machine "$machine" >/dev/null
asv run --machine "$machine" --skip-existing-commits "${bench_args[@]}" "HEAD~${n}..HEAD"
asv publish
echo "history site: .asv/html/index.html (serve it with: asv preview)"
