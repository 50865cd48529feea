"""The jit-compiled train step: `train_step(state, batch) -> (state, metrics)`.

Pure: the step's randomness comes from folding `state.step` into `state.rng`.
With `grad_accum_steps = k` the global batch is split into k microbatches inside
the step (a `lax.scan` summing gradients in float32), which gives the full batch's
update for per-example losses with a k-times smaller activation footprint (see
`make_step_fn` for per-token losses and BatchNorm). The step is compiled with explicit
shardings: state in = state out (the born-sharded layout), batch split over
`data` x `fsdp`, metrics replicated; the state is donated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bigjax import lookahead, optim, sharding
from bigjax.forward import forward
from bigjax.train_state import TrainState


def split_microbatches(batch: dict, k: int, mesh: Mesh) -> dict:
    """`[B, ...]` leaves -> `[k, B / k, ...]`, microbatch j holding rows j, j + k, ...

    Strided rows keep every microbatch spread over all devices of the batch axes
    (each device's contiguous block of rows splits into its k microbatch parts), so
    splitting moves no data between devices.
    """
    spec = NamedSharding(mesh, PartitionSpec(None, sharding.BATCH_AXES))

    def split(x):
        x = x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1)
        return jax.lax.with_sharding_constraint(x, spec)

    return jax.tree.map(split, batch)


def make_step_fn(model, task, preprocess, tx: optax.GradientTransformation,
                 schedule: optax.Schedule, mesh: Mesh, *, l1: float = 0.0, l2: float = 0.0,
                 decay_exclude=None, grad_accum_steps: int = 1
                 ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """The un-jitted `one_step(state, batch) -> (state, metrics)`.

    Metrics: the task's training metrics, `loss` (without the L1/L2 penalty),
    `grad_norm` (global norm of the raw gradients, before clipping and per-param
    multipliers) and `learning_rate`. With accumulation they are means over the
    microbatches. The mean of the microbatches' mean losses is the full batch's for
    per-example losses (classification); a per-token loss (MLM) weighs microbatches
    equally instead of by token count, and BatchNorm normalises each microbatch with
    its own statistics (as data parallelism without synchronised statistics would).
    """
    k = int(grad_accum_steps)

    def loss_fn(params, model_state, batch, rng):
        out, model_state = forward(model, task, {"params": params, **model_state}, batch,
                                   train=True, rng=rng)
        loss, metrics = task.loss(out, batch)
        penalty = optim.regularization_penalty(params, l1, l2, decay_exclude) if l1 or l2 \
            else 0.0
        return loss + penalty, (loss, metrics, model_state)

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def accumulated(params, model_state, batch, rng):
        # Every microbatch starts from the step's model state; the new states (e.g.
        # BatchNorm running statistics) are averaged: one momentum update per step with
        # the mean of the microbatches' statistics. Gradients add up in float32.
        def body(grad_sum, micro):
            mb, index = micro
            grads, (loss, metrics, new_state) = grad_fn(params, model_state, mb,
                                                        jax.random.fold_in(rng, index))
            grad_sum = jax.tree.map(lambda a, g: a + g.astype(jnp.float32), grad_sum, grads)
            return grad_sum, (loss, metrics, new_state)

        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
        micro = (split_microbatches(batch, k, mesh), jnp.arange(k))
        grad_sum, (losses, metrics, new_states) = jax.lax.scan(body, zeros, micro)
        grads = jax.tree.map(lambda g, p: (g / k).astype(p.dtype), grad_sum, params)
        mean = jax.tree.map(lambda x: x.mean(0).astype(x.dtype), (metrics, new_states))
        return grads, (losses.mean(), *mean)

    def one_step(state: TrainState, batch: dict) -> tuple[TrainState, dict[str, Any]]:
        rng = jax.random.fold_in(state.rng, state.step)
        pp_rng, dropout_rng = jax.random.split(rng)
        batch = preprocess(batch, pp_rng, train=True)
        if k == 1:
            grads, (loss, metrics, model_state) = grad_fn(state.params, state.model_state,
                                                          batch, dropout_rng)
        else:
            grads, (loss, metrics, model_state) = accumulated(state.params, state.model_state,
                                                              batch, dropout_rng)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        opt_state, model_state = lookahead.sync_model_state(opt_state, model_state)
        metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads),
                   "learning_rate": schedule(state.step)}
        return state.replace(step=state.step + 1, params=params, model_state=model_state,
                             opt_state=opt_state), metrics

    return one_step


def jit_train_step(one_step, state_shardings, mesh: Mesh, steps_per_call: int = 1):
    """`one_step` jit-compiled with explicit shardings (state donated).

    With `steps_per_call = k > 1` the batch holds `k` stacked batches (`[k, batch,
    ...]`) and the step scans over them, so k optimizer steps run per compiled call
    (metrics are then `[k]`). k = 1 takes a plain batch: XLA on CPU runs
    convolutions inside a scan several times slower.
    """
    leading = 0 if steps_per_call == 1 else 1

    def scanned_steps(state, batches):  # a name for profiles and HLO dumps
        return jax.lax.scan(one_step, state, batches)

    fn = one_step if steps_per_call == 1 else scanned_steps
    return jax.jit(fn, donate_argnums=0,
                   in_shardings=(state_shardings, sharding.batch_sharding(mesh, leading)),
                   out_shardings=(state_shardings, sharding.replicated(mesh)))
