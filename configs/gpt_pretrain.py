"""Pretraining GPT-2 and Llama-style models: the configs researchers launch on pods.

    python -m bigjax.main --config=configs/gpt_pretrain.py:gpt2 --workdir=gs://BUCKET/gpt2 \\
        --config.data.name=text_folder --config.data.path=/data/corpus \\
        --config.data.lm.tokenizer=/models/gpt2 --config.model.vocab_size=50257
        # (a folder holding a tokenizer.json, and the model sized for its vocabulary)
    ...:gpt2-medium   ...:llama-1b                     # the other sizes
    ...:gpt2 --dry_run --config.mesh.fsdp=2 --config.mesh.tensor=4   # bytes per device
    ...:runlocal                                       # a CPU smoke run of the same setup
    --config.init_from=/models/gpt2                    # continue a Hugging Face checkpoint

Every variant: bfloat16 activations over float32 params, scanned layers with remat
(recomputing everything: GPT-2 medium at batch 64 x 1024 needs 6.8 GB of temporaries
per device on a 2x4 mesh this way, 15.7 GB keeping the projections), FSDP over every
device by default (`mesh.fsdp=-1`; add `mesh.tensor` for tensor parallelism), the
vocabulary padded to a
multiple of 128 (so the tensor axis divides it), AdamW with GPT-2/Llama settings
(b2 0.95, weight decay 0.1, clipping 1.0), warmup and cosine decay to 10%. The default
data is Tiny Shakespeare with an 8,192-token BPE trained on it, so that every variant
runs (and dry-runs) offline; point data at your corpus and tokenizer for real runs.
"""

import _common
import ml_collections

VARIANTS = {"gpt2": 1024, "gpt2-medium": 1024, "llama-1b": 2048}  # name -> context


def get_config(arg=None):
    args = _common.variant_args(arg, set(VARIANTS))
    chosen = [a for a in args if a in VARIANTS]
    if len(chosen) > 1:
        raise ValueError(f"Pick one model size of {sorted(VARIANTS)}, not {sorted(chosen)}.")
    variant = chosen[0] if chosen else "gpt2"
    context = VARIANTS[variant]
    config = ml_collections.ConfigDict()
    config.data = dict(name="tiny_shakespeare", eval_split="validation",
                       lm=dict(tokenizer="bpe", vocab_size=8192, context=context))
    config.pp = dict(kind="lm")
    # The vocabulary of the tokenizer trained here (set 50257 for GPT-2's own tokenizer).
    config.model = dict(name="gpt", variant=variant, vocab_size=8192, max_len=context,
                        dtype="bfloat16",
                        scan_layers=True, remat=True,
                        remat_policy="nothing_saveable", vocab_multiple=128)
    config.task = "causal_lm"
    config.optim = dict(learning_rate=6e-4 if variant.startswith("gpt2") else 3e-4,
                        schedule="warmup_cosine", warmup_steps=2000, end_lr_factor=0.1,
                        weight_decay=0.1, b2=0.95, grad_clip_norm=1.0)
    config.mesh = dict(data=1, fsdp=-1, tensor=1)
    config.batch_size = 64
    config.eval_batch_size = 64
    config.total_steps = 100_000
    config.log_every_steps = 50
    config.checkpoint = dict(every_steps=1000, keep=3)
    config.evals = dict(
        val=dict(type="metrics", split="validation", every_steps=1000, examples=512),
        samples=dict(type="samples", every_steps=5000, prompts=["ROMEO:"],
                     max_new_tokens=128, temperature=0.8, top_k=200),
    )
    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=20)
        config.data.lm.update(vocab_size=512, context=64)
        config.data.eval_examples = 32
        config.model.update(vocab_size=512, max_len=64, num_layers=2, hidden=64, heads=4,
                            mlp_dim=128, kv_heads=2 if variant == "llama-1b" else None)
        config.batch_size = 8
        config.eval_batch_size = 16
        config.evals.val.update(every_steps=10, examples=32)
        config.evals.samples.update(every_steps=20, max_new_tokens=8)
    return config
