"""Preprocessing that runs on device inside the jit-compiled steps."""

from __future__ import annotations

import ml_collections

from bigjax.pp import image


def make(pp: ml_collections.ConfigDict):
    """`fn(batch, rng, train) -> batch` with an `inputs` entry, chosen by `pp.kind`."""
    kinds = {"image": image.make_preprocess}
    if pp.kind not in kinds:
        raise ValueError(f"Unknown config.pp.kind {pp.kind!r}; known: {sorted(kinds)}.")
    return kinds[pp.kind](pp)
