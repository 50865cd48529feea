"""The CIFAR-10 speed-run network: Page's ResNet-9 as slimmed by airbench.

    inputs [batch, 32, 32, 3]
    -> whiten: Conv 2x2 VALID, 2 * 3 * 2 * 2 = 24 channels, GELU  [batch, 31, 31, 24]
    -> group(widths[0]) -> group(widths[1]) -> group(widths[2])    [batch, 3, 3, widths[2]]
    -> global max pool -> Dense(num_classes, no bias) * output_scale

Each group is Conv 3x3 -> MaxPool 2 -> BatchNorm -> GELU -> Conv 3x3 -> BatchNorm -> GELU
(+ the group's pooled input when `residual`, ResNet-9's identity shortcut around its
second conv). With `group_depth=3` (airbench96) a third conv follows, and the last two
form a residual branch: x -> Conv -> BN -> GELU -> Conv -> BN, + x, -> GELU. The
whitening conv is initialised from the training images (`init_with_data`: the
eigenvectors of their 2x2 patch covariance, scaled by 1/sqrt(eigenvalue), and their
negatives) and is meant to stay frozen (`config.optim.frozen`); the 3x3 convs start as
identities on their first input channels (dirac init) plus PyTorch's default random
init elsewhere (as the head: the recipe's learning rates assume its weight scale).
BatchNorm has no scale (a bias only), as in airbench, so the weight norms are free and
the biases carry the shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bigjax.models.cnn import max_pool_blocks
from bigjax.models.layers.mlp_block import ACTIVATIONS
from bigjax.models.patch_whitening import whitening_kernel

WHITEN_KERNEL = 2


# PyTorch's default init of convs and linear layers (kaiming_uniform with a=sqrt(5)):
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)), std 1/sqrt(3 fan_in), a third of LeCun normal's
# variance. With scale-free BatchNorm the weights' norm sets the effective learning rate,
# so the recipe's rates assume this init.
TORCH_DEFAULT_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def dirac_init(base=None):
    """A conv kernel `[kh, kw, in, out]` drawn from `base` (None: PyTorch's default init),
    with its first `min(in, out)` output channels replaced by identities (output j =
    input j at the centre tap)."""
    base = base or TORCH_DEFAULT_INIT

    def init(key, shape, dtype=jnp.float32):
        kernel = base(key, shape, dtype)
        kh, kw, fan_in, fan_out = shape
        n = min(fan_in, fan_out)
        identity = jnp.zeros((kh, kw, fan_in, n), dtype).at[kh // 2, kw // 2].set(
            jnp.eye(fan_in, n, dtype=dtype))
        return kernel.at[..., :n].set(identity)

    return init


class SpeedResNet(nn.Module):
    """airbench's network; `inputs: [batch, height, width, channels]` (normalised floats)
    -> `(logits [batch, num_classes] float32, {"pre_logits": [batch, widths[-1]]})`.

    Attributes:
      num_classes: width of the output layer.
      widths: output channels of the three conv groups (airbench94: 64, 256, 256).
      residual: add each group's pooled first-conv activations to its output (ResNet-9's
        shortcut; airbench94 drops it). Only with `group_depth=2`.
      group_depth: 3x3 convs per group: 2 (airbench94) or 3 (airbench96, whose last two
        convs always form a residual branch).
      activation: nonlinearity after the whitening conv and every BatchNorm.
      bn_momentum: decay of the BatchNorm running averages.
      bn_epsilon: BatchNorm's epsilon.
      output_scale: the logits are multiplied by this (airbench: 1/9).
      whiten_eps: added to the patch covariance's eigenvalues before the 1/sqrt scaling.
      dtype: compute dtype of the activations (the logits are cast to float32).
      param_dtype: dtype of the params.
    """

    CONFIG_CHOICES: ClassVar[dict] = {"activation": tuple(ACTIVATIONS), "group_depth": (2, 3)}
    HEAD_MODULES: ClassVar[tuple[str, ...]] = ("head",)

    num_classes: int
    widths: Sequence[int] = (64, 256, 256)
    residual: bool = False
    group_depth: int = 2
    activation: str = "gelu"
    bn_momentum: float = 0.6
    bn_epsilon: float = 1e-12
    output_scale: float = 1 / 9
    whiten_eps: float = 5e-4
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def _norm(self, x: jnp.ndarray, train: bool, name: str) -> jnp.ndarray:
        return nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                            epsilon=self.bn_epsilon, use_scale=False, dtype=self.dtype,
                            param_dtype=self.param_dtype, name=name)(x)

    def _conv(self, features: int, name: str) -> nn.Conv:
        return nn.Conv(features, (3, 3), padding="SAME", use_bias=False,
                       kernel_init=dirac_init(), dtype=self.dtype,
                       param_dtype=self.param_dtype, name=name)

    @nn.compact
    def __call__(self, inputs: jnp.ndarray, *, train: bool = False
                 ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        if inputs.ndim != 4:
            raise ValueError("SpeedResNet expects images [batch, height, width, channels], "
                             f"got shape {inputs.shape}.")
        if self.group_depth not in (2, 3) or (self.residual and self.group_depth == 3):
            raise ValueError(f"model.group_depth={self.group_depth}, model.residual="
                             f"{self.residual}: choose group_depth 2 (residual optional) or 3 "
                             "(always residual over its last two convs; residual=False).")
        act = ACTIVATIONS[self.activation]
        channels = inputs.shape[-1]
        x = nn.Conv(2 * channels * WHITEN_KERNEL ** 2, (WHITEN_KERNEL, WHITEN_KERNEL),
                    padding="VALID", dtype=self.dtype, param_dtype=self.param_dtype,
                    name="whiten")(inputs.astype(self.dtype))
        x = act(x)
        for i, width in enumerate(self.widths):
            x = self._conv(width, f"group_{i}_conv_0")(x)
            x = max_pool_blocks(x, 2)
            x = act(self._norm(x, train, f"group_{i}_norm_0"))
            y = self._conv(width, f"group_{i}_conv_1")(x)
            y = act(self._norm(y, train, f"group_{i}_norm_1"))
            if self.group_depth == 3:
                y = self._conv(width, f"group_{i}_conv_2")(y)
                x = act(x + self._norm(y, train, f"group_{i}_norm_2"))
            else:
                x = x + y if self.residual else y
        x = x.max(axis=(1, 2))
        logits = nn.Dense(self.num_classes, use_bias=False, kernel_init=TORCH_DEFAULT_INIT,
                          dtype=self.dtype,
                          param_dtype=self.param_dtype, name="head")(x)
        return (logits * self.output_scale).astype(jnp.float32), {"pre_logits": x}

    def init_with_data(self, params: dict, inputs: jax.Array) -> dict:
        """`params` with the whitening kernel computed from `inputs: [n, h, w, c]`, the
        preprocessed training images (no augmentation); the bias stays zero."""
        kernel = whitening_kernel(np.asarray(inputs, np.float64), WHITEN_KERNEL,
                                  self.whiten_eps)
        old = params["whiten"]["kernel"]
        if kernel.shape != old.shape:
            raise ValueError(f"whitening kernel {kernel.shape} does not fit the model's "
                             f"{old.shape}.")
        new = jnp.asarray(kernel, old.dtype)
        if isinstance(old, jax.Array):  # keep the param's layout on the mesh
            new = jax.device_put(new, old.sharding)
        return {**params, "whiten": {**params["whiten"], "kernel": new}}
