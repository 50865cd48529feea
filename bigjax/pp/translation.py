"""On-device preprocessing of sentence pairs for an encoder-decoder."""

from __future__ import annotations

import jax.numpy as jnp

from bigjax.models.transformer import PAD_ID


def teacher_forcing(batch: dict, rng, train: bool) -> dict:
    """`source_ids` [batch, source_length] and `target_ids` [batch, target_length] (BOS,
    target, EOS, padding 0) -> the model's `inputs` (the source), `decoder_inputs`
    (`target_ids[:, :-1]`), `targets` (`target_ids[:, 1:]`) and `weights` float32 (1 at
    real target tokens)."""
    targets = batch["target_ids"][:, 1:]
    return {**batch, "inputs": batch["source_ids"],
            "decoder_inputs": batch["target_ids"][:, :-1], "targets": targets,
            "weights": (targets != PAD_ID).astype(jnp.float32)}
