"""Optimizers and learning-rate schedules from `config.optim`; L1/L2 penalties.

Weight decay and the L1/L2 penalties (`regularization_penalty`, added to the loss)
apply to the params that `optim.decay_exclude` leaves in: by default every param but
biases and norm params, decided by path (`bigjax.decay_mask`). For adam/adamw weight
decay is decoupled (AdamW); for sgd it is added to the gradient before momentum (the
classic form: with momentum m its effect is about 1/(1-m) times larger).

Adam is `bigjax.adam`: optax's update with cheaper arithmetic and the same state.
`optim.mu_dtype` (None, "float32" or "bfloat16") stores Adam's first moment (SGD's
momentum) in that dtype; `optim.nesterov` turns Adam into Nadam and SGD's momentum
into Nesterov's; `optim.eps_root` is optax's. Frozen params and layer-wise LR decay
(`optim.frozen`, `optim.layer_lr_decay`) are per-param multipliers: see
`bigjax.param_lr`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.core import meta

from bigjax import adam, decay_mask, lookahead, param_lr

SCHEDULES = ("constant", "warmup_cosine", "warmup_linear", "warmup_rsqrt")
OPTIMIZERS = ("sgd", "adam", "adamw")
MU_DTYPES = {None: None, "float32": jnp.dtype("float32"), "bfloat16": jnp.dtype("bfloat16")}


def make_schedule(optim: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Learning rate per step: constant, or linear warmup then cosine / linear decay, or
    then the inverse square root decay of the Transformer paper (`lr * sqrt(warmup /
    step)`: the peak at the end of the warmup, half of it at 4x the warmup steps)."""
    lr, warmup = optim.learning_rate, int(optim.get("warmup_steps") or 0)
    name = optim.get("schedule", "constant")
    final = lr * optim.get("end_lr_factor", 0.0)
    start = lr * (optim.get("warmup_start_factor") or 0.0)
    if name == "constant":
        return optax.constant_schedule(lr) if not warmup else optax.join_schedules(
            [optax.linear_schedule(start, lr, warmup), optax.constant_schedule(lr)], [warmup])
    if warmup >= total_steps:
        raise ValueError(f"warmup_steps={warmup} must be below the {total_steps} total steps.")
    if name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(start, lr, warmup, total_steps, final)
    if name == "warmup_linear":
        return optax.join_schedules(
            [optax.linear_schedule(start, lr, warmup),
             optax.linear_schedule(lr, final, total_steps - warmup)], [warmup])
    if name == "warmup_rsqrt":
        if not warmup:
            raise ValueError("config.optim.schedule='warmup_rsqrt' needs warmup_steps > 0 "
                             "(the decay is lr * sqrt(warmup / step)).")
        return lambda step: lr * jnp.minimum(step / warmup,
                                             jnp.sqrt(warmup / jnp.maximum(step, 1)))
    raise ValueError(f"Unknown config.optim.schedule {name!r}; choose one of {SCHEDULES}.")


def mu_dtype(optim: ml_collections.ConfigDict) -> jnp.dtype | None:
    """`optim.mu_dtype` as a dtype for the first moment (Adam's mu, SGD's momentum); None:
    the params' dtype. Raises ValueError for any other name."""
    name = optim.get("mu_dtype")
    if name not in MU_DTYPES:
        raise ValueError(f"config.optim.mu_dtype={name!r}; choose one of {list(MU_DTYPES)}.")
    return MU_DTYPES[name]


