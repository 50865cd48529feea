"""MNIST MLP, the source document's recipe exactly, and a tuned variant.

    python -m bigjax.main --config=configs/mnist_mlp.py --workdir=DIR          # as written
    python -m bigjax.main --config=configs/mnist_mlp.py:tuned --workdir=DIR    # >= 98.3%
    ...:runlocal, ...:tuned,runlocal                                           # smoke runs

As written: 784 -> 128 -> 64 -> 10 with ReLU, Adam lr 1e-3, batch 64,
10 epochs, inputs normalized to [-1, 1] (the document reports 98.3%; its own
PyTorch code gives 97.2%). Tuned: the same architecture trained on random
2-pixel shifts with AdamW, warmup + cosine decay, 30 epochs: 98.56-98.57%
over seeds 0-2. Dropout on top of the shifts costs this small net accuracy
(rate 0.2: 98.30-98.46% over seeds 0-2; rate 0.1: 98.42-98.54% over seeds 0-1).
"""

import _common
import ml_collections


def get_config(arg=None):
    args = _common.variant_args(arg, {"tuned"})
    config = ml_collections.ConfigDict()
    config.data = dict(name="mnist", input_shape=(28, 28, 1))
    config.pp = dict(kind="image", normalize="minus_one_to_one")
    config.model = dict(name="mlp", num_classes=10, hidden=(128, 64))
    config.task = "classification"
    config.optim = dict(name="adam", learning_rate=1e-3)
    config.batch_size = 64
    config.eval_batch_size = 1000
    config.total_epochs = 10.0
    config.log_every_steps = 500
    config.eval_every_epochs = 1.0
    config.checkpoint = dict(every_steps=2000)

    if "tuned" in args:
        config.pp.translate = 2
        config.optim.update(name="adamw", learning_rate=2e-3, schedule="warmup_cosine",
                            warmup_epochs=1.0, weight_decay=1e-4)
        config.total_epochs = 30.0
    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=20)
    return config
