"""SST-2 sentiment (tfds `glue/sst2`: 67,349 train sentences, 872 dev) with BERT.

    python -m bigjax.main --config=configs/sst2_bert.py --workdir=DIR         # fine-tune MiniLM
    python -m bigjax.main --config=configs/sst2_bert.py:tiny --workdir=DIR    # tiny, from scratch
    ...:runlocal, ...:tiny,runlocal                                           # smoke runs

Reports dev ("validation") accuracy, as GLUE does.
"""

import ml_collections


def get_config(arg=None):
    args = set((arg or "").split(","))
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = dict(name="glue/sst2", train_split="train", eval_split="validation",
                       data_dir=None, train_examples=None, eval_examples=None,
                       tokenizer=dict(vocab="minilm", max_len=64, lowercase=True))
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
    config.log_every_steps = 50
    config.eval_every_steps = 500
    config.eval_every_epochs = None
    config.checkpoint = dict(every_steps=250, keep=2, async_save=True)
    config.mesh = dict(data=-1, fsdp=1, tensor=1)

    if "tiny" in args:
        config.init_from = ""
        config.model.variant = "tiny"
        config.optim.learning_rate = 5e-4
        config.total_epochs = 2.0
    if "runlocal" in args:
        config.data.train_examples = 256
        config.data.eval_examples = 96
        config.data.tokenizer.max_len = 32
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
