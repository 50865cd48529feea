"""Position-wise feed-forward block: Dense -> GELU (exact erf) -> Dense."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigjax.models.layers import axes
from bigjax.models.layers.dropout import Dropout


def gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU, as BERT uses."""
    return nn.gelu(x, approximate=False)


class MlpBlock(nn.Module):
    """Feed-forward block.

    Params (logical axes): ``wi`` kernel [embed, mlp], bias [mlp];
    ``wo`` kernel [mlp, embed], bias [embed].

    Attributes:
      mlp_dim: hidden width.
      activation: elementwise nonlinearity (default exact GELU).
      inner_dropout_rate: dropout after the activation (BERT: 0).
      dtype: compute dtype.
      param_dtype: dtype of the params.
      kernel_init: initializer of both kernels.
    """

    mlp_dim: int
    activation: Callable[[jax.Array], jax.Array] = gelu
    inner_dropout_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    kernel_init: Callable[..., jax.Array] = nn.initializers.normal(stddev=0.02)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """x: [batch, length, embed] -> [batch, length, embed]."""
        embed = x.shape[-1]
        h = nn.Dense(
            self.mlp_dim,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(self.kernel_init, (axes.EMBED, axes.MLP)),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (axes.MLP,)),
            name="wi",
        )(x)
        h = self.activation(h)
        h = nn.with_logical_constraint(h, (axes.BATCH, axes.LENGTH, axes.MLP))
        h = Dropout(self.inner_dropout_rate)(h, deterministic=not train)
        out = nn.Dense(
            embed,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(self.kernel_init, (axes.MLP, axes.EMBED)),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (axes.EMBED,)),
            name="wo",
        )(h)
        return nn.with_logical_constraint(out, (axes.BATCH, axes.LENGTH, axes.EMBED))
