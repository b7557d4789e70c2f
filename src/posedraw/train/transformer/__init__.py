"""Training the pose-conditioned code transformer from the code cache.

Cut as the diffusion stage is: `config`, `data` (the code cache's index and tags, read before step 1),
`module` (the LightningModule and its loss), `export` (the `CodeTransformerPipeline` folder:
`model_index.json`, `transformer/`, `vq/`, `pose_encoder/`, and `posedraw.json` with steps and config) and
`stage` (all of it assembled for the stage driver). This package's names are what the CLI, the benches and
the tests use.
"""

from posedraw.train.transformer.config import TransformerRunConfig
from posedraw.train.transformer.data import fit_to_cache
from posedraw.train.transformer.module import CodeTransformerModule, decay_groups, held_out_loss
from posedraw.train.transformer.stage import train_transformer, transformer_stage

__all__ = [
    "CodeTransformerModule", "TransformerRunConfig", "decay_groups", "fit_to_cache", "held_out_loss",
    "train_transformer", "transformer_stage",
]  # fmt: skip
