"""The code transformer's pipeline and its model folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from posedraw.config import to_dict
from posedraw.io import atomic_dir
from posedraw.train.transformer.module import CodeTransformerModule


def build_pipeline(module: CodeTransformerModule, vq):
    """A sampling pipeline of float copies of the module's networks (the transformer stage keeps no EMA:
    these are the trained weights) with `vq`."""
    from posedraw.pipelines.code_transformer import CodeTransformerPipeline

    pipeline = CodeTransformerPipeline(
        copy.deepcopy(module.model).float().eval(), vq, copy.deepcopy(module.pose_encoder).float().eval()
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def export_transformer(module: CodeTransformerModule, vq, folder: Path, steps: int) -> Path:
    """Write the pipeline folder `generate` loads (model_index.json, transformer/, vq/, pose_encoder/) and
    posedraw.json (steps and config)."""
    pipeline = build_pipeline(module, vq)
    with atomic_dir(folder) as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        info = {"kind": "transformer", "steps": steps, "config": to_dict(module.config)}
        (tmp / "posedraw.json").write_text(json.dumps(info, indent=1) + "\n")
    return folder
