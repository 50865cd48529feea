"""Preprocessing that runs on device inside the jit-compiled steps."""

from __future__ import annotations

import ml_collections

from bigjax.pp import image, text


def make(pp: ml_collections.ConfigDict, tokenizer=None):
    """`fn(batch, rng, train) -> batch` with an `inputs` entry, chosen by `pp.kind`.

    Text kinds need the data's `tokenizer` (for its special token ids).
    """
    if pp.kind == "image":
        return image.make_preprocess(pp)
    if pp.kind in ("text", "text_mlm"):
        if tokenizer is None:
            raise ValueError(f"config.pp.kind={pp.kind!r} needs config.data.tokenizer.")
        return text.make_preprocess(pp, tokenizer)
    raise ValueError(f"Unknown config.pp.kind {pp.kind!r}; known: image, text, text_mlm.")
