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


def resolve_step_map(config: ml_collections.ConfigDict, name: str, steps_per_epoch: int
                     ) -> dict[str, int] | None:
    """`config.<name>_steps` ({key: steps}), else `config.<name>_epochs` ({key: epochs})
    with each value times `steps_per_epoch` (rounded up); None when neither is set.
    Setting both is an error."""
    steps, epochs = config.get(f"{name}_steps"), config.get(f"{name}_epochs")
    if steps is not None and epochs is not None:
        raise ValueError(f"Set only one of config.{name}_steps and config.{name}_epochs "
                         f"(got {steps} and {epochs}).")
    if epochs is None:
        return steps.to_dict() if hasattr(steps, "to_dict") else steps
    if hasattr(epochs, "to_dict"):
        epochs = epochs.to_dict()
    if not isinstance(epochs, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf
            for v in epochs.values()):
        raise ValueError(f"config.{name}_epochs={epochs!r} must map names to epochs >= 0.")
    return {k: int(math.ceil(v * steps_per_epoch)) for k, v in epochs.items()}


def crossed(step: int, every: int | None, steps_just_taken: int = 1) -> bool:
    """Whether a multiple of `every` fell within the last `steps_just_taken` steps (ending at
    `step`). `every` None or 0 means never."""
    return bool(every) and step % every < steps_just_taken
