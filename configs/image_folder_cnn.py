"""A CNN on your own images: a folder (or .tar) of <split>/<class>/<image> files.

    python -m bigjax.main --config=configs/image_folder_cnn.py --workdir=DIR \\
        --config.data.path=PATH --config.model.num_classes=N
    ...:runlocal  -> a few steps, for smoke tests

The images are decoded once into ArrayRecord files (config.data.prepared_dir) and read by
index. The default shape fits the offline CIFAR-10 JPEGs
(../shared/data/cifar10_jpg/cifar10_jpg.tar: 10 classes, 32x32 RGB); set
config.data.input_shape to your images' (height, width, channels).
"""

import _common
import ml_collections


def get_config(arg=None):
    args = _common.variant_args(arg, set())
    config = ml_collections.ConfigDict()
    config.data = dict(name="image_folder", path=None, input_shape=(32, 32, 3))
    config.pp = dict(kind="image", translate=2)
    config.model = dict(name="cnn", num_classes=10, conv_features=(32, 64, 128), padding="SAME",
                        pool_every=1, dense=(256,), dropout_rate=0.2)
    config.task = "classification"
    config.optim = dict(learning_rate=2e-3, schedule="warmup_cosine", warmup_epochs=1.0,
                        weight_decay=1e-4)
    config.batch_size = 128
    config.eval_batch_size = 500
    config.total_epochs = 20.0
    config.eval_every_epochs = 5.0
    config.log_every_steps = 100
    config.checkpoint = dict(every_steps=1000)
    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=20)
        config.batch_size = 32
        config.eval_batch_size = 64
    return config
