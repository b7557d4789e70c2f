#!/usr/bin/env bash
# Rebuilds the built-in model (src/posedraw/builtin/toy-figures) from scratch on a CPU: toy figures ->
# VQ (configs/builtin-vq-f4.yaml) -> latent cache -> tokens+maps diffusion (configs/ldm-toy.yaml).
# About an hour on 2 cores. Usage: scripts/build_builtin_model.sh [WORK_DIR]
set -euo pipefail
work=${1:-runs/builtin}
posedraw data toy --num 4000 --size 64 --out "$work/toy"
posedraw train vq --config configs/builtin-vq-f4.yaml --data "$work/toy" --out "$work/vq" --device cpu
posedraw data cache-latents "$work/toy" --model "$work/vq/model" --out "$work/latents" --device cpu
posedraw train ldm --config configs/ldm-toy.yaml --latents "$work/latents" --vq "$work/vq/model" --out "$work/ldm" --device cpu
rm -rf src/posedraw/builtin/toy-figures
cp -r "$work/ldm/model" src/posedraw/builtin/toy-figures
du -sh src/posedraw/builtin/toy-figures
