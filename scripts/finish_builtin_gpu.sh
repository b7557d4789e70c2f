#!/usr/bin/env bash
# The built-in model's last stage, on one GPU: a model from scripts/build_builtin_model.sh's CPU stages
# continued (train ldm --init) with configs/ldm-toy-tags-gpu.yaml (batch 128) on 40000 toy scenes (seeds
# 0-39999: the 30000 of the CPU stage and 10000 more), cached with the model's own VQ. A model is exported
# at each step count of STEPS (the run resumes from one to the next); the shipped model is the one at 3932
# steps (on an H100; the run was stopped by time at 1462, 2810 and 3932 steps, which the default STEPS repeat).
# Usage: scripts/finish_builtin_gpu.sh INIT OUT [SCENES] [STEPS] [DEVICE]
#   e.g. scripts/finish_builtin_gpu.sh runs/builtin/ldm-finish/model runs/builtin/gpu 40000 "1462 2810 3932" cuda
set -euo pipefail
init=$1; out=$2; scenes=${3:-40000}; steps=${4:-"1462 2810 3932"}; device=${5:-cuda}
mkdir -p "$out"
posedraw data toy --num "$scenes" --size 64 --max-people 3 --out "$out/scenes"
posedraw data cache-latents "$out/scenes" --model "$init/vq" --out "$out/latents" --no-codes --device "$device"
for at in $steps; do
  posedraw train ldm --config configs/ldm-toy-tags-gpu.yaml --init "$init" --latents "$out/latents" \
    --vq "$init/vq" --out "$out/run" --device "$device" --max-steps "$at"
  rm -rf "$out/model-$at" && cp -r "$out/run/model" "$out/model-$at"
done
