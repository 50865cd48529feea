"""MNIST CNN, the source document's Keras model exactly, and a tuned variant.

    python -m bigjax.main --config=configs/mnist_cnn.py --workdir=DIR          # as written
    python -m bigjax.main --config=configs/mnist_cnn.py:tuned --workdir=DIR    # >= 99.0%
    ...:runlocal, ...:tuned,runlocal                                           # smoke runs

As written: Conv 32 3x3 ReLU -> MaxPool 2x2 -> Flatten -> Dense 128 ReLU ->
Dense 10, Adam (Keras defaults: lr 1e-3), 5 epochs, batch 32, inputs in
[0, 1] (Keras gives 98.5%). Tuned: the same family (conv/pool then dense)
with a second conv stage, dropout, random 2-pixel shifts, AdamW with warmup +
cosine decay, 10 epochs.
"""

import _common
import ml_collections


def get_config(arg=None):
    args = _common.variant_args(arg, {"tuned"})
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = dict(name="mnist", train_split="train", eval_split="test", data_dir=None,
                       input_shape=(28, 28, 1))
    config.pp = dict(kind="image", normalize="zero_to_one", translate=0)
    config.model = dict(name="cnn", num_classes=10, conv_features=(32,), kernel_size=3,
                        padding="VALID", pool_every=1, dense=(128,), dropout_rate=0.0,
                        norm=None, dtype="float32", param_dtype="float32")
    config.task = "classification"
    config.label_smoothing = 0.0
    config.optim = dict(name="adam", learning_rate=1e-3, schedule="constant", warmup_steps=None,
                        warmup_epochs=None, weight_decay=0.0, l1=0.0, l2=0.0,
                        grad_clip_norm=None, momentum=0.9, eps=1e-7,
                        # Regexes of params without weight decay / L1 / L2 (None: biases and
                        # norm params); optimizer first moment dtype (None: the params').
                        decay_exclude=None, mu_dtype=None)
    config.batch_size = 32
    config.eval_batch_size = 1000
    config.total_steps = None
    config.total_epochs = 5.0
    config.steps_per_call = 1
    # Microbatches per step (gradients summed inside the step): the same update as the
    # whole batch with 1/k of the activation memory.
    config.grad_accum_steps = 1
    # Stop (like a NaN loss) when a step's loss exceeds this times the lowest loss so far;
    # None: only NaN/Inf stop the run.
    config.divergence_factor = None
    config.log_every_steps = 500
    config.eval_every_steps = None
    config.eval_every_epochs = 1.0
    config.checkpoint = dict(every_steps=2000, keep=3, async_save=True)
    config.mesh = dict(data=-1, fsdp=1, tensor=1)

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
