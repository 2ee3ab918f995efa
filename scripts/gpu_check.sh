#!/usr/bin/env bash
# The harness's CUDA check in one command (docs/GPU.md). Arguments go to scripts/gpu_check.py:
#   scripts/gpu_check.sh --device cuda --out /tmp/gpu_check --bundle "$OUT"   # on the GPU machine
#   scripts/gpu_check.sh --device cpu --tiny --out /tmp/gpu_dry               # the CPU dry run
# --wheels DIR (first argument) installs DIR/*.whl into /tmp/site with pip --no-index --no-deps
# (the packages the GPU image lacks; scripts/gpu_wheels.sh fetches them) and puts it on
# PYTHONPATH. The project itself runs from this checkout (PYTHONPATH=repo root, no install).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
site="${GPU_CHECK_SITE:-/tmp/site}"
if [[ "${1:-}" == "--wheels" ]]; then
    wheels="${2:?--wheels needs a folder of .whl files}"
    shift 2
    shopt -s nullglob
    files=("$wheels"/*.whl)
    if (( ${#files[@]} == 0 )); then
        echo "gpu_check.sh: no .whl files in $wheels (run scripts/gpu_wheels.sh first)" >&2
        exit 2
    fi
    echo "gpu_check.sh: installing ${#files[@]} wheels into $site (no index, no deps)"
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "${files[@]}"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
cd "$repo"
exec "$python" scripts/gpu_check.py "$@"
