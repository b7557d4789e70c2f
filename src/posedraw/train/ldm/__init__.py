"""Training the pose-conditioned latent diffusion model from the latent cache.

Cut as Lightning cuts a project: `config` (the run's dataclasses and its noise schedules), `data` (the
latent cache, read once before step 1), `networks` (the encoders a config asks for), `module` (the
LightningModule: loss, optimizer, EMA step), `callbacks` (sample grids), `export` (the pipeline folder,
both ways) and `stage` (all of it assembled for the stage driver). This package's names are what the CLI,
the benches and the tests use.
"""

from posedraw.train.ldm.config import LDMRunConfig, sampling_scheduler
from posedraw.train.ldm.export import build_pipeline, start_from
from posedraw.train.ldm.module import LatentDiffusionModule
from posedraw.train.ldm.networks import make_text_encoder
from posedraw.train.ldm.stage import ldm_stage, train_ldm

__all__ = [
    "LDMRunConfig", "LatentDiffusionModule", "build_pipeline", "ldm_stage", "make_text_encoder",
    "sampling_scheduler", "start_from", "train_ldm",
]  # fmt: skip
