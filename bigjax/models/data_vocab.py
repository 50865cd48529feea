"""Sizing a token model's vocabulary from the data's tokenizer (GPT, the Transformer)."""

from __future__ import annotations

import flax.linen as nn


def with_data_vocab(model: nn.Module, vocab_size: int) -> nn.Module:
    """`model` (whose `config()` resolves a `vocab_size`) sized for a tokenizer of
    `vocab_size` tokens: that vocabulary when neither the config nor the variant sets one;
    else the model's own, which must hold every token id (ValueError otherwise)."""
    own = model.config()["vocab_size"]
    if own is None:
        return model.clone(vocab_size=vocab_size)
    if own < vocab_size:
        raise ValueError(f"config.model.vocab_size={own} is smaller than the tokenizer's "
                         f"{vocab_size} tokens; raise it or leave it None.")
    return model
