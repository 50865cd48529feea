"""Dropout with the exact masks of ``flax.linen.Dropout``, drawn by a fusable threefry.

``nn.Dropout`` draws its keep mask with ``jax.random.bernoulli``. With the default
threefry key, ``jax.random.bits`` hashes the flat element index (a 64-bit counter,
split into two 32-bit words) with threefry-2x32 and XORs the two output words. On
CPU, JAX lowers that hash as a 5-iteration ``while`` loop over whole arrays, so each
iteration reads and writes every word of a mask the size of the attention
probabilities [batch, heads, q_length, kv_length]; it was 30% of the BERT
fine-tuning step's op time (``experiments/performance/README.md``).

``Dropout`` here computes the same counters and the same 20 threefry rounds as
straight-line ``jnp`` ops, which XLA fuses into one elementwise loop with the
comparison and the select: the same bits, the same masks, the same outputs as
``nn.Dropout`` for the same rng (tested bit for bit), at about 1/8 of the cost. The
counters come from ``broadcasted_iota`` over the global shape, so the masks do not
depend on how the input is sharded (like JAX's ``jax_threefry_partitionable``).

Where the fast path would not reproduce JAX's bits (a non-threefry key such as
``rbg``, ``jax_threefry_partitionable`` off, or 2**32 or more elements) it calls
``jax.random.bernoulli`` itself, so the masks always equal ``nn.Dropout``'s.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

# Threefry-2x32 rotation constants (Salmon et al. 2011), as in jax's threefry2x32.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = 0x1BD11BDA


def _rotate_left(x: jax.Array, distance: int) -> jax.Array:
    return (x << jnp.uint32(distance)) | (x >> jnp.uint32(32 - distance))


def threefry2x32(key: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 (20 rounds) of the counter pairs (x1, x2), unrolled.

    Args:
      key: uint32[2], the key words.
      x1, x2: uint32 arrays of one shape, the two counter words.

    Returns:
      The two uint32 output words, each of the counters' shape.
    """
    k1, k2 = key[0], key[1]
    schedule = (k1, k2, k1 ^ k2 ^ jnp.uint32(_KEY_PARITY))
    x1, x2 = x1 + schedule[0], x2 + schedule[1]
    for block in range(5):
        for distance in _ROTATIONS[block % 2]:
            x1 = x1 + x2
            x2 = x1 ^ _rotate_left(x2, distance)
        x1 = x1 + schedule[(block + 1) % 3]
        x2 = x2 + schedule[(block + 2) % 3] + jnp.uint32(block + 1)
    return x1, x2


def _flat_index(shape: tuple[int, ...]) -> jax.Array:
    """uint32 [*shape]: each element's row-major index (requires prod(shape) < 2**32)."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        index = index + lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
        stride *= shape[axis]
    return index


def _fast_path_applies(key: jax.Array, shape: tuple[int, ...]) -> bool:
    return (
        str(jax.random.key_impl(key)) == "threefry2x32"
        and bool(jax.config.jax_threefry_partitionable)
        and 0 < math.prod(shape) < 2**32
    )


def random_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 [*shape]: exactly ``jax.random.bits(key, shape, jnp.uint32)``, fusable.

    Args:
      key: a PRNG key (typed, or a raw uint32[2] threefry key).
      shape: the output shape.
    """
    shape = tuple(shape)
    if not _fast_path_applies(key, shape):
        return jax.random.bits(key, shape, jnp.uint32)
    words = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    # jax's counter is the uint64 flat index as (high word, low word); high is 0 here.
    high, low = threefry2x32(words, jnp.zeros(shape, jnp.uint32), _flat_index(shape))
    return high ^ low


def bernoulli(key: jax.Array, p: float, shape: tuple[int, ...]) -> jax.Array:
    """bool [*shape]: exactly ``jax.random.bernoulli(key, p, shape)``, fusable.

    jax draws a float32 uniform in [0, 1) from the top 23 bits of each word (a
    mantissa with exponent 0, minus 1) and keeps it when it is below ``p``.
    """
    shape = tuple(shape)
    if not _fast_path_applies(key, shape):
        return jax.random.bernoulli(key, p, shape)
    bits = random_bits(key, shape)
    one = jnp.uint32(0x3F800000)  # float32 1.0
    uniform = lax.bitcast_convert_type((bits >> jnp.uint32(9)) | one, jnp.float32) - 1.0
    return uniform < jnp.float32(p)


class Dropout(nn.Module):
    """Inverted dropout: zero each element with probability ``rate``, scale the rest.

    A drop-in for ``nn.Dropout`` (same masks and outputs for the same rng) whose mask
    XLA fuses into one loop; see the module docstring.

    Attributes:
      rate: the probability of zeroing an element, in [0, 1].
      deterministic: if true, return the input unchanged (may be given at call time).
      rng_collection: the rng stream the mask is drawn from.
    """

    rate: float
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, inputs: jax.Array, deterministic: bool | None = None) -> jax.Array:
        """Masks ``inputs`` [any shape] in training; identity when deterministic."""
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if self.rate == 0.0 or deterministic:
            return inputs
        if self.rate == 1.0:
            return jnp.zeros_like(inputs)
        keep_prob = 1.0 - self.rate
        keep = bernoulli(self.make_rng(self.rng_collection), keep_prob, inputs.shape)
        return lax.select(keep, inputs / keep_prob, jnp.zeros_like(inputs))
