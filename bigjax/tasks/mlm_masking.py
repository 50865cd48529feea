"""BERT dynamic masking for masked-language-model training (pure, jit-able)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp


def mask_tokens(
    rng: jax.Array,
    input_ids: jax.Array,
    *,
    vocab_size: int,
    mask_id: int,
    special_ids: Sequence[int],
    mask_prob: float = 0.15,
    pad_id: int = 0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Picks tokens to predict and corrupts them as BERT does.

    Each token that is neither ``pad_id`` nor in ``special_ids`` is picked with
    probability ``mask_prob``; a picked token becomes ``mask_id`` with
    probability 0.8, a uniformly random id in [0, vocab_size) with 0.1, and
    stays unchanged with 0.1.

    Args:
      rng: PRNG key.
      input_ids: [batch, length] int token ids.
      vocab_size: size of the vocabulary (range of random replacements).
      mask_id: id of ``[MASK]``.
      special_ids: ids never picked (``[CLS]``, ``[SEP]``, ...); static.
      mask_prob: probability of picking an eligible token.
      pad_id: padding id, never picked.

    Returns:
      masked_ids [batch, length] (dtype of input_ids): the corrupted inputs;
      targets [batch, length]: the original ids;
      weights [batch, length] float32: 1 at picked positions, else 0.
    """
    pick_key, how_key, random_key = jax.random.split(rng, 3)
    excluded = jnp.asarray(sorted({*map(int, special_ids), int(pad_id)}), input_ids.dtype)
    eligible = ~jnp.isin(input_ids, excluded)
    picked = eligible & (jax.random.uniform(pick_key, input_ids.shape) < mask_prob)
    how = jax.random.uniform(how_key, input_ids.shape)
    random_ids = jax.random.randint(random_key, input_ids.shape, 0, vocab_size, input_ids.dtype)
    masked_ids = jnp.where(picked & (how < 0.8), jnp.asarray(mask_id, input_ids.dtype), input_ids)
    masked_ids = jnp.where(picked & (how >= 0.8) & (how < 0.9), random_ids, masked_ids)
    return masked_ids, input_ids, picked.astype(jnp.float32)
