"""bigjax's Dropout: bit for bit flax's nn.Dropout, but fused (no threefry while loop)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigjax.models.layers import dropout
from bigjax.models.layers.dropout import Dropout


def apply(module: nn.Module, x, key, deterministic: bool = False):
    return module.apply({}, x, deterministic=deterministic, rngs={"dropout": key})


@pytest.mark.parametrize("shape", [(7,), (3, 5, 7), (2, 12, 64, 64), (4, 33, 384)])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_outputs_equal_flax_dropout_bit_for_bit(shape, rate):
    x = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
    key = jax.random.key(11)
    ours = jax.jit(lambda x, k: apply(Dropout(rate), x, k))(x, key)
    flax_out = jax.jit(lambda x, k: apply(nn.Dropout(rate), x, k))(x, key)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(flax_out))
    kept = float(jnp.mean(ours != 0))
    assert abs(kept - (1 - rate)) < 0.05 + 4 / np.sqrt(x.size)


def test_bits_equal_jax_random_bits_for_raw_and_typed_keys():
    shape = (5, 1000)
    for key in (jax.random.key(7), jax.random.PRNGKey(7)):
        np.testing.assert_array_equal(np.asarray(dropout.random_bits(key, shape)),
                                      np.asarray(jax.random.bits(key, shape, jnp.uint32)))


def test_other_generators_fall_back_to_jax_and_still_match():
    key = jax.random.key(5, impl="rbg")
    x = jnp.ones((6, 50))
    np.testing.assert_array_equal(np.asarray(apply(Dropout(0.3), x, key)),
                                  np.asarray(apply(nn.Dropout(0.3), x, key)))


def test_deterministic_and_edge_rates():
    x = jnp.arange(1.0, 13.0).reshape(3, 4)
    key = jax.random.key(0)
    np.testing.assert_array_equal(apply(Dropout(0.5), x, key, deterministic=True), x)
    np.testing.assert_array_equal(apply(Dropout(0.0), x, key), x)
    np.testing.assert_array_equal(apply(Dropout(1.0), x, key), jnp.zeros_like(x))


def test_the_mask_compiles_without_a_while_loop():
    """jax lowers threefry on CPU as a while loop over whole arrays; ours must fuse."""
    x = jnp.ones((2, 4, 32, 32))
    key = jax.random.key(0)

    def loops_over_the_mask(module) -> list[str]:
        text = jax.jit(lambda x, k: apply(module, x, k)).lower(x, key).compile().as_text()
        return [line for line in text.splitlines()
                if " while(" in line and "u32[2,4,32,32]" in line]

    assert loops_over_the_mask(Dropout(0.1)) == []
    assert loops_over_the_mask(nn.Dropout(0.1))  # the slow path this module avoids


@pytest.mark.parametrize("model_config, inputs", [
    (dict(name="bert_classifier", variant="tiny", num_classes=2, max_len=16),
     np.ones((2, 16), np.int32)),
    (dict(name="mlp", hidden=[32], num_classes=10, dropout_rate=0.2),
     np.ones((2, 8, 8, 1), np.float32)),
    (dict(name="cnn", conv_features=[4], dense=[16], num_classes=10, dropout_rate=0.2),
     np.ones((2, 8, 8, 1), np.float32)),
])
def test_models_draw_their_masks_with_it(model_config, inputs):
    """No mask of the models comes from jax.random.bits (nn.Dropout's slow path)."""
    import ml_collections

    from bigjax import models

    model = models.build(ml_collections.ConfigDict(model_config))
    variables = model.init({"params": jax.random.key(0)}, inputs, train=False)

    def train_apply(v, k):
        return model.apply(v, inputs, train=True, rngs={"dropout": k}, mutable=True)

    jaxpr = str(jax.make_jaxpr(train_apply)(variables, jax.random.key(1)))
    assert "random_bits" not in jaxpr
    assert "shift_right_logical" in jaxpr  # the fused threefry is there instead
