#!/usr/bin/env bash
# Wheels for running bench/gpu_check.py and bench/gpu_perf.py on a GPU machine that reaches no package
# registry and already has torch, torchvision, lightning, transformers, timm, accelerate, typer, rich, tqdm,
# PyYAML and safetensors (Python 3.12): the packages posedraw needs beyond those, and the original code that
# bench/gpu_perf.py compares with (scripts/install_original.sh: stable-diffusion-sdkit, taming-transformers,
# einops, omegaconf; all pure Python), downloaded here into .whl/ (ignored by git). On that machine:
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && PYTHONPATH=/tmp/site:$PWD/src python3 bench/gpu_perf.py --json bench/results/gpu_perf.json
#
# (bench/gpu_check.py runs the same way.)
#
# Usage: scripts/device_wheels.sh [PYTHON_VERSION]   (default 3.12; 3.11 for a dry run on this machine)
set -euo pipefail
cd "$(dirname "$0")/.."
python_version="${1:-3.12}"
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl \
  --python-version "$python_version" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  diffusers==0.42.1 importlib_metadata open_clip_torch==3.3.0 ftfy wcwidth kornia==0.9.0 kornia_rs \
  lpips==0.1.4 webdataset==1.0.2 braceexpand \
  stable-diffusion-sdkit==2.1.5 taming-transformers==0.0.1 einops 'omegaconf>=2.4'
ls .whl
