"""The README's prompt grid: one held-out pose drawn by the built-in model with different prompts.

Rows are prompts, columns seeds; each tile is scaled up 3x (nearest) so the 64 px figures can be seen.

    python scripts/prompt_grid.py [--out docs/images/prompt_grid.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from posedraw.data.images import to_image as to_pil
from posedraw.io import save_image_atomic
from posedraw.pipelines import load_pipeline
from posedraw.pose import read_pose

PROMPTS = (
    "",
    "red hair, long hair, blue dress",
    "blonde hair, short hair, green shirt",
    "black hair, long hair, white jacket",
    "pink hair, short hair, purple dress",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pose", type=Path, default=Path("examples/poses/waving.json"))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--text-guidance", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("docs/images/prompt_grid.png"))
    args = parser.parse_args()
    pipe = load_pipeline("builtin")
    pipe.set_progress_bar_config(disable=True)
    pose, seeds = read_pose(args.pose), list(range(args.seeds))
    rows = []
    for prompt in PROMPTS:
        options = {"prompt": prompt, "text_guidance": args.text_guidance} if prompt else {}
        images = pipe([pose] * len(seeds), seeds=seeds, **options).images
        rows.append([to_pil(image) for image in images])
    side, scale = rows[0][0].width, 3
    grid = Image.new("RGB", (side * scale * len(seeds), side * scale * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            grid.paste(tile.resize((side * scale,) * 2, Image.Resampling.NEAREST), (c * side * scale, r * side * scale))
    save_image_atomic(grid, args.out)
    print(f"wrote {args.out}: rows {', '.join(repr(p) for p in PROMPTS)}")


if __name__ == "__main__":
    main()
