"""What is learned: `get(config)` returns the task object named by `config.task`
(see `tasks.base.Task` for the interface)."""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from bigjax.tasks.base import Task
from bigjax.tasks.classification import Classification
from bigjax.tasks.masked_lm import MaskedLM

TASKS: dict[str, Callable[[ml_collections.ConfigDict], Task]] = {
    "classification": lambda config: Classification(config.model.num_classes,
                                                    config.get("label_smoothing", 0.0)),
    "mlm": lambda config: MaskedLM(),
}


def get(config: ml_collections.ConfigDict) -> Task:
    """The task named by `config.task` (one of `TASKS`)."""
    if config.task not in TASKS:
        raise ValueError(f"Unknown config.task {config.task!r}; known: {sorted(TASKS)}.")
    return TASKS[config.task](config)
