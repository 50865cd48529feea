"""Position-wise feed-forward block: Dense -> GELU (exact erf) -> Dense, or gated
(SwiGLU: ``wo(silu(wi_0 x) * wi_1 x)``, Shazeer 2020, as in Llama)."""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigjax.models.layers import axes
from bigjax.models.layers.dropout import Dropout
from bigjax.models.layers.flat import dense_rows


def gelu(x: jax.Array) -> jax.Array:
    """Exact GELU, as BERT and nanoGPT use: x * (1 + erf(x / sqrt 2)) / 2.

    Written with ``erf``: ``nn.gelu(approximate=False)`` computes ``erfc(-x / sqrt 2)``
    instead, whose XLA:CPU expansion makes the activation and its gradient 1.4x slower
    (experiments/shakespeare). The two agree within 1e-6 (float32 rounding; below
    about x = -5.25, where GELU is smaller than 4e-7 in size, ``1 + erf`` rounds to 0).
    """
    return 0.5 * x * (1.0 + jax.lax.erf(x * jnp.asarray(1 / math.sqrt(2), x.dtype)))


# Nonlinearities by config name.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": gelu,  # exact (erf): BERT, nanoGPT
    "gelu_tanh": lambda x: nn.gelu(x, approximate=True),  # GPT-2's "gelu_new"
    "swiglu": nn.silu,  # the gate's activation of a gated MLP (Llama)
    "relu": nn.relu,  # the original Transformer
}


class MlpBlock(nn.Module):
    """Feed-forward block.

    Params (logical axes): ``wi`` kernel [embed, mlp], bias [mlp] (gated: ``wi_0`` and
    ``wi_1``, the gate and the value); ``wo`` kernel [mlp, embed], bias [embed]. No biases
    with ``use_bias=False``.

    Attributes:
      mlp_dim: hidden width.
      activation: elementwise nonlinearity (default exact GELU; of the gate when gated).
      inner_dropout_rate: dropout after the activation (BERT: 0).
      dtype: compute dtype.
      param_dtype: dtype of the params.
      kernel_init: initializer of the kernels.
      gated: ``activation(wi_0 x) * wi_1 x`` (GLU variants; SwiGLU with ``nn.silu``).
      use_bias: whether the dense layers have biases.
      out_kernel_init: initializer of ``wo`` (default ``kernel_init``; GPT-2 scales it
        down with depth).
    """

    mlp_dim: int
    activation: Callable[[jax.Array], jax.Array] = gelu
    inner_dropout_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    kernel_init: Callable[..., jax.Array] = nn.initializers.normal(stddev=0.02)
    gated: bool = False
    use_bias: bool = True
    out_kernel_init: Callable[..., jax.Array] | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """x: [batch, length, embed] -> [batch, length, embed]."""
        embed = x.shape[-1]

        def dense(features: int, kernel_axes: tuple[str, str], name: str,
                  init: Callable[..., jax.Array]) -> nn.Dense:
            return nn.Dense(
                features,
                use_bias=self.use_bias,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                kernel_init=nn.with_logical_partitioning(init, kernel_axes),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(),
                                                       kernel_axes[1:]),
                name=name,
            )

        # As 2-D matmuls over [batch * length, features] (see `layers/flat.py`).
        inner = (axes.EMBED, axes.MLP)
        if self.gated:
            h = self.activation(dense_rows(dense(self.mlp_dim, inner, "wi_0",
                                                 self.kernel_init), x))
            h = h * dense_rows(dense(self.mlp_dim, inner, "wi_1", self.kernel_init), x)
        else:
            h = self.activation(dense_rows(dense(self.mlp_dim, inner, "wi", self.kernel_init),
                                           x))
        h = nn.with_logical_constraint(h, (axes.BATCH, axes.LENGTH, axes.MLP))
        h = Dropout(self.inner_dropout_rate)(h, deterministic=not train)
        out = dense_rows(dense(embed, (axes.MLP, axes.EMBED), "wo",
                               self.out_kernel_init or self.kernel_init), h)
        return nn.with_logical_constraint(out, (axes.BATCH, axes.LENGTH, axes.EMBED))
