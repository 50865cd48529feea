"""A character-level GPT on Tiny Shakespeare: nanoGPT's CPU recipe.

    python -m bigjax.main --config=configs/shakespeare_char.py --workdir=workdirs/shakespeare
    python -m bigjax.predict --workdir=workdirs/shakespeare "ROMEO:"
    ...:gpu                                         # nanoGPT's GPU recipe (6x384, context 256)
    ...:tuned                                       # the CPU recipe at 3x its learning rate
    ...:runlocal                                    # smoke run

nanoGPT's `train_shakespeare_char.py` with its CPU settings: 4 layers, 4 heads, 128-d,
context 64, batch 12, 2,000 iterations, no dropout, AdamW (lr 1e-3, betas 0.9/0.99,
weight decay 0.1 on matrices), warmup 100 then cosine to 1e-4, gradient clipping 1.0;
windows at every offset of the training text, as nanoGPT samples them. Reads tfds
`tiny_shakespeare` (offline from $BIGJAX_DATA_DIR/tiny_shakespeare/input.txt); the
character tokenizer is trained on the training split and saved in the workdir.

`tuned`: the same recipe with the peak learning rate tripled to 3e-3 (cosine to 3e-4):
nanoGPT's 1e-3 is low for a model this small; 2,000 steps reach a validation loss of about
1.76 instead of 1.90 (experiments/shakespeare).
"""

import _common
import ml_collections


def get_config(arg=None):
    args = _common.variant_args(arg, {"gpu", "tuned"})
    config = ml_collections.ConfigDict()
    config.data = dict(name="tiny_shakespeare", eval_split="validation",
                       lm=dict(tokenizer="char", context=64, train_stride=1))
    config.pp = dict(kind="lm")
    # Attention through bigjax's heads-first einsums: the same math, 3-4% faster a step on
    # XLA:CPU than jax.nn.dot_product_attention's layout (experiments/shakespeare).
    config.model = dict(name="gpt", variant="nano", max_len=64, dropout_rate=0.0,
                        attention_impl="heads_first")
    config.task = "causal_lm"
    config.optim = dict(learning_rate=1e-3, schedule="warmup_cosine", warmup_steps=100,
                        end_lr_factor=0.1, weight_decay=0.1, b2=0.99, grad_clip_norm=1.0)
    config.batch_size = 12
    # Ten steps per compiled call: at 35 ms a step, dispatch and logging per call show.
    config.steps_per_call = 10
    config.eval_batch_size = 64
    config.total_steps = 2000
    config.log_every_steps = 100
    config.eval_every_steps = 500
    config.checkpoint = dict(every_steps=500, keep=2)
    config.evals = dict(
        val=dict(type="metrics", split="validation", every_steps=500),
        # The model has 64 positions: a sample is a prompt and up to 60 new characters.
        samples=dict(type="samples", every_steps=1000, prompts=["ROMEO:", "JULIET:"],
                     max_new_tokens=56, temperature=0.8, top_k=200),
    )
    if "tuned" in args:
        config.optim.learning_rate = 3e-3
    if "gpu" in args:
        config.data.lm.context = 256
        # bfloat16 activations, float32 params: nanoGPT's bf16 autocast on GPU.
        config.model.update(variant="shakespeare", max_len=256, dropout_rate=0.2,
                            dtype="bfloat16", attention_impl=None)
        config.evals.samples.max_new_tokens = 240
        config.batch_size = 64
        config.total_steps = 5000
        config.steps_per_call = 1
    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=20)
        config.steps_per_call = 1
        config.data.lm.context = 32
        config.data.eval_examples = 64
        config.model.update(num_layers=2, hidden=64, heads=2, mlp_dim=128, max_len=32)
        config.evals.val.every_steps = 10
        config.evals.samples.update(every_steps=20, max_new_tokens=16)
    return config
