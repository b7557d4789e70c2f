"""Training a VQGAN first stage from images.

Cut as the other stages are: `config`, `data` (the training images and the grids' fixed ones), `module`
(the LightningModule: two optimizers, one autoencoder pass per step), `callbacks` (reconstruction grids),
`export` (the VQ model folder, both ways) and `stage` (all of it assembled for the stage driver). This
package's names are what the CLI, the benches and the tests use.
"""

from posedraw.train.vq.config import VQRunConfig
from posedraw.train.vq.module import VQGANModule
from posedraw.train.vq.stage import train_vq, vq_stage

__all__ = ["VQGANModule", "VQRunConfig", "train_vq", "vq_stage"]
