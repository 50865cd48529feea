import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bigjax import models


def _init_apply(model, x):
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    return model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})


def test_mlp_shapes():
    model = models.build(ml_collections.ConfigDict(
        dict(name="mlp", num_classes=10, hidden=(128, 64), dropout_rate=0.1)))
    logits, aux = _init_apply(model, jnp.zeros((5, 28, 28, 1)))
    assert logits.shape == (5, 10)
    assert aux["pre_logits"].shape == (5, 64)


def test_mnist_mlp_has_the_documents_parameter_count():
    model = models.build(ml_collections.ConfigDict(dict(name="mlp", num_classes=10)))
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))["params"]
    count = sum(p.size for p in jax.tree.leaves(params))
    assert count == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10


def test_cnn_shapes_and_keras_parameter_count():
    model = models.build(ml_collections.ConfigDict(
        dict(name="cnn", num_classes=10, conv_features=(32,), padding="VALID", dense=(128,))))
    x = jnp.zeros((3, 28, 28, 1))
    logits, aux = _init_apply(model, x)
    assert logits.shape == (3, 10) and aux["pre_logits"].shape == (3, 128)
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    # Keras summary of the document's model: 320 + 692,352 + 1,290 params.
    assert sum(p.size for p in jax.tree.leaves(params)) == 320 + 13 * 13 * 32 * 128 + 128 + 1290


def test_cnn_rejects_flat_inputs():
    model = models.build(ml_collections.ConfigDict(dict(name="cnn", num_classes=10)))
    with pytest.raises(ValueError, match="expects images"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((2, 784)))


def test_unknown_model_and_bad_field_are_clear():
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        models.build(ml_collections.ConfigDict(dict(name="nope")))
    with pytest.raises(ValueError, match="does not fit model 'mlp'"):
        models.build(ml_collections.ConfigDict(dict(name="mlp", num_classes=3, depth=4)))


@pytest.mark.parametrize("size,shape", [(2, (2, 26, 26, 3)), (2, (1, 7, 9, 2)), (3, (2, 9, 9, 1))])
def test_block_max_pool_equals_flax_max_pool(size, shape):
    from bigjax.models.cnn import max_pool_blocks

    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    expected = nn.max_pool(x, (size, size), strides=(size, size))
    np.testing.assert_array_equal(max_pool_blocks(x, size), expected)
    grad = jax.grad(lambda v: max_pool_blocks(v, size).sum())(x)
    expected_grad = jax.grad(lambda v: nn.max_pool(v, (size, size), strides=(size, size)).sum())(x)
    np.testing.assert_array_equal(grad, expected_grad)  # no ties in random normals
