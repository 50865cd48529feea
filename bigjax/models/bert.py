"""BERT: a post-LN transformer encoder with MLM and sequence-classification heads.

Every model returns ``(out, aux)``:
  ``BertEncoder``:                    hidden [batch, length, embed], {"hidden_states"}
  ``BertForMaskedLM``:                logits [batch, length, padded vocab], {"hidden_states"}
  ``BertForSequenceClassification``:  logits [batch, num_classes], {"hidden_states", "pooled"}

Param tree (the layout ``hf_bert_import.load_hf_bert`` produces):
  bert/embeddings/{word,position,token_type}_embeddings/embedding, bert/embeddings/norm
  bert/encoder/layers_{i}/...          (or bert/encoder/layers/... with scan_layers)
  mlm_head/{dense,norm,bias}           (BertForMaskedLM; decoder tied to word embeddings)
  pooler/{kernel,bias}, classifier/... (BertForSequenceClassification)

Sizes come from ``variant`` (see ``VARIANTS``); any size field set on the module
overrides it.

Vocabulary padding (``vocab_multiple``, for tensor parallelism: the ``vocab`` dim is
sharded over the ``tensor`` mesh axis, and 30,522 does not divide by 4): the word
embeddings [padded, embed] and the MLM bias [padded] have
``padded = ceil(vocab_size / vocab_multiple) * vocab_multiple`` rows. The real rows
are initialised exactly as in the unpadded model (same rng), the padding rows are
zeros, and the MLM logits of the padding columns are ``PADDED_LOGIT`` (give or take the
decoder's dot product, which is tiny beside it), so they never win argmax, have zero
softmax probability and get zero gradient. Token ids are in
``[0, vocab_size)``. ``vocab_multiple=1`` is the unpadded model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigjax.models.layers import axes
from bigjax.models.layers.attention import padding_mask
from bigjax.models.layers.dropout import Dropout
from bigjax.models.layers.embeddings import TextEmbeddings, padded_vocab_size
from bigjax.models.layers.encoder import TransformerStack
from bigjax.models.layers.mlp_block import gelu
from bigjax.models.layers.norm import layer_norm
from bigjax.models.layers.wide_bias import add_wide_bias

DEFAULTS: dict[str, Any] = dict(
    vocab_size=30522,
    max_len=512,
    type_vocab_size=2,
    dropout_rate=0.1,
    attention_dropout_rate=0.1,
    layer_norm_eps=1e-12,
)

VARIANTS: dict[str, dict[str, Any]] = {
    "tiny": dict(num_layers=2, hidden=128, heads=2, mlp_dim=512),
    "mini": dict(num_layers=4, hidden=256, heads=4, mlp_dim=1024),
    "small": dict(num_layers=4, hidden=512, heads=8, mlp_dim=2048),
    "base": dict(num_layers=12, hidden=768, heads=12, mlp_dim=3072),
    "minilm-l6": dict(
        num_layers=6, hidden=384, heads=12, mlp_dim=1536, vocab_size=30522, max_len=512
    ),
}

# MLM logit of a padding column of the vocabulary: far below any real logit, yet finite, so
# that `0 * log_softmax(logits)` (e.g. label smoothing with no mass on padding) stays 0.
PADDED_LOGIT = -1e9

CONFIG_KEYS = tuple(DEFAULTS) + ("num_layers", "hidden", "heads", "mlp_dim")


def bert_config(variant: str, **overrides: Any) -> dict[str, Any]:
    """Size config of a variant, with ``overrides`` (``None`` values are ignored).

    Returns a dict with keys ``CONFIG_KEYS``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown BERT variant {variant!r}; choose from {sorted(VARIANTS)}.")
    unknown = set(overrides) - set(CONFIG_KEYS)
    if unknown:
        raise ValueError(f"Unknown BERT config keys {sorted(unknown)}; known: {CONFIG_KEYS}.")
    config = {**DEFAULTS, **VARIANTS[variant]}
    config.update({k: v for k, v in overrides.items() if v is not None})
    if config["hidden"] % config["heads"]:
        raise ValueError(f"hidden={config['hidden']} is not divisible by heads={config['heads']}.")
    return config


