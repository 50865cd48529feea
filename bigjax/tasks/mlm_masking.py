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
    max_predictions: int | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Picks tokens to predict and corrupts them as BERT does (``input_ids`` is 2-D).

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
      max_predictions: at most this many picks per row (static). A row with more
        keeps a uniformly random subset of its picks (those with the smallest
        draws); the rest stay unchanged and unweighted. Lets the MLM head run on
        ``prediction_positions`` only. None: no cap.

    Returns:
      masked_ids [batch, length] (dtype of input_ids): the corrupted inputs;
      targets [batch, length]: the original ids;
      weights [batch, length] float32: 1 at picked positions, else 0.
    """
    pick_key, how_key, random_key = jax.random.split(rng, 3)
    excluded = jnp.asarray(sorted({*map(int, special_ids), int(pad_id)}), input_ids.dtype)
    eligible = ~jnp.isin(input_ids, excluded)
    draw = jnp.where(eligible, jax.random.uniform(pick_key, input_ids.shape), 2.0)
    picked = draw < mask_prob
    if max_predictions is not None and max_predictions < input_ids.shape[-1]:
        # Given a pick, its draw is uniform on [0, mask_prob): the max_predictions
        # smallest draws are a uniformly random subset of the row's picks.
        smallest = jax.lax.top_k(-draw, max_predictions)[1]  # [batch, P] positions
        rows = jnp.arange(input_ids.shape[0])[:, None]
        picked &= jnp.zeros(input_ids.shape, bool).at[rows, smallest].set(True)
    how = jax.random.uniform(how_key, input_ids.shape)
    random_ids = jax.random.randint(random_key, input_ids.shape, 0, vocab_size, input_ids.dtype)
    masked_ids = jnp.where(picked & (how < 0.8), jnp.asarray(mask_id, input_ids.dtype), input_ids)
    masked_ids = jnp.where(picked & (how >= 0.8) & (how < 0.9), random_ids, masked_ids)
    return masked_ids, input_ids, picked.astype(jnp.float32)


def prediction_positions(
    weights: jax.Array, max_predictions: int
) -> tuple[jax.Array, jax.Array]:
    """The picked positions, gathered so the MLM head runs on them alone.

    Args:
      weights: [batch, length] float, 1 at picked positions (from ``mask_tokens``
        with the same ``max_predictions``, so no row has more picks).
      max_predictions: P, static. A batch shorter than P (e.g. an eval batch cut to
        its longest row) gives all its positions: P becomes ``length``.

    Returns:
      positions [batch, min(P, length)] int32: the picked positions in ascending
        order, then filler positions (unpicked, weight 0);
      gathered_weights [batch, min(P, length)] float32: ``weights`` at ``positions``.
    """
    length = weights.shape[-1]
    max_predictions = min(max_predictions, length)
    # Picked positions first (in order), then the rest: top_k of a score that
    # prefers picks, then earlier positions.
    score = weights * length - jnp.arange(length, dtype=weights.dtype)
    positions = jax.lax.top_k(score, max_predictions)[1].astype(jnp.int32)
    return positions, jnp.take_along_axis(weights, positions, axis=-1).astype(jnp.float32)
