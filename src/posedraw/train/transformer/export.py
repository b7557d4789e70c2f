"""The model folder of a trained code transformer."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from posedraw.config import to_dict
from posedraw.io import atomic_dir
from posedraw.train.transformer.module import CodeTransformerModule


def export_transformer(module: CodeTransformerModule, vq, folder: Path, steps: int) -> Path:
    """Write the pipeline folder `generate` loads (model_index.json, transformer/, vq/, pose_encoder/) and
    posedraw.json (steps and config)."""
    from posedraw.pipelines.code_transformer import CodeTransformerPipeline

    pipeline = CodeTransformerPipeline(
        copy.deepcopy(module.model).float().eval(), vq, copy.deepcopy(module.pose_encoder).float().eval()
    )
    with atomic_dir(folder) as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        info = {"kind": "transformer", "steps": steps, "config": to_dict(module.config)}
        (tmp / "posedraw.json").write_text(json.dumps(info, indent=1) + "\n")
    return folder
