"""Causal self-attention for decoder-only models: multi-head or grouped-query, learned or
rotary positions, through ``jax.nn.dot_product_attention``, with a KV cache for decoding.

Layouts: activations [batch, length, heads, head_dim] (what
``jax.nn.dot_product_attention`` takes; its XLA implementation runs on CPU/TPU, its
cuDNN one is the fused flash kernel on GPU). The cache (collection ``"cache"``) holds
``cached_key`` / ``cached_value`` [batch, cache_length, kv_heads, head_dim] and
``cache_index`` (the next slot to write, the same for every row).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigjax.models.layers import axes
from bigjax.models.layers.attention import Projection, causal_mask, heads_first_attention
from bigjax.models.layers.dropout import Dropout
from bigjax.models.layers.rotary import apply_rotary, rotary_angles

Initializer = Callable[..., jax.Array]


def attention_with_dropout(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None,
                           is_causal: bool, dropout: Callable[[jax.Array], jax.Array]
                           ) -> jax.Array:
    """``jax.nn.dot_product_attention``'s result with ``dropout`` applied to the
    attention probabilities, which that function cannot do (nanoGPT's and GPT-2's
    ``attn_pdrop``): BERT's ``heads_first_attention`` with the key/value heads repeated
    for grouped-query attention (query head h reads kv head h // (heads / kv_heads)) and
    the causal mask joined to ``mask``. q [batch, length, heads, head_dim]; k, v [batch,
    keys, kv_heads, head_dim]; mask bool, broadcastable to [batch, heads, length, keys]."""
    groups = q.shape[2] // k.shape[2]
    k, v = (jnp.repeat(t, groups, axis=2) if groups > 1 else t for t in (k, v))
    if is_causal:
        causal = causal_mask(q.shape[1])
        mask = causal if mask is None else causal & mask
    return heads_first_attention(q, k, v, mask, dropout)


class CausalSelfAttention(nn.Module):
    """Each position attends to itself and the positions before it.

    Params (logical axes): ``query`` kernel [embed, heads, kv]; ``key`` / ``value``
    kernels [embed, kv_heads, kv] (axis name ``heads``); ``out`` kernel [heads, kv,
    embed]; biases [heads, kv] / [embed] when ``use_bias``.

    Attributes:
      num_heads: query heads.
      num_kv_heads: key/value heads (grouped-query attention when fewer than
        ``num_heads``, which they must divide; None: ``num_heads``).
      head_dim: per-head width (None: ``embed // num_heads``).
      rotary: rotate queries and keys by their positions (RoPE) instead of relying on
        learned position embeddings added to the input.
      rope_theta: RoPE base.
      rope_scaling: Llama 3.1's rescaling of the RoPE frequencies, (factor,
        low_freq_factor, high_freq_factor, original_max_len), or None.
      use_bias: whether the projections have biases.
      implementation: ``jax.nn.dot_product_attention``'s ``implementation`` ("xla",
        "cudnn", or None: let JAX pick), or "heads_first": ``attention_with_dropout``
        without the dropout, whose einsums batch over leading [batch, heads] axes: XLA:CPU
        runs the GPT recipe's step 3-4% faster that way (experiments/shakespeare).
      dropout_rate: dropout on the attention probabilities in training (then through
        ``attention_with_dropout``: the fused kernels have no dropout).
      dtype: compute dtype (the softmax runs in float32).
      param_dtype: dtype of the params.
      kernel_init: initializer of the q/k/v kernels.
      out_kernel_init: initializer of the output kernel (None: ``kernel_init``).
    """

    IMPLEMENTATIONS: ClassVar[tuple] = ("xla", "cudnn", "heads_first", None)

    num_heads: int
    num_kv_heads: int | None = None
    head_dim: int | None = None
    rotary: bool = False
    rope_theta: float = 10000.0
    rope_scaling: tuple | None = None
    use_bias: bool = True
    implementation: str | None = None
    dropout_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    kernel_init: Initializer = nn.initializers.normal(stddev=0.02)
    out_kernel_init: Initializer | None = None

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, key_valid: jax.Array | None = None,
                 decode: bool = False, deterministic: bool = True) -> jax.Array:
        """Attends causally over ``x``, or over the cache and ``x`` when decoding.

        Args:
          x: [batch, length, embed].
          positions: [batch, length] int position of each token (rotary angles).
          key_valid: bool [batch, keys], False at keys nobody may attend to (left padding
            of batched prompts); keys = ``length``, or the cache length when decoding.
          decode: write this call's keys and values into the cache at ``cache_index`` and
            attend to every cached slot up to each query's own. The first call (at init)
            creates a cache as long as ``x``; the caller keeps the writes within it
            (``generate`` sizes it to prompt + new tokens): past its end,
            ``dynamic_update_slice`` would clamp and overwrite the last slots.
          deterministic: no dropout on the attention probabilities (rng "dropout").

        Returns:
          [batch, length, embed].
        """
        embed = x.shape[-1]
        head_dim = self.head_dim or embed // self.num_heads
        kv_heads = self.num_kv_heads or self.num_heads
        if self.num_heads % kv_heads:
            raise ValueError(f"num_kv_heads={kv_heads} must divide num_heads={self.num_heads}.")

        def proj(name: str, heads: int) -> jax.Array:
            out = Projection(features=(heads, head_dim),
                             kernel_axes=(axes.EMBED, axes.HEADS, axes.KV),
                             use_bias=self.use_bias, dtype=self.dtype,
                             param_dtype=self.param_dtype, kernel_init=self.kernel_init,
                             name=name)(x)
            return nn.with_logical_constraint(out, (axes.BATCH, axes.LENGTH, axes.HEADS,
                                                    axes.KV))

        q, k, v = proj("query", self.num_heads), proj("key", kv_heads), proj("value", kv_heads)
        if self.rotary:
            angles = rotary_angles(positions, head_dim, self.rope_theta, self.rope_scaling)
            q, k = apply_rotary(q, angles), apply_rotary(k, angles)

        mask = None if key_valid is None else key_valid[:, None, None, :]
        causal = True
        if decode:
            k, v, slots_mask = self._update_cache(k, v)
            if slots_mask is not None:  # not the init call
                mask = slots_mask if mask is None else mask & slots_mask
                causal = False
        if self.dropout_rate > 0 and not deterministic:
            dropout = Dropout(self.dropout_rate, name="probs_dropout")
            out = attention_with_dropout(
                q, k, v, mask, causal, lambda p: dropout(p, deterministic=False))
        elif self.implementation == "heads_first":
            out = attention_with_dropout(q, k, v, mask, causal, lambda p: p)
        else:
            out = jax.nn.dot_product_attention(
                q, k, v, mask=mask, is_causal=causal, implementation=self.implementation)
        out = nn.with_logical_constraint(out, (axes.BATCH, axes.LENGTH, axes.HEADS, axes.KV))
        out = Projection(features=(embed,), kernel_axes=(axes.HEADS, axes.KV, axes.EMBED),
                         use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.param_dtype,
                         kernel_init=self.out_kernel_init or self.kernel_init, name="out")(out)
        return nn.with_logical_constraint(out, (axes.BATCH, axes.LENGTH, axes.EMBED))

    def _update_cache(self, k: jax.Array, v: jax.Array
                      ) -> tuple[jax.Array, jax.Array, jax.Array | None]:
        """Writes ``k``, ``v`` [batch, length, kv_heads, head_dim] at ``cache_index``.

        Returns the whole cached keys and values [batch, cache_length, ...] and the mask
        bool [1, 1, length, cache_length] of the slots each query may see (its own and
        the earlier ones); on the call that creates the cache: ``k``, ``v`` and None.
        """
        creating = not self.has_variable("cache", "cached_key")
        cached_k = self.variable("cache", "cached_key", jnp.zeros, k.shape, k.dtype)
        cached_v = self.variable("cache", "cached_value", jnp.zeros, v.shape, v.dtype)
        index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
        if creating:
            return k, v, None
        start = index.value
        length, cache_length = k.shape[1], cached_k.value.shape[1]
        for cached, new in ((cached_k, k), (cached_v, v)):
            cached.value = jax.lax.dynamic_update_slice(
                cached.value, new.astype(cached.value.dtype), (0, start, 0, 0))
        index.value = start + length
        query_slots = start + jnp.arange(length)
        visible = jnp.arange(cache_length)[None, :] <= query_slots[:, None]
        return cached_k.value, cached_v.value, visible[None, None]
