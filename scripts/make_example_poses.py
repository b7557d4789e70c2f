"""Writes examples/poses/<kind>.json: one full-body pose of each kind the toy pose sampler knows, in a
512 x 512 canvas, from seeds the built-in model never trained on (its training figures use seeds < 10^6),
and two_figures.json, a held-out scene of two figures.

    python scripts/make_example_poses.py [OUT_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from posedraw.data.poses import KINDS, example_pose
from posedraw.data.toy import make_toy_scene
from posedraw.pose import dump_pose


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/poses")
    out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        (out / f"{kind}.json").write_text(json.dumps(dump_pose(example_pose(kind)), indent=1) + "\n")
        print(f"wrote {out / kind}.json")
    scene = make_toy_scene(2 * 10**9, 512, people=2).pose
    (out / "two_figures.json").write_text(json.dumps(dump_pose(scene), indent=1) + "\n")
    print(f"wrote {out / 'two_figures'}.json")


if __name__ == "__main__":
    main()
