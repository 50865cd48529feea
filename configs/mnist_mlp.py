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
    config.seed = 0
    config.data = dict(name="mnist", train_split="train", eval_split="test", data_dir=None,
                       input_shape=(28, 28, 1))
    config.pp = dict(kind="image", normalize="minus_one_to_one", translate=0)
    config.model = dict(name="mlp", num_classes=10, hidden=(128, 64), dropout_rate=0.0,
                        dtype="float32", param_dtype="float32")
    config.task = "classification"
    config.label_smoothing = 0.0
    config.optim = dict(name="adam", learning_rate=1e-3, schedule="constant", warmup_steps=None,
                        warmup_epochs=None, weight_decay=0.0, l1=0.0, l2=0.0,
                        grad_clip_norm=None, momentum=0.9,
                        # Regexes of params without weight decay / L1 / L2 (None: biases and
                        # norm params); optimizer first moment dtype (None: the params').
                        decay_exclude=None, mu_dtype=None)
    config.batch_size = 64
    config.eval_batch_size = 1000
    config.total_steps = None
    config.total_epochs = 10.0
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
        config.pp.translate = 2
        config.optim.update(name="adamw", learning_rate=2e-3, schedule="warmup_cosine",
                            warmup_epochs=1.0, weight_decay=1e-4)
        config.total_epochs = 30.0
    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=20)
    return config
