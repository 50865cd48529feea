"""Per-parameter learning-rate multipliers: frozen params and layer-wise LR decay.

`config.optim.frozen`: regular expressions (comma-separated string, or a list)
searched in each param's path, e.g. ``"bert/embeddings/"``. A matching param
is never updated: its gradient is zeroed before clipping (so it does not count
in the global norm or the Adam moments) and its update, weight decay included,
is zeroed after. (The logged ``train/grad_norm`` is still that of all gradients.)

`config.optim.layer_lr_decay = d` (0 < d <= 1): in a model with a transformer
stack of L layers (params under ``layers_<i>``, or a scanned ``layers`` with a
leading [layers] axis), layer i's update is scaled by d^(L - i), the
embeddings' (paths with an ``embeddings`` part) by d^(L + 1), and everything
else (pooler, heads, final norms) by 1: lower layers, which hold the most
general pretrained features, move least (BEiT's fine-tuning recipe). A decoder
tied to the word embeddings (the MLM head's) learns at the embeddings' rate.

`config.optim.lr_multipliers = {regex: factor}`: a param whose path the regex finds
learns at `factor` times the rate (the first matching regex wins), on top of the
layer-wise decay, e.g. ``{"norm.*/bias": 64.0}`` for airbench's fast BatchNorm biases.

Multipliers are Python constants computed from the tree's paths when the step
is traced; the transformations are stateless.

`config.optim.frozen_after_steps = {regex: step}` (or `frozen_after_epochs`): a param
whose path the regex finds learns for its first `step` steps only, e.g. airbench's
``{"whiten/bias": 3 epochs}``; from then on its update is zero (`freeze_after`, which
counts the steps in its state). A lookahead still pulls it to its slow copy, as
airbench's does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.core import meta

from bigjax import param_paths

_LAYER = re.compile(r"^layers_(\d+)$")


def frozen_patterns(frozen: str | Sequence[str] | None) -> tuple[str, ...]:
    """`config.optim.frozen` as a tuple of regexes ("" or None: none)."""
    return param_paths.regex_list(frozen, "config.optim.frozen")


def settings(optim) -> tuple[tuple[str, ...], float | None, dict[str, float]]:
    """`(frozen patterns, layer_lr_decay, lr_multipliers)` from `config.optim`;
    `((), None, {})`: all at full rate."""
    scales = optim.get("lr_multipliers") or {}
    if hasattr(scales, "to_dict"):  # an ml_collections ConfigDict
        scales = scales.to_dict()
    if not isinstance(scales, Mapping) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
            for v in scales.values()):
        raise ValueError(f"config.optim.lr_multipliers={scales!r} must map param-path regexes "
                         'to factors >= 0, e.g. {"norm.*/bias": 64.0}.')
    for p in scales:
        param_paths.regex_list(p, "config.optim.lr_multipliers")  # a bad regex fails here
    return (frozen_patterns(optim.get("frozen")), optim.get("layer_lr_decay"),
            {str(k): float(v) for k, v in scales.items()})


def _layer_index(parts: list[str]) -> int | None:
    """i when a path part is ``layers_<i>`` (an unscanned stack's layer), else None."""
    for part in parts:
        match = _LAYER.match(part)
        if match:
            return int(match.group(1))
    return None


def _num_layers(names: dict[str, tuple]) -> int:
    """L: the number of layers of the tree's transformer stack (0 when it has none)."""
    count = 0
    for name, shape in names.items():
        parts = name.split("/")
        index = _layer_index(parts)
        if index is not None:
            count = max(count, index + 1)
        if "layers" in parts and shape:
            count = max(count, shape[0])
    return count


def lr_multipliers(tree, frozen: Sequence[str] = (), layer_decay: float | None = None,
                   scales: Mapping[str, float] | None = None):
    """A tree like `tree` of multipliers: a float, or for scanned layers a numpy array
    [layers, 1, ...] that broadcasts over the leaf.

    Raises ValueError when a frozen or `scales` pattern matches no param, or when
    `layer_decay` is set but the tree has no ``layers_<i>`` / ``layers`` params.
    """
    flat = {name: tuple(np.shape(leaf)) for name, leaf in param_paths.flatten(tree).items()}
    scales = dict(scales or {})
    for p, key in [(p, "frozen") for p in frozen] + [(p, "lr_multipliers") for p in scales]:
        if not any(re.search(p, name) for name in flat):
            raise ValueError(
                f"config.optim.{key}: {p!r} matches no param; params are named like "
                f"{next(iter(flat), '?')!r}. (With scan_layers the stack is one 'layers' "
                "param per weight, so single layers cannot be picked.)")
    num_layers = _num_layers(flat) if layer_decay is not None else 0
    if layer_decay is not None:
        if not 0 < layer_decay <= 1:
            raise ValueError(f"config.optim.layer_lr_decay={layer_decay} must be in (0, 1].")
        if num_layers == 0:
            raise ValueError("config.optim.layer_lr_decay needs a model with a transformer "
                             "stack (params under layers_<i> or a scanned layers); this one has "
                             "none. Set it to None.")

    def multiplier(path, leaf):
        name = param_paths.path_name(path)
        if any(re.search(p, name) for p in frozen):
            return 0.0
        scale = next((v for p, v in scales.items() if re.search(p, name)), 1.0)
        base = layer_multiplier(name, leaf)
        return scale * base if isinstance(base, float) else (scale * base).astype(np.float32)

    def layer_multiplier(name, leaf):
        if layer_decay is None:
            return 1.0
        parts = name.split("/")
        index = _layer_index(parts)
        if index is not None:
            return float(layer_decay ** (num_layers - index))
        if "layers" in parts:  # scanned: one multiplier per slice of the leading axis
            per_layer = layer_decay ** (num_layers - np.arange(num_layers, dtype=np.float64))
            return per_layer.astype(np.float32).reshape((-1,) + (1,) * (np.ndim(leaf) - 1))
        if any("embeddings" in part for part in parts):
            return float(layer_decay ** (num_layers + 1))
        return 1.0

    return jax.tree_util.tree_map_with_path(multiplier, tree)


def scale_by_lr_multipliers(
    frozen: Sequence[str] = (), layer_decay: float | None = None,
    scales: Mapping[str, float] | None = None,
) -> optax.GradientTransformation:
    """Multiplies each update by its `lr_multipliers` entry (stateless); frozen updates
    become exact zeros (a NaN gradient there does not spread). `init` validates the
    settings against the params, so a bad pattern fails before the first step."""

    def init(params):
        lr_multipliers(meta.unbox(params), frozen, layer_decay, scales)  # init passes boxed
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        multipliers = lr_multipliers(updates, frozen, layer_decay, scales)
        scaled = jax.tree.map(
            lambda u, m: jnp.zeros_like(u) if _is_zero(m) else u * np.asarray(m, u.dtype),
            updates, multipliers)
        return scaled, state

    return optax.GradientTransformation(init, update)


def frozen_after_limits(optim: ml_collections.ConfigDict) -> dict[str, int]:
    """`config.optim.frozen_after_steps` as `{regex: step}` ({} when unset). Raises
    ValueError for anything but regexes mapped to whole step counts >= 0, and when
    `frozen_after_epochs` is still set (`bigjax.experiment` turns it into steps; a caller
    building the optimizer itself must do the same, or it would be ignored)."""
    if optim.get("frozen_after_epochs"):
        raise ValueError("config.optim.frozen_after_epochs must be turned into "
                         "frozen_after_steps before the optimizer is built "
                         "(durations.resolve_step_map).")
    limits = optim.get("frozen_after_steps") or {}
    if hasattr(limits, "to_dict"):
        limits = limits.to_dict()
    if not isinstance(limits, Mapping) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
            for v in limits.values()):
        raise ValueError(f"config.optim.frozen_after_steps={limits!r} must map param-path "
                         'regexes to whole steps >= 0, e.g. {"whiten/bias": 144}.')
    for p in limits:
        param_paths.regex_list(p, "config.optim.frozen_after_steps")
    return {str(k): int(v) for k, v in limits.items()}


