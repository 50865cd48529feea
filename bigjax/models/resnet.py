"""ResNet v1.5 (He et al. 2016, with the stride on the 3x3 conv of the bottleneck, as
torchvision and the Flax ImageNet example): ResNet-10/18/34 (basic blocks; ResNet-10, one
block per stage, is the small one for tests and quick ablations) and ResNet-50/101/152
(bottleneck blocks), with the ImageNet stem or a CIFAR stem.

    inputs [batch, H, W, C]
    -> stem: "imagenet": Conv 7x7/2 (width) -> BN -> ReLU -> MaxPool 3x3/2   [H/4, W/4]
             "cifar":    Conv 3x3/1 (width) -> BN -> ReLU                    [H, W]
    -> stage s = 0..3: stage_sizes[s] blocks of width * 2**s channels (x4 out for a
       bottleneck), the first block of stages 1..3 with stride 2 and a 1x1 projection
       shortcut (+ BN)
    -> global average pool -> Dense(num_classes)

BatchNorm keeps running averages in the `batch_stats` collection (train: batch
statistics; eval: the averages). Under `jit` on a mesh the statistics are over the
whole global batch, i.e. synchronised over the data axis, so 1 and 8 devices compute
the same step. `zero_init_residual` starts each block's last BN scale at 0 (every
block the identity at init: Goyal et al. 2017).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp

# variant -> (blocks per stage, block kind)
VARIANTS: dict[str, tuple[tuple[int, ...], str]] = {
    "resnet10": ((1, 1, 1, 1), "basic"),
    "resnet18": ((2, 2, 2, 2), "basic"),
    "resnet34": ((3, 4, 6, 3), "basic"),
    "resnet50": ((3, 4, 6, 3), "bottleneck"),
    "resnet101": ((3, 4, 23, 3), "bottleneck"),
    "resnet152": ((3, 8, 36, 3), "bottleneck"),
}
STEMS = ("imagenet", "cifar")


class _Block(nn.Module):
    """One residual block; `x: [batch, h, w, c]` -> `[batch, h/stride, w/stride, out]`."""

    kind: str  # "basic" or "bottleneck"
    width: int
    stride: int
    norm: callable
    conv: callable

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        s = (self.stride, self.stride)
        if self.kind == "basic":
            out = self.width
            y = nn.relu(self.norm(name="norm_0")(self.conv(self.width, (3, 3), s,
                                                             name="conv_0")(x)))
            y = self.norm(name="norm_1", last=True)(self.conv(self.width, (3, 3),
                                                             name="conv_1")(y))
        else:
            out = 4 * self.width
            y = nn.relu(self.norm(name="norm_0")(self.conv(self.width, (1, 1),
                                                             name="conv_0")(x)))
            y = nn.relu(self.norm(name="norm_1")(self.conv(self.width, (3, 3), s,
                                                             name="conv_1")(y)))
            y = self.norm(name="norm_2", last=True)(self.conv(out, (1, 1), name="conv_2")(y))
        if x.shape[-1] != out or self.stride != 1:
            x = self.norm(name="shortcut_norm")(self.conv(out, (1, 1), s, name="shortcut")(x))
        return nn.relu(x + y)


class ResNet(nn.Module):
    """`inputs: [batch, height, width, channels]` (normalised floats) -> `(logits [batch,
    num_classes] float32, {"pre_logits": [batch, final channels]})`.

    Attributes:
      num_classes: width of the output layer.
      variant: depth and block kind: resnet18, resnet34, resnet50, resnet101, resnet152.
      width: channels of the stem and the first stage (each stage doubles it).
      stem: "imagenet" (7x7 stride-2 conv + 3x3 stride-2 max pool) or "cifar" (one 3x3
        stride-1 conv, for 32x32 images).
      zero_init_residual: start each block's last BatchNorm scale at 0.
      bn_momentum: decay of the BatchNorm running averages.
      bn_epsilon: BatchNorm's epsilon.
      dtype: compute dtype of the activations (the logits are cast to float32).
      param_dtype: dtype of the params.
    """

    CONFIG_CHOICES: ClassVar[dict] = {"variant": tuple(VARIANTS), "stem": STEMS}
    HEAD_MODULES: ClassVar[tuple[str, ...]] = ("head",)

    num_classes: int
    variant: str = "resnet50"
    width: int = 64
    stem: str = "imagenet"
    zero_init_residual: bool = True
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def make_conv(self):
        """`conv(features, kernel, strides=(1, 1), name=None) -> nn.Conv`: no bias, He
        normal (fan out) init, padding k // 2 (so a stride halves the size)."""

        def conv(features, kernel, strides=(1, 1), name=None):
            return nn.Conv(features, kernel, strides, padding="SAME" if kernel == (1, 1) else
                           [(k // 2, k // 2) for k in kernel], use_bias=False,
                           kernel_init=nn.initializers.variance_scaling(2.0, "fan_out",
                                                                        "normal"),
                           dtype=self.dtype, param_dtype=self.param_dtype, name=name)

        return conv

    def make_norm(self, train: bool):
        """`norm(name, last=False) -> nn.BatchNorm`; a block's `last` one starts with a
        zero scale under `zero_init_residual`."""

        def norm(name, last=False):
            zero = last and self.zero_init_residual
            return nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                epsilon=self.bn_epsilon, dtype=self.dtype,
                                param_dtype=self.param_dtype,
                                scale_init=nn.initializers.zeros if zero else
                                nn.initializers.ones, name=name)

        return norm

    @nn.compact
    def __call__(self, inputs: jnp.ndarray, *, train: bool = False
                 ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        if self.variant not in VARIANTS:
            raise ValueError(f"ResNet variant={self.variant!r}; choose from {sorted(VARIANTS)}.")
        if self.stem not in STEMS:
            raise ValueError(f"ResNet stem={self.stem!r}; choose from {STEMS}.")
        if inputs.ndim != 4:
            raise ValueError("ResNet expects images [batch, height, width, channels], got "
                             f"shape {inputs.shape}.")
        stage_sizes, kind = VARIANTS[self.variant]

        conv, norm = self.make_conv(), self.make_norm(train)
        x = inputs.astype(self.dtype)
        if self.stem == "imagenet":
            x = nn.relu(norm("stem_norm")(conv(self.width, (7, 7), (2, 2), name="stem")(x)))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        else:
            x = nn.relu(norm("stem_norm")(conv(self.width, (3, 3), name="stem")(x)))
        for s, blocks in enumerate(stage_sizes):
            for b in range(blocks):
                x = _Block(kind, self.width * 2 ** s, 2 if s > 0 and b == 0 else 1, norm, conv,
                           name=f"stage_{s}_block_{b}")(x)
        x = x.mean(axis=(1, 2))
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                          name="head")(x)
        return logits.astype(jnp.float32), {"pre_logits": x}
