"""Parameter paths as "a/b/c" strings (e.g. "bert/encoder/layers_0/mlp/wi/kernel")."""

from __future__ import annotations

import re
from collections.abc import Sequence

import jax


def path_name(path: Sequence) -> str:
    """A `jax.tree_util` key path joined by "/" (dict keys and sequence indices alike)."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def flatten(tree) -> dict[str, object]:
    """{path name: leaf} for every leaf of `tree`."""
    return {path_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def regex_list(value: str | Sequence[str] | None, key: str) -> tuple[str, ...]:
    """A config value naming params by regexes (a comma-separated string or a list) as a
    tuple of stripped, non-empty patterns; an invalid one is a ValueError naming `key`
    (e.g. "config.optim.frozen"). A pattern with a comma (`a{1,3}`) must come in a list."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    patterns = tuple(p for p in (str(i).strip() for i in items) if p)
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"{key}: {p!r} is not a regular expression ({e}).") from None
    return patterns
