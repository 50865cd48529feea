"""ResNet-50 v1.5 on ImageNet (tfds `imagenet2012`), the Flax ImageNet example's recipe:
SGD + Nesterov momentum 0.9, lr 0.1 per 256 examples, 5 warmup epochs then cosine, weight
decay 1e-4 on the conv and dense kernels only (not BatchNorm or biases), 90 epochs,
bfloat16 compute; the last BN of each block starts at zero.

    python -m bigjax.main --config=configs/imagenet_resnet50.py --workdir=gs://BUCKET/r50 \\
        --config.mesh.data=-1          # a pod: the same file, only the mesh changes
    ...:runlocal  -> a few steps at 64x64, for smoke tests (needs the data)

tfds needs ImageNet's manual download (see tfds's imagenet2012 page); the images are read
by index from tfds's ArrayRecord files, resized on read (shorter side 224, centre
crop), and in training cut by a random-resized crop (8%-100% of the area) on the host
and flipped on the device. Top-5 accuracy and the confusion matrix are in the eval.
"""

import _common
import ml_collections


def get_config(arg=None):
    args = _common.variant_args(arg, set())
    config = ml_collections.ConfigDict()
    config.data = dict(name="imagenet2012", eval_split="validation", image_size=224,
                       host_crop_scale=(0.08, 1.0), workers=8)
    config.pp = dict(kind="image", normalize="standardize", mean=_common.IMAGENET_MEAN,
                     std=_common.IMAGENET_STD, flip=True)
    config.model = dict(name="resnet", num_classes=1000, variant="resnet50", stem="imagenet",
                        dtype="bfloat16")
    config.task = "classification"
    config.optim = dict(name="sgd", learning_rate=0.1 * 1024 / 256, momentum=0.9,
                        nesterov=True, weight_decay=1e-4, schedule="warmup_cosine",
                        warmup_epochs=5.0)
    config.batch_size = 1024
    config.eval_batch_size = 1000
    config.total_epochs = 90.0
    config.evals = dict(val=dict(type="metrics", every_epochs=1.0, plot_confusion=True))
    config.log_every_steps = 100
    config.checkpoint = dict(every_steps=2000, keep=3)
    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=6)
        config.data.update(image_size=64, train_examples=256, eval_examples=64, workers=0)
        config.batch_size = 32
        config.eval_batch_size = 32
    return config
