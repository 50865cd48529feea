"""Language-model inputs: a window of `context + 1` tokens is the model's input (all but
the last) and its targets (all but the first)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def next_token_inputs(batch: dict, rng: jax.Array | None, train: bool) -> dict:
    """`input_ids` [batch, context + 1] -> `inputs` and `targets` [batch, context] (and
    `weights` [batch, context], all ones unless the data gives them)."""
    ids = batch["input_ids"]
    out = {**batch, "inputs": ids[:, :-1], "targets": ids[:, 1:]}
    if "weights" not in batch:
        out["weights"] = jnp.ones(ids[:, 1:].shape, jnp.float32)
    return out
