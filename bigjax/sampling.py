"""Choosing the next token from logits: greedy, or sampled with temperature, top-k and
top-p (nucleus) filtering."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sample_logits(logits: jax.Array, rng: jax.Array, *, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None) -> jax.Array:
    """Next token ids int32 [batch] from logits [batch, vocab] (float32).

    `temperature` 0 is greedy (argmax; `top_k`/`top_p` then change nothing). Otherwise
    the logits are divided by it, cut to the `top_k` largest (ties at the k-th value kept)
    and to the smallest set of most likely tokens whose probability reaches `top_p`, and
    a token is drawn from what is left.
    """
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits.astype(jnp.float32) / temperature
    floor = jnp.finfo(jnp.float32).min
    if top_k is not None and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, floor, logits)
    if top_p is not None and top_p < 1.0:
        ordered = jnp.sort(logits, axis=-1)[:, ::-1]
        cumulative = jnp.cumsum(jax.nn.softmax(ordered, axis=-1), axis=-1)
        # The smallest logit kept: the first one at which the mass reaches top_p.
        cut = jnp.minimum(jnp.sum(cumulative < top_p, axis=-1, keepdims=True),
                          logits.shape[-1] - 1)
        threshold = jnp.take_along_axis(ordered, cut, axis=-1)
        logits = jnp.where(logits < threshold, floor, logits)
    return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)
