"""A GPT on Tiny Shakespeare with a byte-level BPE tokenizer trained on its training text.

    python -m bigjax.main --config=configs/shakespeare_bpe.py --workdir=workdirs/shakespeare_bpe
    python -m bigjax.predict --workdir=workdirs/shakespeare_bpe "ROMEO:" --temperature=0.8
    ...:runlocal                                   # smoke run

The nanoGPT-size model of configs/shakespeare_char.py (4 layers, 4 heads, 128-d), with a
1,024-token BPE vocabulary (about 3 characters a token, so a 128-token context sees
about the text of a 384-character one), dropout 0.1 against the small corpus, 3,000
steps of 16 windows. Reports validation perplexity, bits per token and bits per byte
(comparable with the character model's bits per character: the text is ASCII).
"""

import _common
import ml_collections


def get_config(arg=None):
    args = _common.variant_args(arg, set())
    config = ml_collections.ConfigDict()
    config.data = dict(name="tiny_shakespeare", eval_split="validation",
                       lm=dict(tokenizer="bpe", vocab_size=1024, context=128, train_stride=1))
    config.pp = dict(kind="lm")
    config.model = dict(name="gpt", variant="nano", max_len=128, dropout_rate=0.1)
    config.task = "causal_lm"
    config.optim = dict(learning_rate=1e-3, schedule="warmup_cosine", warmup_steps=100,
                        end_lr_factor=0.1, weight_decay=0.1, b2=0.99, grad_clip_norm=1.0)
    config.batch_size = 16
    config.eval_batch_size = 64
    config.total_steps = 3000
    config.log_every_steps = 100
    config.checkpoint = dict(every_steps=500, keep=2)
    config.evals = dict(
        val=dict(type="metrics", split="validation", every_steps=500),
        samples=dict(type="samples", every_steps=1500, prompts=["ROMEO:", "JULIET:"],
                     max_new_tokens=100, temperature=0.8, top_k=200),
    )
    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=20)
        config.data.lm.update(vocab_size=300, context=32)
        config.data.eval_examples = 64
        config.model.update(num_layers=2, hidden=64, heads=2, mlp_dim=128, max_len=32)
        config.evals.val.every_steps = 10
        config.evals.samples.update(every_steps=20, max_new_tokens=16)
    return config
