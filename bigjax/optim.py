"""Optimizers and learning-rate schedules from `config.optim`; L1/L2 penalties.

Weight decay skips biases and norm scales (params with fewer than 2 dims). For
adam/adamw it is decoupled (AdamW); for sgd it is added to the gradient before
momentum (the classic form: with momentum m its effect is about 1/(1-m) times
larger). Adam is `bigjax.adam`: optax's update with cheaper arithmetic and the same
state. L1/L2 penalties are added to the loss by `regularization_penalty`. Frozen params
and layer-wise LR decay (`optim.frozen`, `optim.layer_lr_decay`) are per-param
multipliers: see `bigjax.param_lr`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from bigjax import adam, param_lr

SCHEDULES = ("constant", "warmup_cosine", "warmup_linear")
OPTIMIZERS = ("sgd", "adam", "adamw")


def make_schedule(optim: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Learning rate per step: constant, or linear warmup then cosine / linear decay."""
    lr, warmup = optim.learning_rate, int(optim.get("warmup_steps", 0))
    name = optim.get("schedule", "constant")
    final = lr * optim.get("end_lr_factor", 0.0)
    if name == "constant":
        return optax.constant_schedule(lr) if not warmup else optax.join_schedules(
            [optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup])
    if warmup >= total_steps:
        raise ValueError(f"warmup_steps={warmup} must be below the {total_steps} total steps.")
    if name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, total_steps, final)
    if name == "warmup_linear":
        return optax.join_schedules(
            [optax.linear_schedule(0.0, lr, warmup),
             optax.linear_schedule(lr, final, total_steps - warmup)], [warmup])
    raise ValueError(f"Unknown config.optim.schedule {name!r}; choose one of {SCHEDULES}.")


def _decay_mask(params):
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(
    optim: ml_collections.ConfigDict, total_steps: int, adam_impl: str = "bigjax"
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optax chain: clip -> optimizer (with weight decay) at the schedule's rate, with
    frozen params' gradients zeroed first and per-param multipliers applied last when
    `optim.frozen` / `optim.layer_lr_decay` are set.

    `adam_impl="optax"` builds Adam/AdamW from optax itself instead of `bigjax.adam`
    (same numbers and state, slower; for benchmarks).
    """
    schedule = make_schedule(optim, total_steps)
    name, wd = optim.name, optim.get("weight_decay", 0.0)
    parts = []
    if optim.get("grad_clip_norm"):
        parts.append(optax.clip_by_global_norm(optim.grad_clip_norm))
    if name == "sgd":
        parts.append(optax.sgd(schedule, momentum=optim.get("momentum") or None,
                               nesterov=optim.get("nesterov", False)))
        if wd:
            # wd * params joins the gradient before momentum (see the module docstring).
            parts.insert(-1, optax.add_decayed_weights(wd, _decay_mask))
    elif name in ("adam", "adamw"):
        b1, b2, eps = optim.get("b1", 0.9), optim.get("b2", 0.999), optim.get("eps", 1e-8)
        impl = {"bigjax": adam.adam, "optax": _optax_adam}[adam_impl]
        if name == "adamw" or wd:
            parts.append(impl(schedule, b1, b2, eps, weight_decay=wd, mask=_decay_mask))
        else:
            parts.append(impl(schedule, b1, b2, eps))
    else:
        raise ValueError(f"Unknown config.optim.name {name!r}; choose one of {OPTIMIZERS}.")
    frozen, layer_decay = param_lr.settings(optim)
    if frozen:
        parts.insert(0, param_lr.scale_by_lr_multipliers(frozen))
    if frozen or layer_decay is not None:
        parts.append(param_lr.scale_by_lr_multipliers(frozen, layer_decay))
    return optax.chain(*parts), schedule


def _optax_adam(schedule, b1, b2, eps, weight_decay=None, mask=None):
    if weight_decay is None:
        return optax.adam(schedule, b1, b2, eps)
    return optax.adamw(schedule, b1, b2, eps, weight_decay=weight_decay, mask=mask)


def regularization_penalty(params, l1: float = 0.0, l2: float = 0.0) -> jnp.ndarray:
    """`l1 * sum|w| + l2 / 2 * sum w^2` over weights with 2+ dims (biases excluded)."""
    weights = [p for p in jax.tree.leaves(params) if p.ndim > 1]
    total = jnp.zeros((), jnp.float32)
    if l1:
        total += l1 * sum(jnp.abs(w).sum() for w in weights)
    if l2:
        total += 0.5 * l2 * sum(jnp.square(w).sum() for w in weights)
    return total
