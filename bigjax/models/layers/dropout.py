"""Dropout with half the random bits: `nn.Dropout`'s behaviour, cheaper masks.

On CPU the transformer's dropout masks cost as much as a third of a BERT train step, almost
all of it in generating random bits (threefry: one 32-bit hash output per element for
`jax.random.bernoulli`; the attention-probability mask alone is [batch, heads, length,
length]). A keep decision needs far fewer than 32 bits: here each 32-bit word gives two
16-bit draws, and an element is kept when its draw is >= `round(rate * 65536)`. The rate is
thus quantised to 1/65536 (0.1 -> 0.1000061), and kept values are scaled by the exact
`1 / keep_probability`, so the layer stays unbiased. Masks differ from `nn.Dropout`'s (another
use of the random bits), with the same distribution up to that quantisation.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

DRAW_BITS = 16
_LEVELS = 2 ** DRAW_BITS


def keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> tuple[jax.Array, float]:
    """`(keep [*shape] bool, keep probability)`: each element kept with probability
    `1 - round(rate * 65536) / 65536`, from 16-bit draws packed two per 32-bit word."""
    size = 1
    for d in shape:
        size *= d
    words = jax.random.bits(key, (-(-size // 2),), jnp.uint32)
    draws = jax.lax.bitcast_convert_type(words, jnp.uint16).reshape(-1)[:size].reshape(shape)
    threshold = round(rate * _LEVELS)
    return draws >= threshold, 1.0 - threshold / _LEVELS


class Dropout(nn.Module):
    """Zeroes each element with probability `rate` in training and scales the rest by
    `1 / (1 - rate)`; the identity when `deterministic` (or `rate` is 0). Same interface as
    `nn.Dropout` (rng collection "dropout").

    Attributes:
      rate: drop probability (quantised to 1/65536).
      deterministic: default for the call's `deterministic`.
      rng_collection: the rng stream the masks are drawn from.
    """

    rate: float
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool | None = None) -> jax.Array:
        """x: any shape -> the same shape and dtype."""
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if deterministic or self.rate == 0.0:
            return x
        if self.rate >= 1.0:
            return jnp.zeros_like(x)
        keep, keep_prob = keep_mask(self.make_rng(self.rng_collection), x.shape, self.rate)
        return jnp.where(keep, x / jnp.asarray(keep_prob, x.dtype), jnp.zeros_like(x))
