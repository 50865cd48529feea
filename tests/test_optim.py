import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from bigjax import models, optim


def _optim(**kw):
    base = dict(name="adam", learning_rate=1.0, schedule="constant", warmup_steps=0)
    return ml_collections.ConfigDict({**base, **kw})


def test_warmup_cosine_and_linear_schedules():
    cos = optim.make_schedule(_optim(schedule="warmup_cosine", warmup_steps=10), 110)
    assert float(cos(0)) == 0.0 and float(cos(10)) == pytest.approx(1.0)
    assert float(cos(60)) == pytest.approx(0.5, abs=1e-6) and float(cos(110)) == pytest.approx(0)
    lin = optim.make_schedule(_optim(schedule="warmup_linear", warmup_steps=10), 110)
    assert float(lin(5)) == pytest.approx(0.5) and float(lin(60)) == pytest.approx(0.5)
    assert float(optim.make_schedule(_optim(), 5)(3)) == 1.0


@pytest.mark.parametrize("schedule", ["constant", "warmup_cosine", "warmup_linear"])
def test_warmup_starts_at_its_start_factor(schedule):
    """airbench's warmup runs from 0.2x the peak: step 0 at 0.2, halfway at 0.6."""
    lr = optim.make_schedule(_optim(schedule=schedule, warmup_steps=10,
                                    warmup_start_factor=0.2), 110)
    assert float(lr(0)) == pytest.approx(0.2) and float(lr(5)) == pytest.approx(0.6)
    assert float(lr(10)) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_each_optimizer_descends_a_quadratic(name):
    tx, _ = optim.make_optimizer(_optim(name=name, learning_rate=0.1, momentum=0.9,
                                        weight_decay=0.01, grad_clip_norm=1.0), 100)
    params = {"w": jnp.ones((3, 3)), "b": jnp.ones(3)}
    state = tx.init(params)
    loss = lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(p))  # noqa: E731
    start = loss(params)
    for _ in range(20):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    assert loss(params) < 0.5 * start


def test_weight_decay_skips_biases():
    tx, _ = optim.make_optimizer(_optim(name="sgd", learning_rate=1.0, weight_decay=0.5), 10)
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(updates["kernel"], -0.5)
    np.testing.assert_allclose(updates["bias"], 0.0)


def test_l1_l2_penalties_and_their_gradients():
    params = {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([5.0])}
    assert float(optim.regularization_penalty(params, l1=0.1)) == pytest.approx(0.3)
    assert float(optim.regularization_penalty(params, l2=0.1)) == pytest.approx(0.25)
    grad = jax.grad(lambda p: optim.regularization_penalty(p, l1=0.1, l2=0.1))(params)
    np.testing.assert_allclose(grad["kernel"], [[0.2, -0.3]], rtol=1e-6)
    np.testing.assert_allclose(grad["bias"], [0.0])


def test_unknown_names_are_clear():
    with pytest.raises(ValueError, match="choose one of"):
        optim.make_optimizer(_optim(name="lion"), 10)
    with pytest.raises(ValueError, match="choose one of"):
        optim.make_schedule(_optim(schedule="step"), 10)