class _BertFields(nn.Module):
    """Fields shared by the BERT models. Size fields left ``None`` come from ``variant``.

    Attributes:
      variant: named size (see ``VARIANTS``) that the size fields left None come from.
      vocab_size: word-piece vocabulary size (None: the variant's).
      max_len: number of learned positions, the longest input (None: the variant's).
      type_vocab_size: number of token types (segments) (None: the variant's).
      num_layers: transformer layers (None: the variant's).
      hidden: width of the residual stream (None: the variant's).
      heads: attention heads; must divide ``hidden`` (None: the variant's).
      mlp_dim: hidden width of each MLP block (None: the variant's).
      dropout_rate: dropout on embeddings and residual branches (None: the variant's).
      attention_dropout_rate: dropout on attention probabilities (None: the variant's).
      layer_norm_eps: LayerNorm epsilon (None: the variant's).
      pad_id: token id of padding (masked out of attention).
      vocab_multiple: pads the vocab dim of the word embeddings and the MLM bias/logits
        to a multiple of it (see the module docstring); 1 = no padding.
      dtype: compute dtype of the activations.
      param_dtype: dtype of the params.
      scan_layers: one ``nn.scan`` over the layers (faster compiles, stacked params).
      remat: recompute each layer's activations in the backward pass (less memory).
    """

    CONFIG_CHOICES: ClassVar[dict] = {"variant": tuple(VARIANTS)}

    variant: str = "base"
    vocab_size: int | None = None
    max_len: int | None = None
    type_vocab_size: int | None = None
    num_layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    mlp_dim: int | None = None
    dropout_rate: float | None = None
    attention_dropout_rate: float | None = None
    layer_norm_eps: float | None = None
    pad_id: int = 0
    vocab_multiple: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    scan_layers: bool = False
    remat: bool = False

    def config(self) -> dict[str, Any]:
        """The resolved size config (variant + overrides)."""
        return bert_config(self.variant, **{k: getattr(self, k) for k in CONFIG_KEYS})

    def max_length(self) -> int:
        """The longest input, in tokens: the number of learned positions."""
        return self.config()["max_len"]

    def encoder_fields(self) -> dict[str, Any]:
        """This module's ``_BertFields`` values, to build a ``BertEncoder`` child."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(_BertFields)
            if f.name not in ("parent", "name")
        }


class BertEncoder(_BertFields):
    """Embeddings + post-LN transformer stack. Params: ``embeddings``, ``encoder``."""

    def setup(self) -> None:
        c = self.config()
        self.embeddings = TextEmbeddings(
            vocab_size=c["vocab_size"],
            hidden=c["hidden"],
            max_len=c["max_len"],
            type_vocab_size=c["type_vocab_size"],
            vocab_multiple=self.vocab_multiple,
            use_layer_norm=True,
            layer_norm_eps=c["layer_norm_eps"],
            dropout_rate=c["dropout_rate"],
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        self.encoder = TransformerStack(
            num_layers=c["num_layers"],
            num_heads=c["heads"],
            mlp_dim=c["mlp_dim"],
            dropout_rate=c["dropout_rate"],
            attention_dropout_rate=c["attention_dropout_rate"],
            pre_norm=False,
            layer_norm_eps=c["layer_norm_eps"],
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            scan_layers=self.scan_layers,
            remat=self.remat,
        )

    def __call__(
        self,
        inputs: jax.Array,
        *,
        token_type_ids: jax.Array | None = None,
        train: bool,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Encodes token ids.

        Args:
          inputs: [batch, length] int token ids; ``pad_id`` marks padding (not attended to).
          token_type_ids: [batch, length] int segment ids; default zeros.
          train: enables dropout (rng name "dropout").

        Returns:
          hidden [batch, length, embed] (``dtype``), aux {"hidden_states": hidden}.
        """
        mask = padding_mask(inputs != self.pad_id)
        x = self.embeddings(inputs, token_type_ids=token_type_ids, train=train)
        x = self.encoder(x, mask, train=train)
        return x, {"hidden_states": x}

    def attend(self, x: jax.Array) -> jax.Array:
        """Tied output projection: x [batch, length, embed] -> [batch, length, padded vocab]
        (padding columns unmasked; ``MlmHead`` masks them)."""
        return self.embeddings.attend(x)


