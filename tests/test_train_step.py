"""The jit-compiled train step on a fixed batch, in-process (1 CPU device)."""

import os

import jax
import numpy as np
import pytest

from bigjax import config_cli, sharding, train
from bigjax.train_state import abstract_state, init_state

from conftest import REPO


def _experiment(*overrides):
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:runlocal"))
    return train.build_experiment(config_cli.apply_overrides(config, overrides))


def _state(exp):
    _, shardings = abstract_state(exp.init_fn, exp.mesh, exp.rules)
    return init_state(exp.init_fn, exp.config.seed, shardings)


@pytest.mark.parametrize("optimizer,lr", [("sgd", "0.1"), ("adamw", "0.003")])
def test_loss_decreases_on_a_fixed_batch(optimizer, lr):
    exp = _experiment(("optim.name", optimizer), ("optim.learning_rate", lr),
                      ("optim.schedule", "constant"), ("model.dropout_rate", "0.0"),
                      ("optim.momentum", "0.9") if optimizer == "sgd" else ("seed", "0"))
    state, step = _state(exp), train.make_train_step(exp)
    batch = sharding.put_batch(exp.train_batches[0], exp.mesh)
    losses = []
    for _ in range(30):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.2 * losses[0]
    assert int(state.step) == 30


def test_multi_step_call_equals_single_steps():
    exp = _experiment(("model.dropout_rate", "0.0"))
    single, multi = train.make_train_step(exp, 1), train.make_train_step(exp, 3)
    batches = [exp.train_batches[k] for k in range(3)]
    a = _state(exp)
    for b in batches:
        a, _ = single(a, sharding.put_batch(b, exp.mesh))
    stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
    b_state, metrics = multi(_state(exp), sharding.put_batch(stacked, exp.mesh, 1))
    assert metrics["loss"].shape == (3,)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b_state.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_dropout_and_augmentation_use_the_step_rng():
    exp = _experiment(("model.dropout_rate", "0.5"), ("pp.translate", "1"))
    step = train.make_train_step(exp)
    batch = sharding.put_batch(exp.train_batches[0], exp.mesh)
    _, m1 = step(_state(exp), batch)
    _, m2 = step(_state(exp), batch)
    assert float(m1["loss"]) == float(m2["loss"])  # same state and step: same randomness
    state, _ = step(_state(exp), batch)
    _, m3 = step(state.replace(params=_state(exp).params), batch)
    assert float(m3["loss"]) != float(m1["loss"])  # next step: new dropout mask and shifts


def test_wrong_input_shape_is_clear():
    with pytest.raises(ValueError, match="input_shape"):
        _experiment(("data.input_shape", "(28, 28, 1)"))


def test_num_classes_mismatch_is_clear():
    with pytest.raises(ValueError, match="num_classes=5 but data set 'digits' has 10"):
        _experiment(("model.num_classes", "5"))
