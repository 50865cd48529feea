"""The embedded default: a small CNN on scikit-learn's 8x8 digits (no download).

    python -m bigjax.main --config=configs/digits_cnn.py --workdir=/tmp/digits
    ...:runlocal  -> a few steps, for smoke tests
    ...:evals     -> named evaluators: test metrics, test ROC AUC (gathered per-example
                     outputs) and train-split metrics, each on its own cadence
"""

import _common
import ml_collections


def get_config(arg=None):
    args = _common.variant_args(arg, {"evals"})
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = dict(name="digits", train_split="train", eval_split="test", data_dir=None,
                       input_shape=(8, 8, 1))
    config.pp = dict(kind="image", normalize="zero_to_one", translate=0)
    config.model = dict(name="cnn", num_classes=10, conv_features=(32, 64), kernel_size=3,
                        padding="SAME", pool_every=2, dense=(128,), dropout_rate=0.1,
                        norm=None, dtype="float32", param_dtype="float32")
    config.task = "classification"
    config.label_smoothing = 0.0
    config.optim = dict(name="adamw", learning_rate=3e-3, schedule="warmup_cosine",
                        warmup_steps=None, warmup_epochs=1.0, weight_decay=1e-4, l1=0.0, l2=0.0,
                        grad_clip_norm=None, momentum=0.9,
                        # Regexes of params without weight decay / L1 / L2 (None: biases and
                        # norm params); optimizer first moment dtype (None: the params').
                        decay_exclude=None, mu_dtype=None)
    config.batch_size = 64
    config.eval_batch_size = 128
    config.total_steps = None
    config.total_epochs = 30.0
    config.steps_per_call = 1
    # Microbatches per step (gradients summed inside the step): the same update as the
    # whole batch with 1/k of the activation memory.
    config.grad_accum_steps = 1
    # Stop (like a NaN loss) when a step's loss exceeds this times the lowest loss so far;
    # None: only NaN/Inf stop the run.
    config.divergence_factor = None
    config.log_every_steps = 100
    config.eval_every_steps = None
    config.eval_every_epochs = 10.0
    config.checkpoint = dict(every_steps=200, keep=3, async_save=True)
    config.mesh = dict(data=-1, fsdp=1, tensor=1)

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
