#!/usr/bin/env bash
# Rebuilds the two toy judges shipped in the package (src/posedraw/eval/weights/): the pose detector that
# measures pose fidelity and the attribute classifier that measures prompt fidelity on toy figures. The
# only way the shipped files change; `posedraw train ...` itself always writes to the --out it is given.
# Usage: scripts/build_toy_judges.sh
set -euo pipefail
weights=src/posedraw/eval/weights
posedraw train pose-detector --out "$weights/toy_pose_detector.safetensors" --steps 1500
posedraw train attribute-classifier --out "$weights/toy_attributes.safetensors" --steps 4000 --renders 8600
