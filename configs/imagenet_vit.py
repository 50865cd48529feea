"""ViT-S/16 on ImageNet (tfds `imagenet2012`), big_vision's "better plain ViT baselines"
recipe (Beyer et al. 2022: 76.5% top-1 in 90 epochs): global average pooling, AdamW
(b2 0.999) at lr 1e-3 for batch 1024, 10k warmup steps then cosine, weight decay 1e-4
per step (0.1 x lr in optax's terms), gradient clipping at 1, random-resized crops,
flips and mixup 0.2, bfloat16 compute. (Their RandAugment(2, 10) is not in bigjax.)

    python -m bigjax.main --config=configs/imagenet_vit.py --workdir=gs://BUCKET/vit \\
        --config.mesh.fsdp=-1          # a pod: the same file, only the mesh changes
    ...:b16       -> ViT-B/16 (86.6M params)
    ...:runlocal  -> a few steps at 64x64, for smoke tests (needs the data)
"""

import _common
import ml_collections


def get_config(arg=None):
    args = _common.variant_args(arg, {"b16"})
    config = ml_collections.ConfigDict()
    config.data = dict(name="imagenet2012", eval_split="validation", image_size=224,
                       host_crop_scale=(0.05, 1.0), workers=8)
    config.pp = dict(kind="image", normalize="minus_one_to_one", flip=True, mixup=0.2)
    config.model = dict(name="vit", num_classes=1000, variant="S/16", pool="gap",
                        dtype="bfloat16", scan_layers=True)
    config.task = "classification"
    config.optim = dict(name="adamw", learning_rate=1e-3, b2=0.999, weight_decay=0.1,
                        schedule="warmup_cosine", warmup_steps=10_000, grad_clip_norm=1.0)
    config.batch_size = 1024
    config.eval_batch_size = 1000
    config.total_epochs = 90.0
    config.evals = dict(val=dict(type="metrics", every_epochs=1.0, plot_confusion=True))
    config.log_every_steps = 100
    config.checkpoint = dict(every_steps=2000, keep=3)
    if "b16" in args:
        config.model.variant = "B/16"
    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=6)
        config.model.variant = "Ti/16"
        config.data.update(image_size=64, train_examples=256, eval_examples=64, workers=0)
        config.batch_size = 32
        config.eval_batch_size = 32
    return config
