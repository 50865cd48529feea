"""add_wide_bias: x + bias, whose bias gradient is summed by a matmul."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bigjax.models.layers.wide_bias import add_wide_bias


def test_value_and_gradients_equal_the_plain_sum():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 5, 70)), jnp.float32)
    bias = jnp.asarray(rng.normal(size=(70,)), jnp.float32)
    weights = jnp.asarray(rng.normal(size=(3, 5, 70)), jnp.float32)

    def loss(add):
        return lambda x, b: jnp.sum(jnp.tanh(add(x, b)) * weights)

    np.testing.assert_array_equal(add_wide_bias(x, bias), x + bias)
    ours = jax.grad(loss(add_wide_bias), argnums=(0, 1))(x, bias)
    plain = jax.grad(loss(jnp.add), argnums=(0, 1))(x, bias)
    for a, b in zip(ours, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_bias_gradient_is_a_matmul():
    x, bias = jnp.ones((4, 8, 32)), jnp.zeros((32,))

    def gradient_jaxpr(add) -> str:
        return str(jax.make_jaxpr(jax.grad(lambda b: jnp.sum(add(x, b) ** 2)))(bias))

    assert "reduce_sum[axes=(0, 1)" in gradient_jaxpr(jnp.add)  # the plain bias gradient
    ours = gradient_jaxpr(add_wide_bias)
    assert "reduce_sum[axes=(0, 1)" not in ours and "dot_general" in ours