class FreezeAfterState(NamedTuple):
    """`freeze_after`'s state: `count`, int32 [], the optimizer steps taken so far."""

    count: jax.Array


def freeze_after(limits: Mapping[str, int]) -> optax.GradientTransformation:
    """Zeroes the update of each param whose path a regex in `limits` finds once
    `limits[regex]` steps have been taken (the first matching regex wins); other params
    pass unchanged. `init` fails when a regex matches no param."""

    def limit_of(path) -> int | None:
        name = param_paths.path_name(path)
        return next((v for p, v in limits.items() if re.search(p, name)), None)

    def init(params):
        names = list(param_paths.flatten(meta.unbox(params)))
        for p in limits:
            if not any(re.search(p, name) for name in names):
                raise ValueError(f"config.optim.frozen_after_steps: {p!r} matches no param; "
                                 f"params are named like {next(iter(names), '?')!r}.")
        return FreezeAfterState(count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None):
        del params

        def gate(path, u):
            limit = limit_of(path)
            return u if limit is None else jnp.where(state.count < limit, u, jnp.zeros_like(u))

        return (jax.tree_util.tree_map_with_path(gate, updates),
                FreezeAfterState(count=optax.safe_int32_increment(state.count)))

    return optax.GradientTransformation(init, update)


def _is_zero(m) -> bool:
    return isinstance(m, float) and m == 0.0


def describe(params, optim) -> str | None:
    """One log line for `config.optim`'s settings: how many arrays are frozen, scaled, or at
    the full rate, and which stop learning later (`frozen_after_steps` / `_epochs`); None
    when every param learns at the full rate throughout."""
    frozen, layer_decay, scales = settings(optim)
    later = {unit: dict(optim.get(f"frozen_after_{unit}") or {}) for unit in ("steps", "epochs")}
    later = {unit: limits for unit, limits in later.items() if limits}
    if not frozen and layer_decay is None and not scales and not later:
        return None
    counts = {"frozen": 0, "scaled": 0, "full rate": 0}
    for m in jax.tree.leaves(lr_multipliers(params, frozen, layer_decay, scales)):
        key = "frozen" if _is_zero(m) else "full rate" if np.all(np.asarray(m) == 1) else "scaled"
        counts[key] += 1
    after = "".join(f"; frozen after {unit}: {limits}" for unit, limits in later.items())
    return (f"per-param learning rates (frozen={list(frozen)}, layer_lr_decay={layer_decay}, "
            f"lr_multipliers={scales}): "
            + ", ".join(f"{n} arrays {k}" for k, n in counts.items()) + after)
