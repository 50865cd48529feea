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
    config.seed = 0
    config.data = dict(name="imdb_reviews", train_split="train", eval_split="test",
                       data_dir=None, train_examples=None, eval_examples=2000,
                       tokenizer=dict(vocab="minilm", max_len=128, lowercase=True))
    # The MLM head runs on at most 32 picked tokens per row (15% of 126 is ~19; a
    # row has more than 32 picks 0.08% of the time, and then keeps a random 32).
    config.pp = dict(kind="text_mlm", mask_prob=0.15, max_predictions=32)
    config.model = dict(name="bert_mlm", variant="tiny", dropout_rate=0.1,
                        attention_dropout_rate=0.1, dtype="float32", param_dtype="float32",
                        scan_layers=False, remat=False, vocab_multiple=1024)
    config.init_from = ""
    config.task = "mlm"
    config.optim = dict(name="adamw", learning_rate=1e-3, schedule="warmup_linear",
                        warmup_steps=None, warmup_epochs=0.25, weight_decay=0.01, l1=0.0, l2=0.0,
                        grad_clip_norm=1.0, momentum=0.9, frozen=None, layer_lr_decay=None,
                        # Regexes of params without weight decay / L1 / L2 (None: biases and
                        # norm params); optimizer first moment dtype (None: the params').
                        decay_exclude=None, mu_dtype=None)
    config.batch_size = 64
    config.eval_batch_size = 250
    config.total_steps = None
    config.total_epochs = 5.0
    config.steps_per_call = 1
    # Microbatches per step (gradients summed inside the step): the same update as the
    # whole batch with 1/k of the activation memory.
    config.grad_accum_steps = 1
    # Stop (like a NaN loss) when a step's loss exceeds this times the lowest loss so far;
    # None: only NaN/Inf stop the run.
    config.divergence_factor = None
    config.log_every_steps = 50
    config.eval_every_steps = None
    config.eval_every_epochs = 1.0
    config.checkpoint = dict(every_steps=250, keep=2, async_save=True)
    config.mesh = dict(data=-1, fsdp=1, tensor=1)

    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=6, examples=256, max_len=32)
        config.data.eval_examples = 64
        config.pp.max_predictions = 10
    return config
