"""What is learned: `get(config)` returns the task object named by `config.task`
(see `tasks.base.Task` for the interface)."""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from bigjax.tasks.base import Task
from bigjax.tasks.causal_lm import CausalLM
from bigjax.tasks.classification import Classification
from bigjax.tasks.masked_lm import MaskedLM
from bigjax.tasks.translation import Translation

# `config.task` -> maker(config, the data's tokenizer or None).
TASKS: dict[str, Callable[[ml_collections.ConfigDict, object], Task]] = {
    "classification": lambda config, tokenizer: Classification(
        config.model.num_classes, config.get("label_smoothing", 0.0)),
    "mlm": lambda config, tokenizer: MaskedLM(),
    "causal_lm": lambda config, tokenizer: CausalLM(
        tokenizer.token_bytes() if hasattr(tokenizer, "token_bytes") else None,
        char_tokens=bool(getattr(tokenizer, "is_char", False))),
    "translation": lambda config, tokenizer: Translation(
        tokenizer.vocab_size, config.get("label_smoothing", 0.0)),
}


def get(config: ml_collections.ConfigDict, tokenizer=None) -> Task:
    """The task named by `config.task` (one of `TASKS`); `tokenizer`: the data's, if any."""
    if config.task not in TASKS:
        raise ValueError(f"Unknown config.task {config.task!r}; known: {sorted(TASKS)}.")
    return TASKS[config.task](config, tokenizer)
