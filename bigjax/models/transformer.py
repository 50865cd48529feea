"""Transformer: the encoder-decoder of "Attention Is All You Need" (Vaswani et al. 2017),
for translation.

``Transformer`` maps source ids [batch, source_length] and decoder inputs [batch,
target_length] (BOS then the target, shifted right) to next-token logits [batch,
target_length, padded vocab] (float32), and returns ``(logits, {"encoded": [batch,
source_length, embed]})``. Token id 0 is padding: source padding is hidden from the
encoder's and the decoder's attention; target padding only needs zero loss weights.

Param tree:
  embeddings/word_embeddings/embedding          [padded vocab, embed]  (shared="all")
  source_embeddings/..., target_embeddings/...  (shared="target_output" / "none")
  <each table>/position_embeddings/embedding    [max_len, embed] (learned positions)
  encoder/layers_{i}/{attention, attention_norm, mlp, mlp_norm}, encoder/final_norm
  decoder/layers_{i}/{attention, attention_norm, cross_attention, cross_attention_norm,
                      mlp, mlp_norm}, decoder/final_norm   (final norms: pre-LN only)
  lm_head/kernel                                 [embed, padded vocab] (shared="none")
(``layers/...`` with a leading [layers] axis under ``scan_layers``.)

Decoding: ``encode`` runs the encoder once; ``decode_step`` runs the decoder on new
target tokens with the KV cache (collection ``"cache"``, made by ``init_cache``): its
first call also caches every layer's projected encoder keys and values, later calls
pass ``encoded=None`` and read them (``bigjax/translate.py``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigjax.models import data_vocab
from bigjax.models.bert import PADDED_LOGIT
from bigjax.models.layers import axes
from bigjax.models.layers.causal_attention import CausalSelfAttention
from bigjax.models.layers.decoder import ACTIVATIONS, REMAT_POLICIES, DecoderStack
from bigjax.models.layers.embeddings import TextEmbeddings, padded_vocab_size
from bigjax.models.layers.encoder import TransformerStack
from bigjax.models.layers.flat import dense_rows

PAD_ID = 0
POSITIONS = ("sinusoidal", "learned")
SHARING = ("all", "target_output", "none")

VARIANTS: dict[str, dict[str, Any]] = {
    # A small model for Multi30k (29k sentence pairs): 3 + 3 layers, 256 wide.
    "small": dict(encoder_layers=3, decoder_layers=3, hidden=256, heads=4, mlp_dim=1024,
                  dropout_rate=0.1),
    # Transformer-base and -big (Vaswani et al. 2017, table 3), post-LN as in the paper.
    "base": dict(encoder_layers=6, decoder_layers=6, hidden=512, heads=8, mlp_dim=2048,
                 dropout_rate=0.1, pre_norm=False),
    "big": dict(encoder_layers=6, decoder_layers=6, hidden=1024, heads=16, mlp_dim=4096,
                dropout_rate=0.3, pre_norm=False),
}
DEFAULTS: dict[str, Any] = dict(vocab_size=None, max_len=256, position="sinusoidal",
                                shared_embeddings="all", activation="relu", pre_norm=True,
                                norm_eps=1e-6, dropout_rate=0.1)
SIZE_KEYS = (*DEFAULTS, "encoder_layers", "decoder_layers", "hidden", "heads", "mlp_dim")


def transformer_config(variant: str, **overrides: Any) -> dict[str, Any]:
    """The size config of ``variant`` with ``overrides`` (None values are ignored)."""
    if variant not in VARIANTS:
        raise ValueError(f"Unknown Transformer variant {variant!r}; choose from "
                         f"{sorted(VARIANTS)}.")
    config = {**DEFAULTS, **VARIANTS[variant]}
    config.update({k: v for k, v in overrides.items() if v is not None})
    if config["hidden"] % config["heads"]:
        raise ValueError(f"hidden={config['hidden']} is not divisible by heads={config['heads']}.")
    return config


class Transformer(nn.Module):
    """Encoder-decoder Transformer. Size fields left None come from ``variant``.

    Attributes:
      variant: named size (see ``VARIANTS``) that the size fields left None come from.
      vocab_size: tokens of the joint source/target vocabulary (None: the data's
        tokenizer's).
      max_len: longest source or target sequence (learned positions: their number).
      encoder_layers: encoder layers (None: the variant's).
      decoder_layers: decoder layers (None: the variant's).
      hidden: model width (None: the variant's).
      heads: attention heads (None: the variant's).
      mlp_dim: hidden width of each feed-forward block (None: the variant's).
      position: "sinusoidal" (the paper) or "learned" position embeddings.
      shared_embeddings: "all": one table for source, target and output (the paper,
        with a joint vocabulary); "target_output": the decoder's input and output share
        one, the encoder has its own; "none": three.
      activation: feed-forward nonlinearity: "relu" (the paper), "gelu", "gelu_tanh".
      pre_norm: pre-LN (x + f(norm(x)), stable without warmup tricks) or post-LN
        (norm(x + f(x)), the paper).
      norm_eps: the LayerNorms' epsilon.
      dropout_rate: dropout on the embeddings and every residual branch.
      vocab_multiple: pads the vocabulary to a multiple of this (e.g. the tensor axis).
      attention_impl: jax.nn.dot_product_attention's implementation for the decoder:
        "xla", "cudnn" or None (JAX picks), or "heads_first" (bigjax's einsums, faster
        on XLA:CPU; see ``CausalSelfAttention``).
      dtype: compute dtype of the activations.
      param_dtype: dtype of the params.
      scan_layers: one ``nn.scan`` over each stack's layers (stacked params).
      remat: recompute each layer's activations in the backward pass (less memory).
      remat_policy: what remat keeps: "nothing_saveable", "dots_saveable" or
        "dots_with_no_batch_dims_saveable".
    """

    CONFIG_CHOICES: ClassVar[dict] = {
        "variant": tuple(VARIANTS), "position": POSITIONS, "shared_embeddings": SHARING,
        "activation": tuple(a for a in ACTIVATIONS if a != "swiglu"),
        "attention_impl": CausalSelfAttention.IMPLEMENTATIONS,
        "remat_policy": tuple(REMAT_POLICIES)}
    HEAD_MODULES: ClassVar[tuple[str, ...]] = ("lm_head",)

    variant: str = "small"
    vocab_size: int | None = None
    max_len: int | None = None
    encoder_layers: int | None = None
    decoder_layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    mlp_dim: int | None = None
    position: str | None = None
    shared_embeddings: str | None = None
    activation: str | None = None
    pre_norm: bool | None = None
    norm_eps: float | None = None
    dropout_rate: float | None = None
    vocab_multiple: int = 1
    attention_impl: str | None = None
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    scan_layers: bool = False
    remat: bool = False
    remat_policy: str = "nothing_saveable"

    def config(self) -> dict[str, Any]:
        """The resolved size config (variant + overrides)."""
        return transformer_config(self.variant, **{k: getattr(self, k) for k in SIZE_KEYS})

    def max_length(self) -> int:
        """The longest source or target sequence, in tokens."""
        return self.config()["max_len"]

    def with_data_vocab(self, vocab_size: int) -> Transformer:
        """This model sized for a tokenizer of ``vocab_size`` tokens
        (``data_vocab.with_data_vocab``)."""
        return data_vocab.with_data_vocab(self, vocab_size)

    def setup(self) -> None:
        c = self.config()
        if c["vocab_size"] is None:
            raise ValueError("config.model.vocab_size is None and no tokenizer gave one.")
        if c["activation"] not in self.CONFIG_CHOICES["activation"]:
            raise ValueError(f"config.model.activation={c['activation']!r}; choose from "
                             f"{self.CONFIG_CHOICES['activation']}.")

        def embeddings(name: str) -> TextEmbeddings:
            return TextEmbeddings(
                vocab_size=c["vocab_size"], hidden=c["hidden"], max_len=c["max_len"],
                learned_positions=c["position"] == "learned",
                sinusoidal_positions=c["position"] == "sinusoidal", use_layer_norm=False,
                scale_words=True, embedding_std=c["hidden"] ** -0.5,
                dropout_rate=c["dropout_rate"], vocab_multiple=self.vocab_multiple,
                dtype=self.dtype, param_dtype=self.param_dtype, name=name)

        if c["shared_embeddings"] == "all":
            self.source_embeddings = self.target_embeddings = embeddings("embeddings")
        else:
            self.source_embeddings = embeddings("source_embeddings")
            self.target_embeddings = embeddings("target_embeddings")
        self.encoder = TransformerStack(
            num_layers=c["encoder_layers"], num_heads=c["heads"], mlp_dim=c["mlp_dim"],
            dropout_rate=c["dropout_rate"], pre_norm=c["pre_norm"],
            layer_norm_eps=c["norm_eps"], activation=c["activation"], dtype=self.dtype,
            param_dtype=self.param_dtype, scan_layers=self.scan_layers, remat=self.remat,
            remat_policy=REMAT_POLICIES[self.remat_policy], name="encoder")
        block = dict(
            num_heads=c["heads"], mlp_dim=c["mlp_dim"], num_layers=c["decoder_layers"],
            implementation=self.attention_impl, activation=c["activation"],
            norm="layer_norm", norm_eps=c["norm_eps"], use_bias=True,
            dropout_rate=c["dropout_rate"],
            cross_attention=True, pre_norm=c["pre_norm"], dtype=self.dtype,
            param_dtype=self.param_dtype)
        self.decoder = DecoderStack(block, scan_layers=self.scan_layers, remat=self.remat,
                                    remat_policy=self.remat_policy)
        if c["shared_embeddings"] == "none":
            self.lm_head = nn.Dense(
                padded_vocab_size(c["vocab_size"], self.vocab_multiple), use_bias=False,
                dtype=self.dtype, param_dtype=self.param_dtype,
                kernel_init=nn.with_logical_partitioning(
                    nn.initializers.normal(stddev=c["hidden"] ** -0.5),
                    (axes.EMBED, axes.VOCAB)),
                name="lm_head")

    def __call__(self, inputs: jax.Array, *, decoder_inputs: jax.Array,
                 train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Teacher-forced next-token logits.

        Args:
          inputs: [batch, source_length] int source ids, 0 = padding.
          decoder_inputs: [batch, target_length] int: BOS, then the target tokens but
            the last.
          train: enables dropout (rng name "dropout").

        Returns:
          logits float32 [batch, target_length, padded vocab], aux {"encoded"}.
        """
        source_valid = inputs != PAD_ID
        encoded = self.encode(inputs, train=train)
        logits = self.decode_step(encoded, source_valid, decoder_inputs, train=train)
        return logits, {"encoded": encoded}

    def encode(self, inputs: jax.Array, *, train: bool = False) -> jax.Array:
        """The encoder's outputs [batch, source_length, embed] for source ids [batch,
        source_length] (0 = padding, hidden from attention)."""
        valid = inputs != PAD_ID
        x = self.source_embeddings(inputs, train=train)
        return self.encoder(x, valid[:, None, None, :], train=train)

    def decode_step(self, encoded: jax.Array | None, source_valid: jax.Array | None,
                    decoder_inputs: jax.Array, *, positions: jax.Array | None = None,
                    decode: bool = False, train: bool = False) -> jax.Array:
        """Decoder logits float32 [batch, length, padded vocab].

        Args:
          encoded: the encoder's outputs [batch, source_length, embed]; None on decoding
            calls after the first (read from the cache).
          source_valid: bool [batch, source_length], False at source padding.
          decoder_inputs: [batch, length] int target-side ids.
          positions: [batch, length] int positions of ``decoder_inputs`` (default 0, 1,
            ...); required when decoding.
          decode: append to the self-attention KV cache (and write / read the cached
            encoder projections).
          train: enables dropout.
        """
        c = self.config()
        if positions is None:
            if decode and not self.is_initializing():
                raise ValueError("Decoding needs the tokens' positions; pass "
                                 "positions=[batch, length].")
            positions = jnp.broadcast_to(jnp.arange(decoder_inputs.shape[1]),
                                         decoder_inputs.shape)
        x = self.target_embeddings(decoder_inputs, positions=positions, train=train)
        x = self.decoder(x, positions, None, context=encoded, context_valid=source_valid,
                         decode=decode, train=train)
        if c["shared_embeddings"] == "none":
            logits = dense_rows(self.lm_head, x)
        else:
            logits = self.target_embeddings.attend(x)
        logits = logits.astype(jnp.float32)
        padded = logits.shape[-1]
        if padded != c["vocab_size"]:
            logits = logits + jnp.where(jnp.arange(padded) < c["vocab_size"], 0.0,
                                        PADDED_LOGIT)
        return nn.with_logical_constraint(logits, (axes.BATCH, axes.LENGTH, axes.VOCAB))

    def init_cache(self, batch: int, source_length: int, target_length: int) -> dict:
        """A zero decoding cache for ``batch`` rows: self-attention keys and values of up
        to ``target_length`` tokens, encoder projections of ``source_length``."""

        def make():
            source = jnp.ones((batch, source_length), jnp.int32)
            target = jnp.zeros((batch, target_length), jnp.int32)
            encoded = jnp.zeros((batch, source_length, self.config()["hidden"]), self.dtype)
            return self.init(jax.random.PRNGKey(0), encoded, source != PAD_ID, target,
                             decode=True, method=Transformer.decode_step)["cache"]

        shapes = jax.eval_shape(make)
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
