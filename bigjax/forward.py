"""One forward pass of a model on a preprocessed batch, shared by training and eval."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from bigjax.tasks.base import Task


def forward(model: nn.Module, task: Task, variables: dict, batch: dict, *, train: bool,
            rng: jax.Array | None = None) -> tuple[Any, dict]:
    """Applies `model` to `batch["inputs"]` (plus the task's `model_kwargs`).

    `variables` = `{"params": ..., **model_state}`. In training the model's mutable
    collections (e.g. BatchNorm `batch_stats`) are updated; at eval they are read only.
    Returns `(out, model_state)`: the model's first output and the (new) collections.
    """
    model_state = {k: v for k, v in variables.items() if k != "params"}
    rngs = {"dropout": rng} if rng is not None else {}
    kwargs = task.model_kwargs(batch)
    if train and model_state:
        (out, _), model_state = model.apply(variables, batch["inputs"], train=True, rngs=rngs,
                                            mutable=list(model_state), **kwargs)
        return out, dict(model_state)
    out, _ = model.apply(variables, batch["inputs"], train=train, rngs=rngs, **kwargs)
    return out, model_state
