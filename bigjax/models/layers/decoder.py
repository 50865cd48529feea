"""Decoder block and stack: decoder-only language models (GPT-2, Llama) and the decoder
of an encoder-decoder (``cross_attention``: the Transformer of Vaswani et al. 2017).

A pre-LN block is ``x + attn(norm(x))`` [then ``x + cross(norm(x), encoded)``] then
``x + mlp(norm(x))`` (dropout on each residual branch), and the stack ends with a final
norm; a post-LN block (``pre_norm=False``, the original Transformer) is
``norm(x + attn(x))`` ... with no final norm. Param layout of ``DecoderStack``: unscanned
``layers_0 ... layers_{n-1}``; scanned one ``layers`` subtree whose leaves have a leading
[layers] axis (``encoder.stack_layer_params`` / ``unstack_layer_params`` convert). The KV
cache of decoding is stacked the same way.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigjax.models.layers import axes
from bigjax.models.layers.causal_attention import CausalSelfAttention
from bigjax.models.layers.cross_attention import CrossAttention
from bigjax.models.layers.dropout import Dropout
from bigjax.models.layers.mlp_block import ACTIVATIONS, MlpBlock
from bigjax.models.layers.norm import layer_norm, rms_norm

NORMS = ("layer_norm", "rms_norm")
__all__ = ["ACTIVATIONS", "NORMS", "REMAT_POLICIES", "DecoderBlock", "DecoderStack"]
REMAT_POLICIES: dict[str, Any] = {
    "nothing_saveable": jax.checkpoint_policies.nothing_saveable,  # recompute everything
    "dots_saveable": jax.checkpoint_policies.dots_saveable,  # keep matmul outputs
    "dots_with_no_batch_dims_saveable":
        jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # keep projections only
}


def make_norm(kind: str, eps: float, use_bias: bool, dtype, param_dtype, name: str):
    """A LayerNorm (with a bias when ``use_bias``) or an RMSNorm named ``name``."""
    if kind == "rms_norm":
        return rms_norm(epsilon=eps, dtype=dtype, param_dtype=param_dtype, name=name)
    return layer_norm(epsilon=eps, dtype=dtype, param_dtype=param_dtype, name=name,
                      use_bias=use_bias)


class DecoderBlock(nn.Module):
    """One decoder layer. Params: ``attention_norm``, ``attention``,
    [``cross_attention_norm``, ``cross_attention``], ``mlp_norm``, ``mlp``.

    Attributes:
      num_heads, num_kv_heads, rotary, rope_theta, rope_scaling, use_bias, implementation: see
        ``CausalSelfAttention``.
      mlp_dim: feed-forward hidden width.
      activation: "gelu", "gelu_tanh", "relu" or "swiglu" (a gated MLP).
      norm: "layer_norm" or "rms_norm".
      norm_eps: the norms' epsilon.
      dropout_rate: dropout on each residual branch.
      attention_dropout_rate: dropout on the self-attention probabilities.
      num_layers: depth of the stack (the output projections are initialised with
        std 0.02 / sqrt(2 * num_layers), as GPT-2).
      cross_attention: attend to an encoder's outputs after the self-attention.
      pre_norm: pre-LN (GPT-2, Llama) if True, post-LN (the original Transformer) if
        False.
      dtype, param_dtype: compute and param dtypes.
      scanned: return ``(x, None)`` as ``nn.scan`` expects.
    """

    CONFIG_CHOICES: ClassVar[dict] = {"activation": tuple(ACTIVATIONS), "norm": NORMS}

    num_heads: int
    mlp_dim: int
    num_layers: int
    num_kv_heads: int | None = None
    rotary: bool = False
    rope_theta: float = 10000.0
    rope_scaling: tuple | None = None
    use_bias: bool = True
    implementation: str | None = None
    activation: str = "gelu"
    norm: str = "layer_norm"
    norm_eps: float = 1e-5
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    cross_attention: bool = False
    pre_norm: bool = True
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    scanned: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, key_valid: jax.Array | None,
                 context: jax.Array | None, context_valid: jax.Array | None,
                 decode: bool, deterministic: bool):
        """x: [batch, length, embed] -> same (``(x, None)`` when scanned); arguments are
        positional so that ``nn.scan`` / ``nn.remat`` can lift them. ``positions``,
        ``key_valid`` and ``decode`` as in ``CausalSelfAttention``; ``context`` /
        ``context_valid`` as in ``CrossAttention`` (with ``cross_attention``);
        ``deterministic`` disables dropout."""
        x = nn.with_logical_constraint(x, (axes.BATCH, axes.LENGTH, axes.EMBED))
        out_init = nn.initializers.normal(stddev=0.02 / math.sqrt(2 * self.num_layers))

        def sublayer(x: jax.Array, f, name: str) -> jax.Array:
            norm = make_norm(self.norm, self.norm_eps, self.use_bias, self.dtype,
                             self.param_dtype, name + "_norm")
            if self.pre_norm:
                return x + Dropout(self.dropout_rate)(f(norm(x)), deterministic=deterministic)
            return norm(x + Dropout(self.dropout_rate)(f(x), deterministic=deterministic))

        attention = CausalSelfAttention(
            num_heads=self.num_heads, num_kv_heads=self.num_kv_heads, rotary=self.rotary,
            rope_theta=self.rope_theta, rope_scaling=self.rope_scaling, use_bias=self.use_bias,
            implementation=self.implementation, dropout_rate=self.attention_dropout_rate,
            dtype=self.dtype, param_dtype=self.param_dtype, out_kernel_init=out_init,
            name="attention")
        x = sublayer(x, lambda h: attention(h, positions, key_valid, decode, deterministic),
                     "attention")
        if self.cross_attention:
            cross = CrossAttention(
                num_heads=self.num_heads, use_bias=self.use_bias,
                implementation=self.implementation, dtype=self.dtype,
                param_dtype=self.param_dtype, out_kernel_init=out_init,
                name="cross_attention")
            x = sublayer(x, lambda h: cross(h, context, context_valid, decode),
                         "cross_attention")
        mlp = MlpBlock(self.mlp_dim, activation=ACTIVATIONS[self.activation],
                       gated=self.activation == "swiglu", use_bias=self.use_bias,
                       dtype=self.dtype, param_dtype=self.param_dtype,
                       out_kernel_init=out_init, name="mlp")
        x = sublayer(x, lambda h: mlp(h, train=not deterministic), "mlp")
        x = nn.with_logical_constraint(x, (axes.BATCH, axes.LENGTH, axes.EMBED))
        return (x, None) if self.scanned else x


class DecoderStack(nn.Module):
    """``num_layers`` decoder blocks and, when pre-LN, a final norm (param ``final_norm``).

    Attributes:
      block: the fields of every ``DecoderBlock`` (a dict of all of them but ``scanned``).
      scan_layers: one ``nn.scan`` over the layers (params and cache stacked).
      remat: recompute each layer's activations in the backward pass.
      remat_policy: what remat may keep (a name in ``REMAT_POLICIES``).
    """

    block: dict
    scan_layers: bool = False
    remat: bool = False
    remat_policy: str = "nothing_saveable"

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, key_valid: jax.Array | None = None,
                 *, context: jax.Array | None = None, context_valid: jax.Array | None = None,
                 decode: bool = False, train: bool) -> jax.Array:
        """x: [batch, length, embed] -> [batch, length, embed] (after the final norm when
        pre-LN); ``context`` / ``context_valid``: the encoder's outputs [batch,
        source_length, embed] and their mask (blocks with ``cross_attention``)."""
        block_cls = DecoderBlock
        if self.remat:  # arguments 6, 7 (counting self as 0) are Python bools
            block_cls = nn.remat(block_cls, prevent_cse=not self.scan_layers,
                                 static_argnums=(6, 7),
                                 policy=REMAT_POLICIES[self.remat_policy])
        args = (positions, key_valid, context, context_valid, decode, not train)
        if self.scan_layers:
            scanned = nn.scan(
                block_cls,
                variable_axes={"params": 0, "cache": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(nn.broadcast,) * len(args),
                length=self.block["num_layers"],
                metadata_params={nn.PARTITION_NAME: axes.LAYERS},
            )
            x, _ = scanned(scanned=True, name="layers", **self.block)(x, *args)
        else:
            for i in range(self.block["num_layers"]):
                x = block_cls(name=f"layers_{i}", **self.block)(x, *args)
        b = self.block
        if not b.get("pre_norm", True):
            return x
        return make_norm(b["norm"], b["norm_eps"], b["use_bias"], b["dtype"], b["param_dtype"],
                         "final_norm")(x)