class MlmHead(nn.Module):
    """BERT MLM head: dense + gelu + LayerNorm, then the tied decoder + own bias.

    Params: ``dense`` kernel [embed, embed] (axes embed, mlp), ``norm``, ``bias`` [padded
    vocab] with ``padded_vocab_size(vocab_size, vocab_multiple)`` entries (zeros at init).
    """

    vocab_size: int
    vocab_multiple: int = 1
    layer_norm_eps: float = 1e-12
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, decode: Callable[[jax.Array], jax.Array]) -> jax.Array:
        """x: [batch, length, embed]; decode: [..., embed] -> [..., padded vocab] (the tied
        embedding).

        Returns float32 logits [batch, length, padded vocab]; the columns ``>= vocab_size``
        (the padding) are ``PADDED_LOGIT`` plus the decoder's (tiny) dot product, with zero
        softmax probability and zero gradient to the decoder and bias.
        """
        h = nn.Dense(
            x.shape[-1],
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=_partitioned_normal((axes.EMBED, axes.MLP)),
            bias_init=_partitioned_zeros((axes.MLP,)),
            name="dense",
        )(x)
        h = layer_norm(
            epsilon=self.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype, name="norm"
        )(gelu(h))
        padded = padded_vocab_size(self.vocab_size, self.vocab_multiple)
        bias = self.param("bias", _partitioned_zeros((axes.VOCAB,)), (padded,), self.param_dtype)
        bias = bias.astype(jnp.float32)
        if padded != self.vocab_size:
            # On the [padded] bias, not on the [batch, length, padded] logits: a select over
            # the logits and its gradient cost half the all-positions MLM step on CPU.
            real = jnp.arange(padded) < self.vocab_size
            bias = jnp.where(real, bias, jnp.float32(PADDED_LOGIT))
        logits = add_wide_bias(decode(h).astype(jnp.float32), bias)
        return nn.with_logical_constraint(logits, (axes.BATCH, axes.LENGTH, axes.VOCAB))


class BertForMaskedLM(_BertFields):
    """BERT with the MLM head. Params: ``bert``, ``mlm_head``."""

    HEAD_MODULES: ClassVar[tuple[str, ...]] = ("mlm_head",)  # may be new under init_from

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        *,
        token_type_ids: jax.Array | None = None,
        masked_positions: jax.Array | None = None,
        train: bool,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """inputs: [batch, length] ids -> logits [batch, length, padded vocab] (float32), aux.

        padded vocab = ``padded_vocab_size(vocab_size, vocab_multiple)`` (= vocab_size when
        ``vocab_multiple`` is 1); its padding columns are about ``PADDED_LOGIT``. With
        ``masked_positions`` [batch, P] int, logits are [batch, P, padded vocab]: the
        head (and its vocabulary-sized matmul) runs at those positions only.
        """
        bert = BertEncoder(**self.encoder_fields(), name="bert")
        hidden, aux = bert(inputs, token_type_ids=token_type_ids, train=train)
        if masked_positions is not None:
            hidden = jnp.take_along_axis(hidden, masked_positions[..., None], axis=1)
        c = self.config()
        logits = MlmHead(
            vocab_size=c["vocab_size"],
            vocab_multiple=self.vocab_multiple,
            layer_norm_eps=c["layer_norm_eps"],
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="mlm_head",
        )(hidden, bert.attend)
        return logits, aux


class BertForSequenceClassification(_BertFields):
    """BERT + pooler (dense+tanh on [CLS]) + dropout + classifier.

    Params: ``bert``, ``pooler`` kernel [embed, embed] (axes embed, mlp), ``classifier``.

    Attributes:
      num_classes: width of the classifier.
    """

    HEAD_MODULES: ClassVar[tuple[str, ...]] = ("pooler", "classifier")  # new under init_from

    num_classes: int = dataclasses.field(kw_only=True)

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        *,
        token_type_ids: jax.Array | None = None,
        train: bool,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """inputs: [batch, length] ids -> logits [batch, num_classes] (float32), aux.

        aux: {"hidden_states": [batch, length, embed], "pooled": [batch, embed]}.
        """
        bert = BertEncoder(**self.encoder_fields(), name="bert")
        hidden, aux = bert(inputs, token_type_ids=token_type_ids, train=train)
        c = self.config()
        pooled = nn.Dense(
            c["hidden"],
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=_partitioned_normal((axes.EMBED, axes.MLP)),
            bias_init=_partitioned_zeros((axes.MLP,)),
            name="pooler",
        )(hidden[:, 0])
        pooled = jnp.tanh(pooled)
        x = Dropout(c["dropout_rate"])(pooled, deterministic=not train)
        logits = nn.Dense(
            self.num_classes,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=_partitioned_normal((axes.MLP, None)),
            bias_init=_partitioned_zeros((None,)),
            name="classifier",
        )(x)
        return logits.astype(jnp.float32), {**aux, "pooled": pooled}


def _partitioned_normal(names: tuple[str | None, ...]) -> Any:
    return nn.with_logical_partitioning(nn.initializers.normal(stddev=0.02), names)


def _partitioned_zeros(names: tuple[str | None, ...]) -> Any:
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)
