"""Preprocessing that runs on device inside the jit-compiled steps.

`make(config.pp, tokenizer)` returns `fn(batch, rng, train) -> batch` with an
`inputs` entry; `config.pp.kind` names the maker in `KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import jax
import ml_collections

from bigjax.pp import image, lm, text, translation


class Preprocess(Protocol):
    """`(batch of numpy/jax arrays, rng or None, train) -> batch` with `inputs` added;
    pure and jit-able. `rng=None` is used for shape inference (a fixed key)."""

    def __call__(self, batch: dict, rng: jax.Array | None, train: bool) -> dict: ...


def _needs_tokenizer(maker):
    def make_text(pp: ml_collections.ConfigDict, tokenizer) -> Preprocess:
        if tokenizer is None:
            raise ValueError(f"config.pp.kind={pp.kind!r} needs config.data.tokenizer.")
        return maker(pp, tokenizer)

    return make_text


KINDS: dict[str, Callable[[ml_collections.ConfigDict, object], Preprocess]] = {
    "image": lambda pp, tokenizer: image.make_preprocess(pp),
    "text": _needs_tokenizer(text.make_preprocess),
    "text_mlm": _needs_tokenizer(text.make_preprocess),
    "lm": lambda pp, tokenizer: lm.next_token_inputs,
    "translation": lambda pp, tokenizer: translation.teacher_forcing,
}


def make(pp: ml_collections.ConfigDict, tokenizer=None) -> Preprocess:
    """The preprocessing function for `pp.kind`; text kinds need the data's `tokenizer`."""
    if pp.kind not in KINDS:
        raise ValueError(f"Unknown config.pp.kind {pp.kind!r}; known: {sorted(KINDS)}.")
    return KINDS[pp.kind](pp, tokenizer)
