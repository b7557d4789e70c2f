#!/usr/bin/env bash
# Rebuilds the built-in code transformer (src/posedraw/builtin/toy-transformer) on a CPU: 6000 single toy
# figures -> their codes under the built-in diffusion model's VQ (the two built-ins share that VQ) ->
# configs/transformer-toy.yaml (pose prefix + pose maps, pose dropout 0.1 for guidance). About half an hour
# on 2 cores.
# Usage: scripts/build_builtin_transformer.sh [WORK_DIR]
set -euo pipefail
work=${1:-runs/builtin-transformer}
vq=src/posedraw/builtin/toy-figures
posedraw data toy --num 6000 --size 64 --out "$work/toy"
posedraw data cache-latents "$work/toy" --model "$vq" --out "$work/codes" --no-latents --codes --device cpu
posedraw train transformer --config configs/transformer-toy.yaml --codes "$work/codes" --vq "$vq" --out "$work/run" --device cpu
rm -rf src/posedraw/builtin/toy-transformer
cp -r "$work/run/model" src/posedraw/builtin/toy-transformer

chmod -R go+rX src/posedraw/builtin/toy-transformer
du -sh src/posedraw/builtin/toy-transformer
