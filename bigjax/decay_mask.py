"""Which params weight decay and L1/L2 penalties apply to, decided by param path.

`config.optim.decay_exclude`: regular expressions (a comma-separated string, or a
list) searched in each param's "a/b/c" path (`bigjax.param_paths`); a param that
any of them matches gets no weight decay and no L1/L2 penalty. None (or the key
absent) means `DEFAULT_EXCLUDE`:

- ``(^|/)bias$``: every bias (dense, conv, q/k/v biases [heads, kv], the MLM
  head's output bias), whatever its rank;
- ``(^|/)[^/]*[Nn]orm(_?\\d+)?/[^/]+$``: every param of a module whose name ends
  in ``norm`` / ``Norm`` (optionally ``_<i>`` or ``<i>``): BERT's
  ``attention_norm``, ``mlp_norm``, ``embeddings/norm``, ``mlm_head/norm``; the
  CNN's ``conv_norm_0``; flax's default ``LayerNorm_0``, ``BatchNorm_0``,
  ``RMSNorm_0``, ``GroupNorm_0``; timm-style ``norm1``.

Embedding tables and every kernel are decayed (the BERT recipe decays the
embeddings). In a list or string, the item ``default`` stands for
`DEFAULT_EXCLUDE`, so ``decay_exclude="default,(^|/)embedding$"`` (the tuple
`NO_EMBEDDING_DECAY`) also leaves every ``nn.Embed`` table undecayed, and
``"default,embeddings/"`` the whole BERT embeddings block. A value without
``default`` replaces the defaults: ``"embeddings/"`` alone would decay biases and
norms again. ``""`` or ``[]`` excludes nothing (every param is decayed).

The decision depends on the path only, never on the rank, so a model with
`scan_layers` (weights stacked [layers, ...] under one ``layers`` part) gets
exactly the mask of the unscanned one (``layers_<i>`` parts).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import jax
import numpy as np
from flax.core import meta

from bigjax import param_paths

DEFAULT_EXCLUDE: tuple[str, ...] = (r"(^|/)bias$", r"(^|/)[^/]*[Nn]orm(_?\d+)?/[^/]+$")
NO_EMBEDDING_DECAY: tuple[str, ...] = DEFAULT_EXCLUDE + (r"(^|/)embedding$",)

Exclude = str | Sequence[str] | None
# The rule before decay_exclude existed: no decay on params with fewer than 2 dims
# (which decays BERT's q/k/v biases and, with scan_layers, every norm param). Runs saved
# then resume with `decay_exclude="rank<2"`.
LEGACY_RANK_RULE = "rank<2"


def exclude_patterns(exclude: Exclude = None) -> tuple[str, ...]:
    """`config.optim.decay_exclude` as a tuple of regexes: None -> `DEFAULT_EXCLUDE`; a
    string is split at commas; the item ``default`` expands to `DEFAULT_EXCLUDE`.

    Raises ValueError naming `config.optim.decay_exclude` for an invalid regex.
    """
    if exclude is None:
        return DEFAULT_EXCLUDE
    if not isinstance(exclude, str):
        exclude = [str(item) for item in exclude]
    patterns = []
    for item in param_paths.regex_list(exclude, "config.optim.decay_exclude"):
        patterns.extend(DEFAULT_EXCLUDE if item == "default" else [item])
    return tuple(dict.fromkeys(patterns))  # unique, in order


def is_decayed(name: str, patterns: Sequence[str]) -> bool:
    """True when no pattern is found in the param path `name` ("a/b/c")."""
    return not any(re.search(p, name) for p in patterns)


def decay_mask(params, exclude: Exclude = None):
    """A tree of Python bools like `params`: True where weight decay and L1/L2 apply.

    `params` may hold arrays, shapes or boxed (`nn.Partitioned`) leaves; a boxed leaf
    gets one bool (a prefix of the tree, as `optax.masked` accepts). `exclude` is
    `config.optim.decay_exclude` (see `exclude_patterns`; None: the defaults).
    """
    if exclude == LEGACY_RANK_RULE:
        return jax.tree.map(lambda p: len(np.shape(meta.unbox(p))) > 1, params,
                            is_leaf=lambda x: isinstance(x, meta.AxisMetadata))
    patterns = exclude_patterns(exclude)
    return jax.tree_util.tree_map_with_path(
        lambda path, _: is_decayed(param_paths.path_name(path), patterns), params,
        is_leaf=lambda x: isinstance(x, meta.AxisMetadata))


def describe(params, exclude: Exclude = None) -> str:
    """One log line: how many arrays (and values) weight decay and L1/L2 apply to and skip,
    and the patterns in force."""
    flat = param_paths.flatten(meta.unbox(params))
    keep = dict(zip(flat, jax.tree.leaves(decay_mask(params, exclude)), strict=True))
    counts = {True: [0, 0], False: [0, 0]}
    for name, leaf in flat.items():
        counts[keep[name]][0] += 1
        counts[keep[name]][1] += int(np.prod(np.shape(leaf)))
    (n_yes, v_yes), (n_no, v_no) = counts[True], counts[False]
    return (f"weight decay / L1 / L2 apply to {n_yes} arrays ({v_yes:,} values) and skip "
            f"{n_no} ({v_no:,} values); decay_exclude="
            f"{exclude if exclude == LEGACY_RANK_RULE else list(exclude_patterns(exclude))}")
