import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bigjax import optim


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
