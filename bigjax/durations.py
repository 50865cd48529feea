"""One place that turns `<name>_steps` / `<name>_epochs` config fields into steps."""

from __future__ import annotations

import math

import ml_collections


def resolve_steps(config: ml_collections.ConfigDict, name: str, steps_per_epoch: int,
                  default: int | None = None) -> int | None:
    """`config.<name>_steps`, else `config.<name>_epochs * steps_per_epoch` (rounded up).

    Setting both is an error; neither gives `default`.
    """
    steps = config.get(f"{name}_steps")
    epochs = config.get(f"{name}_epochs")
    if steps is not None and epochs is not None:
        raise ValueError(f"Set only one of config.{name}_steps and config.{name}_epochs "
                         f"(got {steps} and {epochs}).")
    if steps is not None:
        return int(steps)
    if epochs is not None:
        return int(math.ceil(epochs * steps_per_epoch))
    return default


def crossed(step: int, every: int | None, steps_just_taken: int = 1) -> bool:
    """Whether a multiple of `every` fell within the last `steps_just_taken` steps (ending at
    `step`). `every` None or 0 means never."""
    return bool(every) and step % every < steps_just_taken
