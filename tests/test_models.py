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


# --- mixed precision (dtype / param_dtype) -------------------------------------------------

MIXED = {
    "mlp": dict(name="mlp", num_classes=10, hidden=(16, 8)),
    "cnn": dict(name="cnn", num_classes=10, conv_features=(4,), dense=(8,)),
    "cnn_batchnorm": dict(name="cnn", num_classes=10, conv_features=(4,), dense=(8,),
                          norm="batch"),
}


def _build(**fields):
    return models.build(ml_collections.ConfigDict(fields))


@pytest.mark.parametrize("kind", sorted(MIXED))
def test_bf16_compute_with_f32_params(kind):
    model = _build(**MIXED[kind], dtype="bfloat16", param_dtype="float32")
    x = jnp.ones((3, 12, 12, 1))
    variables = model.init(jax.random.PRNGKey(0), x)
    assert {p.dtype for p in jax.tree.leaves(variables["params"])} == {jnp.dtype(jnp.float32)}
    (logits, aux), _ = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                   rngs={"dropout": jax.random.PRNGKey(1)})
    assert aux["pre_logits"].dtype == jnp.bfloat16  # f32 if `dtype` were ignored
    assert logits.dtype == jnp.float32 and np.isfinite(logits).all()


@pytest.mark.parametrize("kind", sorted(MIXED))
def test_bf16_params(kind):
    model = _build(**MIXED[kind], dtype="bfloat16", param_dtype="bfloat16")
    x = jnp.ones((3, 12, 12, 1))
    variables = model.init(jax.random.PRNGKey(0), x)
    # f32 if `param_dtype` were ignored (flax's default).
    assert {p.dtype for p in jax.tree.leaves(variables["params"])} == {jnp.dtype(jnp.bfloat16)}
    logits, aux = model.apply(variables, x, train=False)
    assert aux["pre_logits"].dtype == jnp.bfloat16 and logits.dtype == jnp.float32


# --- BatchNorm in the CNN ------------------------------------------------------------------

BN_CNN = dict(num_classes=3, conv_features=(4, 6), kernel_size=3, pool_every=2, dense=(8,))


def _images(seed: int, batch: int = 6) -> jnp.ndarray:
    return 2.0 + 3.0 * jax.random.normal(jax.random.PRNGKey(seed), (batch, 10, 10, 2))


def test_cnn_without_norm_has_no_batch_stats_and_the_plain_param_tree():
    from bigjax.models.cnn import CNN

    x = _images(0)
    variables = CNN(**BN_CNN).init(jax.random.PRNGKey(0), x)
    assert set(variables) == {"params"}
    assert set(variables["params"]) == {"conv_0", "conv_1", "dense_0", "head"}
    # BatchNorm adds its own modules only: the shared params keep their rng and values.
    with_bn = CNN(**BN_CNN, norm="batch").init(jax.random.PRNGKey(0), x)["params"]
    assert set(with_bn) - set(variables["params"]) == {"conv_norm_0", "conv_norm_1",
                                                       "dense_norm_0"}
    jax.tree.map(np.testing.assert_array_equal, variables["params"],
                 {k: with_bn[k] for k in variables["params"]})


def test_cnn_rejects_unknown_norm():
    from bigjax.models.cnn import CNN

    with pytest.raises(ValueError, match="norm='layer'"):
        CNN(**BN_CNN, norm="layer").init(jax.random.PRNGKey(0), _images(0))


def test_cnn_batchnorm_train_updates_running_stats_towards_the_batch():
    from bigjax.models.cnn import CNN

    model = CNN(**BN_CNN, norm="batch")
    x = _images(0)
    variables = model.init(jax.random.PRNGKey(0), x)
    assert set(variables) == {"params", "batch_stats"}
    stats = variables["batch_stats"]
    assert set(stats) == {"conv_norm_0", "conv_norm_1", "dense_norm_0"}
    np.testing.assert_array_equal(stats["conv_norm_0"]["mean"], np.zeros(4))
    np.testing.assert_array_equal(stats["conv_norm_0"]["var"], np.ones(4))

    (logits, aux), updated = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                         rngs={"dropout": jax.random.PRNGKey(1)})
    assert logits.shape == (6, 3) and aux["pre_logits"].shape == (6, 8)
    assert set(updated) == {"batch_stats"}
    # The first norm sees conv_0's output: stats move 10% (momentum 0.9) towards the batch's.
    conv = nn.Conv(4, (3, 3), padding="VALID").apply(
        {"params": variables["params"]["conv_0"]}, x)
    new = updated["batch_stats"]["conv_norm_0"]
    np.testing.assert_allclose(new["mean"], 0.1 * conv.mean(axis=(0, 1, 2)), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(new["var"], 0.9 + 0.1 * conv.var(axis=(0, 1, 2)), rtol=1e-5)
    for name in stats:  # every layer's stats moved
        assert not np.allclose(updated["batch_stats"][name]["mean"], stats[name]["mean"])


def test_cnn_batchnorm_eval_uses_running_stats_per_example():
    from bigjax.models.cnn import CNN

    model = CNN(**BN_CNN, norm="batch")
    x = _images(0)
    variables = model.init(jax.random.PRNGKey(0), x)
    _, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], **updated}

    logits, _ = model.apply(variables, x, train=False)  # no `mutable` needed
    alone, _ = model.apply(variables, x[:2], train=False)
    np.testing.assert_allclose(alone, logits[:2], atol=1e-5)  # other examples do not matter
    (_, _), same = model.apply(variables, x, train=False, mutable=["batch_stats"])
    jax.tree.map(np.testing.assert_array_equal, same["batch_stats"], variables["batch_stats"])
    # Train mode normalises with the batch's statistics: the other examples matter there.
    (train_all, _), _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    (train_two, _), _ = model.apply(variables, x[:2], train=True, mutable=["batch_stats"])
    assert not np.allclose(train_two, train_all[:2], atol=1e-3)


def test_cnn_batchnorm_builds_from_config_and_trains_under_jit():
    model = _build(name="cnn", num_classes=3, conv_features=(4,), dense=(8,), norm="batch")
    x, labels = _images(1, 8), jnp.arange(8) % 3
    variables = model.init(jax.random.PRNGKey(0), x)

    @jax.jit
    def step(params, batch_stats):
        def loss_fn(p):
            (logits, _), new = model.apply({"params": p, "batch_stats": batch_stats}, x,
                                           train=True, mutable=["batch_stats"])
            one_hot = jax.nn.one_hot(labels, 3)
            return -(one_hot * jax.nn.log_softmax(logits)).sum(-1).mean(), new["batch_stats"]

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
        return params, new_stats, loss

    params, stats = variables["params"], variables["batch_stats"]
    losses = []
    for _ in range(5):
        params, stats, loss = step(params, stats)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert jax.tree.structure(stats) == jax.tree.structure(variables["batch_stats"])
