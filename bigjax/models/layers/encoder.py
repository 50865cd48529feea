"""Transformer block and a stack of blocks (optionally scanned and/or rematerialized).

A block is self-attention [+ cross-attention] + feed-forward, each sublayer
wrapped in residual + dropout + LayerNorm, either post-LN (BERT:
``x = LN(x + f(x))``) or pre-LN (GPT-2/ViT: ``x = x + f(LN(x))``, plus a final
LN at the end of the stack).

Param layout of ``TransformerStack``: unscanned ``layers_0 ... layers_{n-1}``;
scanned one ``layers`` subtree whose leaves have a leading [layers] axis.
``stack_layer_params`` / ``unstack_layer_params`` convert between the two.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bigjax.models.layers import axes
from bigjax.models.layers.attention import MultiHeadAttention
from bigjax.models.layers.dropout import Dropout
from bigjax.models.layers.mlp_block import ACTIVATIONS, MlpBlock
from bigjax.models.layers.norm import layer_norm


class TransformerBlock(nn.Module):
    """One transformer layer.

    Params: ``attention``, ``attention_norm``, [``cross_attention``,
    ``cross_attention_norm``], ``mlp``, ``mlp_norm``.

    Attributes:
      num_heads: attention heads.
      mlp_dim: feed-forward hidden width.
      dropout_rate: hidden dropout after each sublayer.
      attention_dropout_rate: dropout on attention probabilities.
      pre_norm: pre-LN if True, post-LN (BERT) if False.
      cross_attention: add a cross-attention sublayer (encoder-decoder decoder).
      layer_norm_eps: LayerNorm epsilon.
      activation: the MLP's nonlinearity (a name in ``mlp_block.ACTIVATIONS``, not gated).
      dtype: compute dtype.
      param_dtype: param dtype.
      scanned: return ``(x, None)`` as ``nn.scan`` expects.
    """

    num_heads: int
    mlp_dim: int
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    pre_norm: bool = False
    cross_attention: bool = False
    layer_norm_eps: float = 1e-12
    activation: str = "gelu"
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    scanned: bool = False

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array | None = None,
        context: jax.Array | None = None,
        context_mask: jax.Array | None = None,
        deterministic: bool = True,
    ) -> jax.Array | tuple[jax.Array, None]:
        """Applies the layer.

        Arguments are positional so that ``nn.scan`` / ``nn.remat`` can lift them.

        Args:
          x: [batch, length, embed].
          mask: self-attention mask, bool, broadcastable to [batch, heads, length, length].
          context: [batch, ctx_length, ctx_embed] for cross-attention.
          context_mask: bool, broadcastable to [batch, heads, length, ctx_length].
          deterministic: disables dropout (``not train``).

        Returns:
          [batch, length, embed] (or ``(that, None)`` when ``scanned``).
        """
        train = not deterministic
        x = nn.with_logical_constraint(x, (axes.BATCH, axes.LENGTH, axes.EMBED))

        def norm(name: str) -> nn.LayerNorm:
            return layer_norm(
                epsilon=self.layer_norm_eps,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=name,
            )

        def sublayer(x: jax.Array, f, name: str) -> jax.Array:
            if self.pre_norm:
                y = f(norm(name + "_norm")(x))
                return x + Dropout(self.dropout_rate)(y, deterministic=deterministic)
            y = Dropout(self.dropout_rate)(f(x), deterministic=deterministic)
            return norm(name + "_norm")(x + y)

        def attention(name: str) -> MultiHeadAttention:
            return MultiHeadAttention(
                num_heads=self.num_heads,
                dropout_rate=self.attention_dropout_rate,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=name,
            )

        x = sublayer(x, lambda h: attention("attention")(h, mask=mask, train=train), "attention")
        if self.cross_attention:
            if context is None:
                raise ValueError("cross_attention=True needs a context.")
            x = sublayer(
                x,
                lambda h: attention("cross_attention")(h, context, mask=context_mask, train=train),
                "cross_attention",
            )
        mlp = MlpBlock(self.mlp_dim, activation=ACTIVATIONS[self.activation], dtype=self.dtype,
                       param_dtype=self.param_dtype, name="mlp")
        x = sublayer(x, lambda h: mlp(h, train=train), "mlp")
        x = nn.with_logical_constraint(x, (axes.BATCH, axes.LENGTH, axes.EMBED))
        return (x, None) if self.scanned else x


class TransformerStack(nn.Module):
    """``num_layers`` transformer blocks (+ final LayerNorm when pre-LN).

    Attributes:
      num_layers: number of blocks.
      num_heads, mlp_dim, dropout_rate, attention_dropout_rate, pre_norm,
        cross_attention, layer_norm_eps, activation, dtype, param_dtype: see
        ``TransformerBlock``.
      scan_layers: ``nn.scan`` over layers (params stacked on a leading ``layers`` axis).
      remat: ``nn.remat`` each layer (recompute activations in the backward pass).
      remat_policy: optional ``jax.checkpoint_policies`` policy for ``remat``.
    """

    num_layers: int
    num_heads: int
    mlp_dim: int
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    pre_norm: bool = False
    cross_attention: bool = False
    layer_norm_eps: float = 1e-12
    activation: str = "gelu"
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    scan_layers: bool = False
    remat: bool = False
    remat_policy: Any = None

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array | None = None,
        *,
        context: jax.Array | None = None,
        context_mask: jax.Array | None = None,
        train: bool,
    ) -> jax.Array:
        """x: [batch, length, embed] -> [batch, length, embed]; masks as in ``TransformerBlock``."""
        x = x.astype(self.dtype)
        block_cls = TransformerBlock
        if self.remat:
            # Argument 5 (counting self as 0) is `deterministic`, a Python bool.
            block_cls = nn.remat(
                block_cls,
                prevent_cse=not self.scan_layers,
                static_argnums=(5,),
                policy=self.remat_policy,
            )
        block_kwargs = dict(
            num_heads=self.num_heads,
            mlp_dim=self.mlp_dim,
            dropout_rate=self.dropout_rate,
            attention_dropout_rate=self.attention_dropout_rate,
            pre_norm=self.pre_norm,
            cross_attention=self.cross_attention,
            layer_norm_eps=self.layer_norm_eps,
            activation=self.activation,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        args = (mask, context, context_mask, not train)
        if self.scan_layers:
            scanned = nn.scan(
                block_cls,
                variable_axes={"params": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(nn.broadcast,) * len(args),
                length=self.num_layers,
                metadata_params={nn.PARTITION_NAME: axes.LAYERS},
            )
            x, _ = scanned(scanned=True, name="layers", **block_kwargs)(x, *args)
        else:
            for i in range(self.num_layers):
                x = block_cls(name=f"layers_{i}", **block_kwargs)(x, *args)
        if self.pre_norm:
            x = layer_norm(
                epsilon=self.layer_norm_eps,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name="final_norm",
            )(x)
        return x


def stack_layer_params(stack_params: dict, num_layers: int) -> dict:
    """Unscanned -> scanned layout of a ``TransformerStack``'s params.

    ``{"layers_0": t0, ..., "layers_{n-1}": tn, **rest}`` ->
    ``{"layers": stack(t0..tn, axis=0), **rest}``. Works on numpy or jax leaves.
    """
    layers = [stack_params[f"layers_{i}"] for i in range(num_layers)]
    rest = {k: v for k, v in stack_params.items() if not k.startswith("layers_")}
    xp = jnp if isinstance(jax.tree_util.tree_leaves(layers[0])[0], jax.Array) else np
    stacked = jax.tree_util.tree_map(lambda *leaves: xp.stack(leaves), *layers)
    return {"layers": stacked, **rest}


def unstack_layer_params(stack_params: dict, num_layers: int) -> dict:
    """Scanned -> unscanned layout; the inverse of ``stack_layer_params``."""
    rest = {k: v for k, v in stack_params.items() if k != "layers"}
    for i in range(num_layers):
        rest[f"layers_{i}"] = jax.tree_util.tree_map(lambda a, i=i: a[i], stack_params["layers"])
    return rest
