"""Masked-LM pretraining of a BERT from scratch on the IMDb review texts.

    python -m bigjax.main --config=configs/mlm_bert.py --workdir=workdirs/mlm_tiny
    # then fine-tune from it:
    python -m bigjax.main --config=configs/imdb_bert.py:tiny --workdir=workdirs/imdb_from_mlm \
        --config.init_from=workdirs/mlm_tiny
    ...:runlocal                                   # smoke run

Dynamic masking: each step picks 15% of the real tokens afresh (80% [MASK],
10% random, 10% unchanged); the MLM head's decoder is tied to the word
embeddings, and computes vocabulary logits only at the picked positions
(`pp.max_predictions`). Trains on the 25k train reviews (labels unused); evaluates MLM
loss, accuracy and perplexity on test reviews with fixed masks.
"""

import _common
import ml_collections


def get_config(arg=None):
    args = _common.variant_args(arg, set())
    config = ml_collections.ConfigDict()
    config.data = dict(name="imdb_reviews", eval_examples=2000, tokenizer=dict(max_len=128))
    # The MLM head runs on at most 32 picked tokens per row (15% of 126 is ~19; a
    # row has more than 32 picks 0.08% of the time, and then keeps a random 32).
    config.pp = dict(kind="text_mlm", mask_prob=0.15, max_predictions=32)
    config.model = dict(name="bert_mlm", variant="tiny", dropout_rate=0.1,
                        attention_dropout_rate=0.1, vocab_multiple=1024)
    config.init_from = ""
    config.task = "mlm"
    config.optim = dict(learning_rate=1e-3, schedule="warmup_linear", warmup_epochs=0.25,
                        weight_decay=0.01, grad_clip_norm=1.0)
    config.batch_size = 64
    config.eval_batch_size = 250
    config.total_epochs = 5.0
    config.log_every_steps = 50
    config.eval_every_epochs = 1.0
    config.checkpoint = dict(every_steps=250, keep=2)

    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=6, examples=256, max_len=32)
        config.data.eval_examples = 64
        config.pp.max_predictions = 10
    return config
