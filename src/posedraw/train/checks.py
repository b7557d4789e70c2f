"""The checks every stage's train section shares: values a run divides by, loops over or hands to torch,
refused when the config is loaded instead of failing after the data were read, as a traceback."""

from __future__ import annotations

from typing import Any

#: fields that count something (a batch of 0, a checkpoint every 0 steps cannot run)
COUNTS = ("batch_size", "max_steps", "checkpoint_every")
#: fields torch's optimizers and DataLoader refuse below 0
NON_NEGATIVE = ("learning_rate", "weight_decay", "num_workers", "binding_lr_scale")


def require_train_values(section: Any, counts: tuple[str, ...] = ()) -> None:
    """Refuse a count below 1 (COUNTS and the stage's own `counts`) or a negative rate, decay or worker
    count. A ValueError, which `posedraw.config.from_dict` reports as a ConfigError naming the section and
    the field."""
    for name in (*COUNTS, *counts):
        if getattr(section, name) < 1:
            raise ValueError(f"{name}: expected at least 1, got {getattr(section, name)}")
    for name in NON_NEGATIVE:
        if getattr(section, name, 0) < 0:
            raise ValueError(f"{name}: expected 0 or more, got {getattr(section, name)}")
