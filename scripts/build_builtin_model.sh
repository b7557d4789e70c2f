#!/usr/bin/env bash
# Rebuilds the built-in model (src/posedraw/builtin/toy-figures) from scratch on a CPU: toy figures ->
# VQ (configs/builtin-vq-f4.yaml, on single figures) -> scenes of 1 to 3 figures -> latent cache ->
# tokens+maps diffusion for up to 3 people (configs/ldm-toy.yaml, 6000 steps) -> fine-tuned with the figures'
# tags (configs/ldm-toy-tags.yaml): 2000 steps as tokens, then 8000 with the pooled path -> 6000 more at a
# lower learning rate and a slower EMA on 30000 scenes (configs/ldm-toy-tags-finish.yaml) -> 3932 steps at
# batch 128 on 40000 scenes on a GPU (scripts/finish_builtin_gpu.sh) -> per-person prompts
# (configs/ldm-toy-person-prompts.yaml, 40 minutes on 2 cores). About 4.5 hours on 2 cores for the
# CPU stages before it; the GPU stage on a GPU (DEVICE=cpu runs it on the CPU, for hours).
# Usage: [DEVICE=cuda] scripts/build_builtin_model.sh [WORK_DIR]
set -euo pipefail
work=${1:-runs/builtin}
posedraw data toy --num 4000 --size 64 --out "$work/toy"
posedraw train vq --config configs/builtin-vq-f4.yaml --data "$work/toy" --out "$work/vq" --device cpu
posedraw data toy --num 6000 --size 64 --max-people 3 --out "$work/scenes"
posedraw data cache-latents "$work/scenes" --model "$work/vq/model" --out "$work/latents" --no-codes --device cpu
posedraw train ldm --config configs/ldm-toy.yaml --latents "$work/latents" --vq "$work/vq/model" --out "$work/ldm" --device cpu --max-steps 6000
# the tags first as cross-attention tokens only (2000 steps), then with the pooled path too (8000 steps)
sed 's/^  pooled: true/  pooled: false/' configs/ldm-toy-tags.yaml > "$work/ldm-toy-tag-tokens.yaml"
posedraw train ldm --config "$work/ldm-toy-tag-tokens.yaml" --init "$work/ldm/model" --latents "$work/latents" --vq "$work/vq/model" --out "$work/ldm-tags" --device cpu --max-steps 2000
posedraw train ldm --config configs/ldm-toy-tags.yaml --init "$work/ldm-tags/model" --latents "$work/latents" --vq "$work/vq/model" --out "$work/ldm-pooled" --device cpu --max-steps 8000
# the last stage: more scenes (seeds 0-5999 are the scenes above), a lower learning rate, a slower EMA
posedraw data toy --num 30000 --size 64 --max-people 3 --out "$work/scenes-30000"
posedraw data cache-latents "$work/scenes-30000" --model "$work/vq/model" --out "$work/latents-30000" --no-codes --device cpu
posedraw train ldm --config configs/ldm-toy-tags-finish.yaml --init "$work/ldm-pooled/model" --latents "$work/latents-30000" --vq "$work/vq/model" --out "$work/ldm-finish" --device cpu --max-steps 6000
# the GPU stage: 4x the batch on 40000 scenes
scripts/finish_builtin_gpu.sh "$work/ldm-finish/model" "$work/gpu" 40000 "1462 2810 3932" "${DEVICE:-cuda}"
# per-person prompts (configs/ldm-toy-person-prompts.yaml): each figure's tags bound to that figure, on the
# 30000 scenes (their pose files carry each figure's tags), one torch thread
OMP_NUM_THREADS=1 posedraw train ldm --config configs/ldm-toy-person-prompts.yaml --init "$work/gpu/model-3932" --latents "$work/latents-30000" --vq "$work/vq/model" --out "$work/person" --device cpu --max-steps "${PERSON_STEPS:-6000}"
rm -rf src/posedraw/builtin/toy-figures
cp -r "$work/person/model" src/posedraw/builtin/toy-figures
chmod -R go+rX src/posedraw/builtin/toy-figures
du -sh src/posedraw/builtin/toy-figures
