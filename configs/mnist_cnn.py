"""MNIST CNN, the source document's Keras model exactly, and a tuned variant.

    python -m bigjax.main --config=configs/mnist_cnn.py --workdir=DIR          # as written
    python -m bigjax.main --config=configs/mnist_cnn.py:tuned --workdir=DIR    # >= 99.0%
    ...:runlocal, ...:tuned,runlocal                                           # smoke runs
    python scripts/sweep.py --config=configs/mnist_cnn.py:adamw --workdir_root=DIR --seeds=3
        # the ablation of experiments/ablations: learning rate x weight decay, AdamW

As written: Conv 32 3x3 ReLU -> MaxPool 2x2 -> Flatten -> Dense 128 ReLU ->
Dense 10, Adam (Keras defaults: lr 1e-3), 5 epochs, batch 32, inputs in
[0, 1] (Keras gives 98.5%). Tuned: the same family (conv/pool then dense)
with a second conv stage, dropout, random 2-pixel shifts, AdamW with warmup +
cosine decay, 10 epochs. `adamw`: as written, with AdamW (decoupled weight decay, set by
the sweep) in place of Adam.
"""

import _common
import ml_collections

from bigjax.sweep_points import axis, product


def get_config(arg=None):
    args = _common.variant_args(arg, {"tuned", "adamw"})
    config = ml_collections.ConfigDict()
    config.data = dict(name="mnist", input_shape=(28, 28, 1))
    config.pp = dict(kind="image", normalize="zero_to_one")
    config.model = dict(name="cnn", num_classes=10, conv_features=(32,), kernel_size=3,
                        padding="VALID", pool_every=1, dense=(128,))
    config.task = "classification"
    config.optim = dict(name="adam", learning_rate=1e-3, eps=1e-7)  # Keras's Adam
    config.batch_size = 32
    config.eval_batch_size = 1000
    config.total_epochs = 5.0
    config.log_every_steps = 500
    config.eval_every_epochs = 1.0
    config.checkpoint = dict(every_steps=2000)

    if "adamw" in args:
        config.optim.name = "adamw"
    if "tuned" in args:
        config.model.update(conv_features=(32, 64), dropout_rate=0.3)
        config.pp.translate = 2
        config.optim.update(name="adamw", learning_rate=2e-3, schedule="warmup_cosine",
                            warmup_epochs=0.5, weight_decay=1e-4)
        config.batch_size = 64
        config.total_epochs = 10.0
    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=20)
    return config


def get_sweep(arg=None):
    """Learning rate x decoupled weight decay (AdamW's, times the learning rate): 3 x 3."""
    return product(axis("optim.learning_rate", [3e-4, 1e-3, 3e-3]),
                   axis("optim.weight_decay", [0.0, 0.1, 1.0]))