def _scanned_bert_ones():
    """The scanned tiny BERT classifier's params, all ones (shapes from eval_shape)."""
    model = models.build(ml_collections.ConfigDict(dict(
        name="bert_classifier", variant="tiny", num_classes=2, scan_layers=True)))
    ids = jnp.zeros((1, 8), jnp.int32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), ids, train=False))
    shapes = nn.meta.unbox(shapes)
    return jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes["params"])


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_weight_decay_skips_scanned_layer_norms_and_qkv_biases(name):
    """With zero gradients only weight decay moves params: -lr * wd * p on kernels and
    embeddings, nothing on the scanned LayerNorm params ([layers, emb]) or q/k/v biases
    ([layers, heads, kv]), which `ndim > 1` used to decay."""
    tx, _ = optim.make_optimizer(_optim(name=name, learning_rate=0.1, weight_decay=0.5), 10)
    params = _scanned_bert_ones()
    updates, _ = jax.jit(tx.update)(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    layers = updates["bert"]["encoder"]["layers"]
    assert layers["attention_norm"]["scale"].shape == (2, 128)
    np.testing.assert_array_equal(layers["attention_norm"]["scale"], 0.0)
    np.testing.assert_array_equal(layers["mlp_norm"]["bias"], 0.0)
    np.testing.assert_array_equal(layers["attention"]["query"]["bias"], 0.0)
    np.testing.assert_allclose(layers["attention"]["query"]["kernel"], -0.05, rtol=1e-6)
    np.testing.assert_allclose(
        updates["bert"]["embeddings"]["word_embeddings"]["embedding"], -0.05, rtol=1e-6)


def test_decay_exclude_reaches_the_optimizer():
    config = _optim(name="adamw", learning_rate=0.1, weight_decay=0.5,
                    decay_exclude="default,embeddings/")
    tx, _ = optim.make_optimizer(config, 10)
    params = _scanned_bert_ones()
    updates, _ = jax.jit(tx.update)(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    np.testing.assert_array_equal(
        updates["bert"]["embeddings"]["word_embeddings"]["embedding"], 0.0)
    np.testing.assert_allclose(updates["pooler"]["kernel"], -0.05, rtol=1e-6)


def test_l1_l2_penalties_skip_excluded_params():
    """Biases and norm params are skipped whatever their rank (the scanned / per-head ones
    have 2+ dims); `exclude` is `config.optim.decay_exclude`."""
    params = {"layers": {"query": {"kernel": jnp.full((2, 3, 4), 2.0),
                                   "bias": jnp.ones((2, 4))},
                         "attention_norm": {"scale": jnp.ones((2, 3)), "bias": jnp.ones((2, 3))}},
              "embeddings": {"embedding": jnp.ones((5, 3))}}
    assert float(optim.regularization_penalty(params, l1=0.1)) == pytest.approx(0.1 * (48 + 15))
    assert float(optim.regularization_penalty(params, l2=0.1)) == pytest.approx(
        0.05 * (96 + 15))
    no_emb = optim.regularization_penalty(params, l1=0.1, exclude="default,embeddings/")
    assert float(no_emb) == pytest.approx(0.1 * 48)
    grad = jax.grad(lambda p: optim.regularization_penalty(p, l1=0.1, l2=0.1))(params)
    np.testing.assert_array_equal(grad["layers"]["attention_norm"]["scale"], 0.0)
    np.testing.assert_array_equal(grad["layers"]["query"]["bias"], 0.0)
    np.testing.assert_allclose(grad["layers"]["query"]["kernel"], 0.1 + 0.2, rtol=1e-6)


def _first_moments(state):
    """The first-moment leaves of an optimizer state: Adam's mu, SGD's momentum trace."""
    moments = []
    for node in jax.tree.leaves(state, is_leaf=lambda x: isinstance(
            x, optax.ScaleByAdamState | optax.TraceState)):
        if isinstance(node, optax.ScaleByAdamState):
            moments += jax.tree.leaves(node.mu)
        elif isinstance(node, optax.TraceState):
            moments += jax.tree.leaves(node.trace)
    return moments


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_bfloat16_mu_halves_its_bytes_and_still_descends(name):
    params = {"w": jnp.ones((8, 16)), "b": jnp.ones(16)}
    base = dict(name=name, learning_rate=0.1, momentum=0.9, weight_decay=0.01)
    full, _ = optim.make_optimizer(_optim(**base), 100)
    half, _ = optim.make_optimizer(_optim(**base, mu_dtype="bfloat16"), 100)
    full_mu, half_mu = _first_moments(full.init(params)), _first_moments(half.init(params))
    assert {x.dtype for x in half_mu} == {jnp.dtype(jnp.bfloat16)} and len(half_mu) == 2
    assert sum(x.nbytes for x in half_mu) * 2 == sum(x.nbytes for x in full_mu)
    loss = lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(p))  # noqa: E731
    state, start = half.init(params), loss(params)
    for _ in range(10):
        updates, state = half.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    assert loss(params) < 0.5 * start
    assert {x.dtype for x in _first_moments(state)} == {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}


def test_nesterov_and_eps_root_reach_adam():
    params, grads = {"w": jnp.zeros(2)}, {"w": jnp.array([1.0, -1.0])}
    first = {}
    for key, extra in [("plain", {}), ("nesterov", dict(nesterov=True)),
                       ("eps_root", dict(eps_root=3.0))]:
        tx, _ = optim.make_optimizer(_optim(learning_rate=0.1, **extra), 10)
        first[key] = float(tx.update(grads, tx.init(params), params)[0]["w"][0])
    assert first["plain"] == pytest.approx(-0.1, rel=1e-5)
    assert first["nesterov"] == pytest.approx(-0.1 * (1 + 0.9 / 1.9), rel=1e-5)
    assert first["eps_root"] == pytest.approx(-0.1 / 2.0, rel=1e-5)  # g / sqrt(g^2 + 3)


def test_unknown_mu_dtype_is_clear():
    with pytest.raises(ValueError, match=r"config\.optim\.mu_dtype='float16'; choose one of"):
        optim.make_optimizer(_optim(mu_dtype="float16"), 10)