def make_optimizer(
    optim: ml_collections.ConfigDict, total_steps: int, adam_impl: str = "bigjax"
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optax chain: clip -> optimizer (with weight decay where `optim.decay_exclude`
    allows) at the schedule's rate, with frozen params' gradients zeroed first and
    per-param multipliers applied last when `optim.frozen` / `optim.layer_lr_decay` are set,
    then `optim.frozen_after_steps`' gate and the lookahead.

    Keys read (with defaults, so older configs work): name, learning_rate, schedule keys
    (`make_schedule`), grad_clip_norm, weight_decay (0), decay_exclude (None: biases and
    norm params, see `bigjax.decay_mask`), nesterov (False) and mu_dtype (None) for all
    three, momentum for sgd, b1 (0.9), b2 (0.999), eps (1e-8) and eps_root (0) for
    adam/adamw.

    `adam_impl="optax"` builds Adam/AdamW from optax itself instead of `bigjax.adam`
    (same numbers and state, slower; for benchmarks).
    """
    schedule = make_schedule(optim, total_steps)
    name, wd = optim.name, optim.get("weight_decay", 0.0)
    exclude = optim.get("decay_exclude")
    if exclude != decay_mask.LEGACY_RANK_RULE:
        exclude = decay_mask.exclude_patterns(exclude)  # bad regexes fail here, at build
    mask = functools.partial(decay_mask.decay_mask, exclude=exclude)
    moment_dtype, nesterov = mu_dtype(optim), bool(optim.get("nesterov", False))
    parts = []
    if optim.get("grad_clip_norm"):
        parts.append(optax.clip_by_global_norm(optim.grad_clip_norm))
    if name == "sgd":
        parts.append(optax.sgd(schedule, momentum=optim.get("momentum") or None,
                               nesterov=nesterov, accumulator_dtype=moment_dtype))
        if wd:
            # wd * params joins the gradient before momentum (see the module docstring).
            parts.insert(-1, optax.add_decayed_weights(wd, mask))
    elif name in ("adam", "adamw"):
        impl = {"bigjax": adam.adam, "optax": _optax_adam}[adam_impl]
        kwargs = dict(b1=optim.get("b1", 0.9), b2=optim.get("b2", 0.999),
                      eps=optim.get("eps", 1e-8), eps_root=optim.get("eps_root") or 0.0,
                      mu_dtype=moment_dtype, nesterov=nesterov)
        if name == "adamw" or wd:
            parts.append(impl(schedule, weight_decay=wd, mask=mask, **kwargs))
        else:
            parts.append(impl(schedule, **kwargs))
    else:
        raise ValueError(f"Unknown config.optim.name {name!r}; choose one of {OPTIMIZERS}.")
    frozen, layer_decay, scales = param_lr.settings(optim)
    if frozen:
        parts.insert(0, param_lr.scale_by_lr_multipliers(frozen))
    if frozen or layer_decay is not None or scales:
        parts.append(param_lr.scale_by_lr_multipliers(frozen, layer_decay, scales))
    limits = param_lr.frozen_after_limits(optim)
    if limits:
        parts.append(param_lr.freeze_after(limits))
    if optim.get("lookahead_every"):
        parts.append(lookahead.lookahead(int(optim.lookahead_every),
                                         float(optim.get("lookahead_decay", 0.95 ** 5)),
                                         total_steps))
    return optax.chain(*parts), schedule


def _optax_adam(schedule, weight_decay=None, mask=None, **kwargs):
    if weight_decay is None:
        return optax.adam(schedule, **kwargs)
    return optax.adamw(schedule, weight_decay=weight_decay, mask=mask, **kwargs)


def regularization_penalty(params, l1: float = 0.0, l2: float = 0.0,
                           exclude: decay_mask.Exclude = None) -> jnp.ndarray:
    """`l1 * sum|w| + l2 / 2 * sum w^2` (a float32 scalar) over the params that weight
    decay applies to: those no `exclude` regex (`config.optim.decay_exclude`; None: the
    defaults, biases and norm params) finds in their path."""
    params = meta.unbox(params)
    keep = jax.tree.leaves(decay_mask.decay_mask(params, exclude))
    weights = [p for p, k in zip(jax.tree.leaves(params), keep, strict=True) if k]
    total = jnp.zeros((), jnp.float32)
    if l1:
        total += l1 * sum(jnp.abs(w).sum() for w in weights)
    if l2:
        total += 0.5 * l2 * sum(jnp.square(w).sum() for w in weights)
    return total
