#!/usr/bin/env bash
# The GPU device check of issue 18, in one call of at most 10 minutes: the peers' plain loop and evalsuite
# side by side (benchmarks/bench_peer.py) on CUDA, fp32 and bf16, EfficientSAM-Ti and SAM ViT-H with
# deterministic random weights, 64 images, every row; then stage (d) of bench_pipeline.py (the suite
# without a network). Writes $OUT/peer.json and $OUT/overhead.json, and the printed tables to $OUT/*.txt.
#
#   bash benchmarks/device_peer.sh OUT                 # on the device machine (CUDA)
#   DEVICE=cpu TINY=1 bash benchmarks/device_peer.sh OUT   # the same script on the CPU, tiny (a smoke test;
#                                                          # MODELS="efficientsam-ti" unless given)
#
# Rows that would start after BUDGET_S seconds (default 420) are skipped and named in the JSON, so the
# call ends in time; every finished row is in the JSON as soon as it is done.
set -euo pipefail
out=${1:?usage: device_peer.sh OUT}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
device=${DEVICE:-cuda}
budget=${BUDGET_S:-420}
models=${MODELS:-efficientsam-ti sam-vit-h}
if [ "${TINY:-0}" = 1 ]; then
    models=${MODELS:-efficientsam-ti}
    size=(--model-images 1 --repeats 1 --rows box 3click-sam)
    overhead=(--overhead-images 6 --overhead-warmup 2 --repeats 1)
else
    size=(--model-images 64 --repeats 2)
    overhead=(--overhead-images 64 --repeats 3)
fi
py=${PYTHON:-python}  # a Python with evalsuite installed and a CUDA build of torch
nvidia-smi -L 2>/dev/null || true
# shellcheck disable=SC2086  # $models is a list of names
"$py" "$here/bench_peer.py" --device "$device" --models $models --precisions fp32 bf16 \
    "${size[@]}" --budget-s "$budget" --json "$out/peer.json" | tee "$out/peer.txt"
"$py" "$here/bench_pipeline.py" --device "$device" --overhead-only "${overhead[@]}" \
    --json "$out/overhead.json" | tee "$out/overhead.txt"
