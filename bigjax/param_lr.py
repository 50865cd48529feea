"""Per-parameter learning-rate multipliers: frozen params and layer-wise LR decay.

`config.optim.frozen`: regular expressions (comma-separated string, or a list)
searched in each param's path, e.g. ``"bert/embeddings/"``. A matching param
is never updated: its gradient is zeroed before clipping (so it does not count
in the global norm or the Adam moments) and its update, weight decay included,
is zeroed after.

`config.optim.layer_lr_decay = d` (0 < d <= 1): in a model with a transformer
stack of L layers (params under ``layers_<i>``, or a scanned ``layers`` with a
leading [layers] axis), layer i's update is scaled by d^(L - i), the
embeddings' (paths with an ``embeddings`` part) by d^(L + 1), and everything
else (pooler, heads, final norms) by 1: lower layers, which hold the most
general pretrained features, move least (the fine-tuning recipe of ELECTRA
and BEiT).

Multipliers are Python constants computed from the tree's paths when the step
is traced; the transformations are stateless.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import jax
import numpy as np
import optax
from flax.core import meta

from bigjax import param_paths

log = logging.getLogger("bigjax")

_LAYER = re.compile(r"^layers_(\d+)$")


def frozen_patterns(frozen: str | Sequence[str] | None) -> tuple[str, ...]:
    """`config.optim.frozen` as a tuple of regexes ("" or None: none)."""
    if not frozen:
        return ()
    items = frozen.split(",") if isinstance(frozen, str) else list(frozen)
    patterns = tuple(p.strip() for p in items if p.strip())
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"config.optim.frozen: {p!r} is not a regular expression ({e}).") \
                from None
    return patterns


def _num_layers(names: dict[str, tuple]) -> int:
    """L: the number of layers of the tree's transformer stack (0 when it has none)."""
    count = 0
    for name, shape in names.items():
        parts = name.split("/")
        for part in parts:
            match = _LAYER.match(part)
            if match:
                count = max(count, int(match.group(1)) + 1)
        if "layers" in parts and shape:
            count = max(count, shape[0])
    return count


def lr_multipliers(tree, frozen: Sequence[str] = (), layer_decay: float | None = None):
    """A tree like `tree` of multipliers: a float, or for scanned layers a numpy array
    [layers, 1, ...] that broadcasts over the leaf.

    Raises ValueError when a frozen pattern matches no param, or when `layer_decay` is
    set but the tree has no ``layers_<i>`` / ``layers`` params.
    """
    flat = {name: tuple(np.shape(leaf)) for name, leaf in param_paths.flatten(tree).items()}
    for p in frozen:
        if not any(re.search(p, name) for name in flat):
            raise ValueError(f"config.optim.frozen: {p!r} matches no param; params are named "
                             f"like {next(iter(flat), '?')!r}.")
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
        if layer_decay is None:
            return 1.0
        parts = name.split("/")
        for part in parts:
            match = _LAYER.match(part)
            if match:
                return float(layer_decay ** (num_layers - int(match.group(1))))
        if "layers" in parts:  # scanned: one multiplier per slice of the leading axis
            per_layer = layer_decay ** (num_layers - np.arange(num_layers, dtype=np.float64))
            return per_layer.astype(np.float32).reshape((-1,) + (1,) * (np.ndim(leaf) - 1))
        if any("embeddings" in part for part in parts):
            return float(layer_decay ** (num_layers + 1))
        return 1.0

    return jax.tree_util.tree_map_with_path(multiplier, tree)


def scale_by_lr_multipliers(
    frozen: Sequence[str] = (), layer_decay: float | None = None, log_summary: bool = True
) -> optax.GradientTransformation:
    """Multiplies each update by its `lr_multipliers` entry (stateless); at init, validates
    the settings against the params and (with `log_summary`) logs how many arrays are
    frozen, scaled, or at the full rate."""

    def init(params):
        params = meta.unbox(params)  # the train state's init passes logically boxed params
        multipliers = lr_multipliers(params, frozen, layer_decay)  # validates now, not mid-run
        if not log_summary:
            return optax.EmptyState()
        counts = {}
        for m in jax.tree.leaves(multipliers):
            key = "frozen" if np.all(np.asarray(m) == 0) else "scaled" if np.any(
                np.asarray(m) != 1) else "full"
            counts[key] = counts.get(key, 0) + 1
        log.info("optim: per-param learning rates (frozen=%s, layer_lr_decay=%s): %s arrays",
                 list(frozen), layer_decay, counts)
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        multipliers = lr_multipliers(updates, frozen, layer_decay)
        scaled = jax.tree.map(lambda u, m: u * np.asarray(m, u.dtype), updates, multipliers)
        return scaled, state

    return optax.GradientTransformation(init, update)
