"""Cross-attention of an encoder-decoder: the decoder's positions attend to the encoder's
outputs, with the projected encoder keys and values cached for decoding.

Layouts as in ``causal_attention``: activations [batch, length, heads, head_dim], through
``jax.nn.dot_product_attention``. The cache (collection ``"cache"``) holds
``cross_key`` / ``cross_value`` [batch, source_length, heads, head_dim] and
``context_valid`` bool [batch, source_length]: written once, from the encoder's
outputs, and read by every later decoding step (the encoder is not run again and its
outputs are not projected again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigjax.models.layers import axes
from bigjax.models.layers.attention import Projection

Initializer = Callable[..., jax.Array]


class CrossAttention(nn.Module):
    """Multi-head attention from ``x`` to an encoder's outputs ``context``.

    Params (logical axes): ``query`` kernel [embed, heads, kv]; ``key`` / ``value``
    kernels [context embed, heads, kv]; ``out`` kernel [heads, kv, embed]; biases when
    ``use_bias``.

    Attributes:
      num_heads: attention heads.
      head_dim: per-head width (None: ``embed // num_heads``).
      use_bias: whether the projections have biases.
      implementation: ``jax.nn.dot_product_attention``'s implementation ("xla",
        "cudnn", or None: JAX picks).
      dtype: compute dtype (the softmax runs in float32).
      param_dtype: dtype of the params.
      kernel_init: initializer of the q/k/v kernels.
      out_kernel_init: initializer of the output kernel (None: ``kernel_init``).
    """

    IMPLEMENTATIONS: ClassVar[tuple] = ("xla", "cudnn", None)

    num_heads: int
    head_dim: int | None = None
    use_bias: bool = True
    implementation: str | None = None
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    kernel_init: Initializer = nn.initializers.normal(stddev=0.02)
    out_kernel_init: Initializer | None = None

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array | None,
                 context_valid: jax.Array | None, decode: bool = False) -> jax.Array:
        """Attends from ``x`` to ``context``.

        Args:
          x: [batch, length, embed] the decoder's states.
          context: [batch, source_length, context embed] the encoder's outputs; None on
            the decoding steps after the first (the cached projections are read).
          context_valid: bool [batch, source_length], False at source padding (None: all
            valid); ignored when ``context`` is None (the cached one is used).
          decode: cache the projected keys and values (when ``context`` is given) or read
            them (when it is None).

        Returns:
          [batch, length, embed].
        """
        embed = x.shape[-1]
        head_dim = self.head_dim or embed // self.num_heads
        head_axes = (axes.BATCH, axes.LENGTH, axes.HEADS, axes.KV)

        def proj(name: str, inputs: jax.Array) -> jax.Array:
            out = Projection(features=(self.num_heads, head_dim),
                             kernel_axes=(axes.EMBED, axes.HEADS, axes.KV),
                             use_bias=self.use_bias, dtype=self.dtype,
                             param_dtype=self.param_dtype, kernel_init=self.kernel_init,
                             name=name)(inputs)
            return nn.with_logical_constraint(out, head_axes)

        q = proj("query", x)
        if context is None:
            if not (decode and self.has_variable("cache", "cross_key")):
                raise ValueError("CrossAttention needs the encoder's outputs (context) "
                                 "unless decoding from a filled cache.")
            k = self.get_variable("cache", "cross_key")
            v = self.get_variable("cache", "cross_value")
            valid = self.get_variable("cache", "context_valid")
        else:
            k, v = proj("key", context), proj("value", context)
            valid = (jnp.ones(context.shape[:2], bool) if context_valid is None
                     else context_valid.astype(bool))
            if decode:
                for name, value in (("cross_key", k), ("cross_value", v),
                                    ("context_valid", valid)):
                    self.put_variable("cache", name, value)
        out = jax.nn.dot_product_attention(q, k, v, mask=valid[:, None, None, :],
                                           implementation=self.implementation)
        out = nn.with_logical_constraint(out, head_axes)
        out = Projection(features=(embed,), kernel_axes=(axes.HEADS, axes.KV, axes.EMBED),
                         use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.param_dtype,
                         kernel_init=self.out_kernel_init or self.kernel_init, name="out")(out)
        return nn.with_logical_constraint(out, (axes.BATCH, axes.LENGTH, axes.EMBED))
