"""What is learned: `get(config)` returns the task object (loss, eval sums, summary)."""

from __future__ import annotations

import ml_collections

from bigjax.tasks.classification import Classification
from bigjax.tasks.masked_lm import MaskedLM


def get(config: ml_collections.ConfigDict):
    """The task named by `config.task`: "classification" or "mlm"."""
    if config.task == "classification":
        return Classification(config.model.num_classes, config.get("label_smoothing", 0.0))
    if config.task == "mlm":
        return MaskedLM()
    raise ValueError(f"Unknown config.task {config.task!r}; known: ['classification', 'mlm'].")
