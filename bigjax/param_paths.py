"""Parameter paths as "a/b/c" strings (e.g. "bert/encoder/layers_0/mlp/wi/kernel")."""

from __future__ import annotations

from collections.abc import Sequence

import jax


def path_name(path: Sequence) -> str:
    """A `jax.tree_util` key path joined by "/" (dict keys and sequence indices alike)."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def flatten(tree) -> dict[str, object]:
    """{path name: leaf} for every leaf of `tree`."""
    return {path_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
