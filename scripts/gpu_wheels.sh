#!/usr/bin/env bash
# Fetch the wheels the GPU machine's image lacks into .whl/ (git-ignored), for
# `scripts/gpu_check.sh --wheels .whl` there (it installs them with pip --no-index --no-deps).
# The image has Python 3.12 with torch, transformers, pandas, numpy, scipy, scikit-learn, typer,
# rich, jinja2, psutil, pyarrow, pyyaml, fsspec, huggingface-hub, xxhash, narwhals, requests,
# tqdm, httpx, tokenizers, pytest; it lacks pydantic and the datasets / evaluate / fairlearn stack.
# Versions: the ones this project's tests pass with. typing-extensions comes too: pydantic needs a
# recent one and the image's version is not known. asv (benchmark history only) stays behind.
# flash-linear-attention (+ fla-core, einops; pure Python over the image's triton) is the optional
# [gpu] extra: linear's backend=fla.
#   scripts/gpu_wheels.sh                 # cp312 manylinux x86_64 wheels into .whl/
#   PYVER=3.11 WHL_DIR=/tmp/whl311 scripts/gpu_wheels.sh   # the same set for a local rehearsal
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pyver="${PYVER:-3.12}"
dest="${WHL_DIR:-$repo/.whl}"
python="${PYTHON:-python3}"
wheels=(
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    typing-extensions==4.16.0
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
    evaluate==0.4.6
    fairlearn==0.15.0
    flash-linear-attention==0.6.0 fla-core==0.6.0 einops==0.8.2
)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
mkdir -p "$dest"
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
    --implementation cp "${platforms[@]}" -d "$dest" "${wheels[@]}"
# One version of each: two of one package stop the whole install on the device.
dupes=$(ls "$dest"/*.whl | xargs -n1 basename | cut -d- -f1 | tr '[:upper:]_' '[:lower:]-' \
        | sort | uniq -d)
if [[ -n "$dupes" ]]; then
    echo "gpu_wheels.sh: several versions of: $dupes in $dest; remove the extra ones" >&2
    exit 1
fi
# What the wheels need that is neither among them nor in the image (extras and markers left out).
echo "Requires-Dist of the wheels (check each is in the image or here):"
for f in "$dest"/*.whl; do
    { unzip -p "$f" '*.dist-info/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' \
        | sed "s|^|  $(basename "$f" | cut -d- -f1): |"; } || true
done
du -ch "$dest"/*.whl | sed 's/^/  /'
echo "total must stay well under the device's 64 MiB carry limit (with the working tree)"
