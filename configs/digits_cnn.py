"""The embedded default: a small CNN on scikit-learn's 8x8 digits (no download).

    python -m bigjax.main --config=configs/digits_cnn.py --workdir=/tmp/digits
    ...:runlocal  -> a few steps, for smoke tests
    ...:evals     -> named evaluators: test metrics, test ROC AUC (gathered per-example
                     outputs) and train-split metrics, each on its own cadence

    python scripts/sweep.py --config=configs/digits_cnn.py --workdir_root=/tmp/digits_sweep
    ...:runlocal  -> the same 2x2 sweep (learning rate x width), seconds per point
"""

import _common
import ml_collections

from bigjax.sweep_points import axis, product


def get_config(arg=None):
    args = _common.variant_args(arg, {"evals"})
    config = ml_collections.ConfigDict()
    config.data = dict(name="digits", input_shape=(8, 8, 1))
    config.pp = dict(kind="image")
    config.model = dict(name="cnn", num_classes=10, conv_features=(32, 64), padding="SAME",
                        pool_every=2, dropout_rate=0.1)
    config.task = "classification"
    config.optim = dict(learning_rate=3e-3, schedule="warmup_cosine", warmup_epochs=1.0,
                        weight_decay=1e-4)
    config.batch_size = 64
    config.eval_batch_size = 128
    config.total_epochs = 30.0
    config.eval_every_epochs = 10.0
    config.checkpoint = dict(every_steps=200)

    if "evals" in args:
        config.evals = dict(
            test=dict(type="metrics", split="test", every_epochs=10.0),
            test_auc=dict(type="predictions", split="test", every_epochs=15.0),
            train=dict(type="metrics", split="train", examples=360, every_epochs=5.0),
        )
    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=20)
        if "evals" in args:
            config.evals.test.update(every_epochs=None, every_steps=10)
            config.evals.test_auc.update(every_epochs=None, every_steps=20)
            config.evals.train.update(every_epochs=None, every_steps=5)
    return config


def get_sweep(arg=None):
    """Learning rate x width of the convolutions: 2 x 2 points."""
    return product(axis("optim.learning_rate", [1e-3, 3e-3]),
                   axis("model.conv_features", [(16, 32), (32, 64)]))
