"""Vision Transformer (Dosovitskiy et al. 2021; big_vision's layout) from the shared
transformer layers.

    inputs [batch, H, W, C]
    -> patches: Conv p x p stride p (width)          [batch, H/p * W/p, width]
    -> (a learned class token in front when pool="token") + learned position embeddings
    -> TransformerStack (pre-LN, GELU MLP, final LayerNorm)
    -> pool: the class token's output, or the mean over patches ("gap")
    -> Dense(num_classes), zero-initialised

Variants by name, "<size>/<patch>": sizes Ti (192 wide, 12 layers, 3 heads), S (384, 12,
6), B (768, 12, 12), L (1024, 24, 16), MLP 4x wide; any patch size, e.g. "B/16" for
ImageNet at 224 (86.6M params with 1000 classes) or "S/4" for CIFAR at 32 (64 patches).
The stack takes `scan_layers` / `remat` and annotates params and activations with the
logical axes (`embed`, `mlp`, `heads`, `kv`, `layers`), so the sharding rules of the
other transformers shard it.
"""

from __future__ import annotations

import re
from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp

from bigjax.models.layers import axes
from bigjax.models.layers.dropout import Dropout
from bigjax.models.layers.encoder import TransformerStack

# size -> (width, layers, heads); MLP width 4 x width.
SIZES = {"Ti": (192, 12, 3), "S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16)}
POOLS = ("token", "gap")


def parse_variant(variant: str) -> tuple[int, int, int, int]:
    """`"S/16"` -> `(width, layers, heads, patch)`; ValueError naming the known sizes."""
    match = re.fullmatch(r"(\w+)/(\d+)", variant)
    if not match or match.group(1) not in SIZES or int(match.group(2)) < 1:
        raise ValueError(f"ViT variant={variant!r}: write <size>/<patch>, size one of "
                         f"{list(SIZES)}, e.g. 'B/16' or 'S/4'.")
    return (*SIZES[match.group(1)], int(match.group(2)))


class ViT(nn.Module):
    """`inputs: [batch, height, width, channels]` (normalised floats) -> `(logits
    [batch, num_classes] float32, {"pre_logits": [batch, width]})`.

    Attributes:
      num_classes: width of the output layer.
      variant: "<size>/<patch>", size Ti, S, B or L (e.g. "B/16", "S/4").
      pool: "token" (a learned class token's output) or "gap" (mean over the patches).
      width: model width, overriding the variant's (None: the variant's).
      depth: number of blocks, overriding the variant's (None: the variant's).
      num_heads: attention heads, overriding the variant's (None: the variant's).
      mlp_dim: MLP hidden width (None: 4 x width).
      dropout_rate: dropout after the embeddings and inside every block.
      attention_dropout_rate: dropout on the attention probabilities.
      scan_layers: ``nn.scan`` over the blocks (params stacked on a ``layers`` axis).
      remat: recompute each block's activations in the backward pass.
      dtype: compute dtype of the activations (the logits are cast to float32).
      param_dtype: dtype of the params.
    """

    CONFIG_CHOICES: ClassVar[dict] = {"pool": POOLS}
    HEAD_MODULES: ClassVar[tuple[str, ...]] = ("head",)

    num_classes: int
    variant: str = "S/16"
    pool: str = "token"
    width: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    mlp_dim: int | None = None
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    scan_layers: bool = False
    remat: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: jnp.ndarray, *, train: bool = False
                 ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        width, layers, heads, patch = parse_variant(self.variant)
        width, layers = self.width or width, self.depth or layers
        heads = self.num_heads or heads
        if width % heads:
            raise ValueError(f"ViT width={width} must be a multiple of num_heads={heads}.")
        if self.pool not in POOLS:
            raise ValueError(f"ViT pool={self.pool!r}; choose from {POOLS}.")
        if inputs.ndim != 4 or inputs.shape[1] % patch or inputs.shape[2] % patch:
            raise ValueError(f"ViT {self.variant} expects images [batch, height, width, "
                             f"channels] with height and width multiples of {patch}; got "
                             f"{inputs.shape}.")
        x = nn.Conv(width, (patch, patch), strides=(patch, patch), padding="VALID",
                    kernel_init=nn.with_logical_partitioning(
                        nn.initializers.lecun_normal(), (None, None, None, axes.EMBED)),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                                           (axes.EMBED,)),
                    dtype=self.dtype, param_dtype=self.param_dtype,
                    name="patches")(inputs.astype(self.dtype))
        batch, h, w, _ = x.shape
        x = x.reshape(batch, h * w, width)
        if self.pool == "token":
            token = self.param("class_token", nn.with_logical_partitioning(
                nn.initializers.zeros, (None, axes.EMBED)), (1, width), self.param_dtype)
            x = jnp.concatenate([jnp.broadcast_to(token.astype(self.dtype),
                                                  (batch, 1, width)), x], axis=1)
        positions = self.param("position_embeddings", nn.with_logical_partitioning(
            nn.initializers.normal(stddev=1 / width ** 0.5), (None, axes.EMBED)),
            x.shape[1:], self.param_dtype)
        x = x + positions.astype(self.dtype)
        x = Dropout(self.dropout_rate)(x, deterministic=not train)
        x = TransformerStack(num_layers=layers, num_heads=heads,
                             mlp_dim=self.mlp_dim or 4 * width,
                             dropout_rate=self.dropout_rate,
                             attention_dropout_rate=self.attention_dropout_rate,
                             pre_norm=True, layer_norm_eps=1e-6, activation="gelu",
                             dtype=self.dtype, param_dtype=self.param_dtype,
                             scan_layers=self.scan_layers, remat=self.remat,
                             name="encoder")(x, train=train)
        x = x[:, 0] if self.pool == "token" else x.mean(axis=1)
        logits = nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros,
                          dtype=self.dtype, param_dtype=self.param_dtype, name="head")(x)
        return logits.astype(jnp.float32), {"pre_logits": x}
