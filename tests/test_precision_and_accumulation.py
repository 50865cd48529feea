"""Mixed precision and gradient accumulation through the real train step (1 CPU device;
tests/test_mesh.py checks accumulation on 8)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigjax import config_cli, sharding, train
from bigjax.train_state import init_state

from conftest import REPO


def _experiment(*overrides):
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:runlocal"))
    return train.build_experiment(config_cli.apply_overrides(config, overrides))


def _train(exp, steps, same_batch=False):
    state = init_state(exp.init_fn, exp.config.seed, exp.state_shardings, exp.rules)
    step = train.make_train_step(exp)
    losses = []
    with sharding.mesh_context(exp.mesh, exp.rules):
        for i in range(steps):
            batch = exp.train_batches[0 if same_batch else i]
            state, metrics = step(state, sharding.put_batch(batch, exp.mesh))
            losses.append(float(metrics["loss"]))
    return state, losses


def test_bfloat16_compute_with_float32_params_trains():
    exp = _experiment(("model.dtype", "bfloat16"), ("model.dropout_rate", "0.0"),
                      ("optim.schedule", "constant"))
    state, losses = _train(exp, 15, same_batch=True)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))
    assert losses[-1] < 0.3 * losses[0]
    # The compute really is bf16: the compiled step converts activations to bf16.
    step = train.make_train_step(exp)
    with sharding.mesh_context(exp.mesh, exp.rules):
        text = step.lower(state, sharding.put_batch(exp.train_batches[0], exp.mesh)).as_text()
    assert "bf16" in text


def test_bfloat16_first_moment_halves_the_optimizer_moment_bytes():
    def mu_bytes(exp):
        adam_state = [s for s in jax.tree.leaves(exp.abstract_state.opt_state,
                                                 is_leaf=lambda x: hasattr(x, "mu"))
                      if hasattr(s, "mu")][0]
        return sum(np.dtype(x.dtype).itemsize * x.size for x in jax.tree.leaves(adam_state.mu))

    full, half = _experiment(), _experiment(("optim.mu_dtype", "bfloat16"))
    assert mu_bytes(half) * 2 == mu_bytes(full)
    _, losses = _train(half, 10, same_batch=True)
    assert losses[-1] < losses[0]


def _step_text(exp) -> str:
    state = exp.abstract_state
    batch = sharding.put_batch(exp.train_batches[0], exp.mesh)
    with sharding.mesh_context(exp.mesh, exp.rules):
        return train.make_train_step(exp).lower(state, batch).as_text()


@pytest.mark.parametrize("k", [2, 4])
def test_accumulation_gives_the_full_batch_update(k):
    full_exp = _experiment(("model.dropout_rate", "0.0"))
    accum_exp = _experiment(("model.dropout_rate", "0.0"), ("grad_accum_steps", str(k)))
    # It takes effect: the step loops over k microbatches of batch / k rows.
    rows = accum_exp.config.batch_size // k
    assert "stablehlo.while" in _step_text(accum_exp) and f"tensor<{rows}x8x8x" in \
        _step_text(accum_exp)
    assert "stablehlo.while" not in _step_text(full_exp)
    full, _ = _train(full_exp, 3)
    accum, losses = _train(accum_exp, 3)
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(accum.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(accum.step) == 3  # one optimizer step per global batch


def test_accumulation_must_divide_the_batch():
    with pytest.raises(ValueError, match="grad_accum_steps=5"):
        _experiment(("grad_accum_steps", "5"))


def test_accumulation_makes_one_batch_norm_update_per_step():
    """Each microbatch starts from the step's statistics and their updates are averaged:
    the running means equal the full batch's (the mean of equal-sized microbatch means),
    not k successive momentum updates."""
    states = {}
    for k in (1, 4):
        exp = _experiment(("model.norm", "batch"), ("model.dropout_rate", "0.0"),
                          ("grad_accum_steps", str(k)))
        states[k], _ = _train(exp, 1)
    for a, b in zip(jax.tree.leaves(states[1].model_state["batch_stats"]["conv_norm_0"]["mean"]),
                    jax.tree.leaves(states[4].model_state["batch_stats"]["conv_norm_0"]["mean"]),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_flops_per_step_count_every_microbatch_and_step():
    """XLA's cost analysis counts a loop body once; the dry run's FLOPs do not."""
    from bigjax import dry_run

    plain = dry_run.flops_per_step(_experiment().config)
    for key in ("grad_accum_steps", "steps_per_call"):
        assert dry_run.flops_per_step(_experiment((key, "4")).config) == plain
    assert plain > 1e8  # 64 digits through two convs, forward and backward
