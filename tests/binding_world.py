"""A world where binding is all there is to learn: scenes of two or three figures, each drawn as a thick red
or blue skeleton on grey, each figure's colour its own prompt. A model that reads the prompts as one bag
cannot tell which figure is red; one that binds them can. Used by the binding test and
bench/person_binding.py (which compares ways of binding)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
import torch
from PIL import Image, ImageDraw

from posedraw.builtin import builtin_model
from posedraw.config import from_dict
from posedraw.data.images import to_tensor
from posedraw.data.toy import make_toy_scene
from posedraw.models.text import TagEncoder
from posedraw.models.vq import encode, load_vq
from posedraw.pose import Pose
from posedraw.pose.schema import LIMB_INDICES
from posedraw.train.ldm import LatentDiffusionModule, LDMRunConfig, build_pipeline

COLOURS = {"red": (210, 40, 40), "blue": (40, 60, 210)}
#: held-out scenes: toy-scene seeds far from the training ones
HELD_OUT_SEED = 10**9


def skeleton_image(pose: Pose, colours: Sequence[str]) -> Image.Image:
    """Grey canvas, each person's skeleton drawn 5 px thick in its colour."""
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for person, name in enumerate(colours):
        xy, present = pose.xy[person], pose.present[person]
        for a, b in LIMB_INDICES:
            if present[a] and present[b]:
                draw.line([tuple(xy[a]), tuple(xy[b])], fill=COLOURS[name], width=5)
    return image


def drawn_colour(image: torch.Tensor, pose: Pose, person: int) -> str:
    """The colour a drawing (3, 64, 64) in [-1, 1] has on one person's skeleton: red or blue, whichever is more."""
    alone = pose.person(person)
    mask = to_tensor(skeleton_image(alone, ["red"]))[1] < -0.5  # the skeleton's pixels (green low)
    return "red" if image[0][mask].mean() > image[2][mask].mean() else "blue"


def train_binding_model(pose: dict, people: int = 2, steps: int = 200, seed: int = 0):
    """A tiny diffusion model trained for `steps` on 24 layouts of `people` figures in every colour
    combination, with `pose` (config overrides: the binding's paths) and per-person prompts only; with
    `{"person_prompts": False}` the colours are one bag prompt instead (what a model without binding gets)."""
    vq = load_vq(builtin_model())
    layouts = [make_toy_scene(s, 64, people).pose for s in range(24)]
    pool = [(layout.replace(prompts=c), c) for layout in layouts for c in product(COLOURS, repeat=people)]
    with torch.no_grad():
        latents = encode(vq, torch.stack([to_tensor(skeleton_image(p, c)) for p, c in pool])).detach()
    config = from_dict(LDMRunConfig, {
        "unet": {"sample_size": 16, "latent_channels": 3, "model_channels": 16, "channel_mult": [1, 2],
                 "num_res_blocks": 1, "attention_resolutions": [1, 2], "num_head_channels": 16, "context_dim": 16},
        "pose": {"mode": "tokens+maps", "dropout": 0.1, "max_people": people, "person_prompts": True, **pose},
        "text": {"kind": "tags", "tag_dropout": 0.0, "dropout": 0.1, "person_share": 1.0},
        "diffusion": {"prediction": "v_prediction", "min_snr_gamma": 5.0, "scale_factor": 1.0},
        "train": {"ema_decay": 0.0},
    })  # fmt: skip
    torch.manual_seed(seed)
    module = LatentDiffusionModule(config, TagEncoder(list(COLOURS), dim=16, max_tags=people))  # a bag names all
    optimizer = torch.optim.AdamW(module.trainable(), lr=2e-3)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        rows = rng.choice(len(pool), 16)
        bags = [[] if config.pose.person_prompts else list(pool[i][1]) for i in rows]
        loss = module.loss(latents[rows], [pool[i][0] for i in rows], bags)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.ema.module.load_state_dict(torch.nn.ModuleDict(module.networks()).state_dict())
    return build_pipeline(module, vq)


def binding_score(pipe, people: int = 2, scenes: int = 8) -> dict[str, int]:
    """Held-out scenes drawn with alternating colours and with those colours swapped (the same bag of
    colours: a model without binding can get at most one of the two orders right): how many drawings got
    every figure right (`drawings_right` of `drawings`) and how many figures did."""
    held_out = [make_toy_scene(HELD_OUT_SEED + i, 64, people).pose for i in range(scenes)]
    first = [("red", "blue")[k % 2] for k in range(people)]
    drawings = figures = 0
    for order in (first, [("blue", "red")[k % 2] for k in range(people)]):
        text = {"person_prompts": [order] * scenes} if pipe.takes_person_prompts else {"prompt": ", ".join(order)}
        images = pipe(held_out, seeds=list(range(scenes)), steps=10, text_guidance=2.0, **text).images
        for image, pose in zip(images, held_out):
            right = [drawn_colour(image, pose, k) == order[k] for k in range(people)]
            drawings, figures = drawings + all(right), figures + sum(right)
    return {"drawings_right": drawings, "drawings": 2 * scenes, "figures_right": figures,
            "figures": 2 * scenes * people}  # fmt: skip
