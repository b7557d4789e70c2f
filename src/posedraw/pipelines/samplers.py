"""The samplers users can pick, as diffusers schedulers built on the model's own noise schedule.

Every sampler shares the trained schedule (betas, number of train steps, prediction type) saved with the
model; each adds its own settings. `ddim` keeps the original system's DDIM exactly (leading spacing, offset
1, alpha_prev = alpha_bar[0] at the end) when the model came from an original checkpoint.
"""

from __future__ import annotations

import inspect
from typing import Any

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from posedraw.errors import PosedrawError

DEFAULT_SAMPLER = "dpm++"
DEFAULT_STEPS = 20
_SHARED = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")
# the original samplers' timestep grid: leading spacing with offset 1
_ORIGINAL_GRID = {"timestep_spacing": "leading", "steps_offset": 1}

SAMPLERS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "ddim": (DDIMScheduler, {"clip_sample": False, "set_alpha_to_one": False, **_ORIGINAL_GRID}),
    "plms": (PNDMScheduler, {"skip_prk_steps": True, "set_alpha_to_one": False, **_ORIGINAL_GRID}),
    "ddpm": (DDPMScheduler, {"clip_sample": False, "variance_type": "fixed_small"}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "unipc": (UniPCMultistepScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
}


def make_sampler(name: str, schedule: dict[str, Any]) -> SchedulerMixin:
    """Scheduler `name` on the noise schedule described by `schedule` (a scheduler config)."""
    if name not in SAMPLERS:
        raise PosedrawError(f"--sampler: expected one of {', '.join(SAMPLERS)}, got {name!r}")
    cls, settings = SAMPLERS[name]
    shared = {k: schedule[k] for k in _SHARED if k in schedule}
    if name == "ddim" and schedule.get("_class_name") == "DDIMScheduler":
        return DDIMScheduler.from_config(schedule)  # the model's own DDIM settings, untouched
    return cls.from_config({**shared, **settings})


def max_steps(scheduler: SchedulerMixin) -> int:
    """The most steps `scheduler` can take: one per train step, less the offset of a leading grid (the
    original DDIM's grid starts at t = offset, so its last step would be past the schedule)."""
    config = scheduler.config
    offset = int(config.get("steps_offset", 0) or 0) if config.get("timestep_spacing", "leading") == "leading" else 0
    return int(config.num_train_timesteps) - offset


def checked_sampler(sampler: str | SchedulerMixin, schedule: dict[str, Any], steps: int, eta: float) -> SchedulerMixin:
    """The scheduler for `sampler` with its `steps` timesteps set (on the CPU), after refusing a setting it
    cannot run: more steps than its grid has, or an eta it has no use for (only DDIM has one)."""
    scheduler = make_sampler(sampler, schedule) if isinstance(sampler, str) else sampler
    most = max_steps(scheduler)
    if steps > most:
        raise PosedrawError(f"--steps: at most {most} for this sampler, got {steps}")
    scheduler.set_timesteps(steps)
    if int(scheduler.timesteps.max()) >= scheduler.config.num_train_timesteps:  # a grid max_steps does not know
        raise PosedrawError(f"--steps: {steps} steps reach past the schedule for this sampler; use fewer")
    if eta and "eta" not in inspect.signature(scheduler.step).parameters:
        raise PosedrawError("--eta: only the ddim sampler has an eta; leave it at 0 for the others")
    return scheduler


def step_kwargs(scheduler: SchedulerMixin, eta: float, generator: Any) -> dict[str, Any]:
    """The optional `step` arguments this scheduler accepts (eta for DDIM, noise generators if used);
    `checked_sampler` has refused an eta the scheduler does not take."""
    accepted = inspect.signature(scheduler.step).parameters
    kwargs: dict[str, Any] = {}
    if eta and "eta" in accepted:
        kwargs["eta"] = eta
    if "generator" in accepted:
        kwargs["generator"] = generator
    return kwargs
