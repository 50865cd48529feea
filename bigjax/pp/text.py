"""On-device text preprocessing: token ids as model inputs, and dynamic MLM masking."""

from __future__ import annotations

import jax
import ml_collections

from bigjax.pp.tokenizer import WordPieceTokenizer
from bigjax.tasks.mlm_masking import mask_tokens


def make_preprocess(pp: ml_collections.ConfigDict, tokenizer: WordPieceTokenizer):
    """`fn(batch, rng, train) -> batch` with `inputs: int32 [batch, length]`.

    `pp.kind == "text"`: the inputs are `input_ids`. `"text_mlm"`: 15% of the
    real tokens are chosen afresh every step (80% [MASK], 10% random, 10%
    kept), adding `mlm_targets` and `mlm_weights`; at eval the evaluator passes a
    fixed key per batch. With `rng=None` (shape inference) a fixed key is used.
    """
    if pp.kind == "text":
        return lambda batch, rng, train: {**batch, "inputs": batch["input_ids"]}

    def mlm(batch: dict, rng: jax.Array, train: bool) -> dict:
        if rng is None:
            rng = jax.random.PRNGKey(0)
        masked, targets, weights = mask_tokens(
            rng, batch["input_ids"], vocab_size=tokenizer.vocab_size, mask_id=tokenizer.mask_id,
            special_ids=tokenizer.special_ids, mask_prob=pp.get("mask_prob", 0.15),
            pad_id=tokenizer.pad_id)
        return {**batch, "inputs": masked, "mlm_targets": targets, "mlm_weights": weights}

    return mlm
