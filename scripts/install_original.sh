#!/usr/bin/env bash
# The original system's code, for the benches that compare posedraw with it (bench/vs_original.py,
# bench/gpu_perf.py): the CompVis latent-diffusion UNet and DDIM sampler (`ldm`, from stable-diffusion-sdkit)
# and taming-transformers' VQGAN, LPIPS + discriminator loss, GPT and sampling loop (`taming`). Bench-only:
# never part of posedraw's dependencies or of the main set-up. Both packages pin years-old versions of
# torch and Lightning, so they go in without their dependencies; the two libraries they import beyond
# posedraw's own (einops, omegaconf) come with theirs. bench/original.py holds the import shims.
#
# Usage: scripts/install_original.sh [VENV]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
pip="$venv/bin/pip"
[ -x "$pip" ] || { echo "error: $pip: no pip in the virtual environment $venv" >&2; exit 2; }
"$pip" install -q --no-deps stable-diffusion-sdkit==2.1.5 taming-transformers==0.0.1
"$pip" install -q einops omegaconf
"$venv/bin/python" -c "import ldm, taming, einops, omegaconf; print('original code installed:', ldm.__file__, taming.__file__)"
