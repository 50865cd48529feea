"""GPT: a decoder-only Transformer language model (GPT-2 and Llama architectures).

``GPT`` maps token ids [batch, length] to next-token logits [batch, length, padded
vocab] (float32) and returns ``(logits, {"hidden_states": [batch, length, embed]})``.

Param tree (the layout ``hf_gpt_import`` produces):
  embeddings/word_embeddings/embedding          [padded vocab, embed]
  embeddings/position_embeddings/embedding      [max_len, embed]   (learned positions)
  decoder/layers_{i}/{attention_norm, attention/{query,key,value,out}, mlp_norm,
                      mlp/{wi | wi_0, wi_1, wo}}  (decoder/layers/... with scan_layers)
  decoder/final_norm
  lm_head/kernel                                [embed, padded vocab] (untied only)

Sizes come from ``variant`` (``VARIANTS``); any size field set on the module overrides
it. The vocabulary is padded like BERT's (``vocab_multiple``): the padding columns of
the logits are ``PADDED_LOGIT``, so they never win argmax and get no probability.

Decoding (``decode=True``) reads and writes the KV cache (collection ``"cache"``):
``init_cache`` creates it for a batch and a length, then each call appends its tokens.
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
from bigjax.models.layers.decoder import ACTIVATIONS, NORMS, REMAT_POLICIES, DecoderStack
from bigjax.models.layers.embeddings import TextEmbeddings, padded_vocab_size
from bigjax.models.layers.flat import dense_rows

POSITIONS = ("learned", "rotary")

VARIANTS: dict[str, dict[str, Any]] = {
    # nanoGPT's Tiny Shakespeare CPU recipe (vocabulary from the data's tokenizer).
    "nano": dict(num_layers=4, hidden=128, heads=4, mlp_dim=512, max_len=64, use_bias=False),
    # nanoGPT's Tiny Shakespeare GPU recipe.
    "shakespeare": dict(num_layers=6, hidden=384, heads=6, mlp_dim=1536, max_len=256,
                        use_bias=False),
    # GPT-2 (Radford et al. 2019), as the Hugging Face checkpoints.
    "gpt2": dict(num_layers=12, hidden=768, heads=12, mlp_dim=3072, vocab_size=50257,
                 max_len=1024, activation="gelu_tanh"),
    "gpt2-medium": dict(num_layers=24, hidden=1024, heads=16, mlp_dim=4096, vocab_size=50257,
                        max_len=1024, activation="gelu_tanh"),
    # Llama 3.2 1B's shape (rotary with Llama 3.1's rescaling, grouped-query attention,
    # SwiGLU, RMSNorm, tied).
    "llama-1b": dict(num_layers=16, hidden=2048, heads=32, kv_heads=8, mlp_dim=8192,
                     vocab_size=128256, max_len=8192, position="rotary", rope_theta=500000.0,
                     rope_scaling=(32.0, 1.0, 4.0, 8192),
                     activation="swiglu", norm="rms_norm", use_bias=False),
}
DEFAULTS: dict[str, Any] = dict(vocab_size=None, max_len=1024, kv_heads=None,
                                position="learned", rope_theta=10000.0, rope_scaling=None,
                                tie_embeddings=True,
                                activation="gelu", norm="layer_norm", norm_eps=1e-5,
                                use_bias=True, dropout_rate=0.0, attention_dropout_rate=0.0)
SIZE_KEYS = (*DEFAULTS, "num_layers", "hidden", "heads", "mlp_dim")


def gpt_config(variant: str, **overrides: Any) -> dict[str, Any]:
    """The size config of ``variant`` with ``overrides`` (None values are ignored)."""
    if variant not in VARIANTS:
        raise ValueError(f"Unknown GPT variant {variant!r}; choose from {sorted(VARIANTS)}.")
    config = {**DEFAULTS, **VARIANTS[variant]}
    config.update({k: v for k, v in overrides.items() if v is not None})
    if config["hidden"] % config["heads"]:
        raise ValueError(f"hidden={config['hidden']} is not divisible by heads={config['heads']}.")
    kv_heads = config["kv_heads"] or config["heads"]
    if config["heads"] % kv_heads:
        raise ValueError(f"kv_heads={kv_heads} must divide heads={config['heads']}.")
    return config


class GPT(nn.Module):
    """Decoder-only language model. Size fields left None come from ``variant``.

    Attributes:
      variant: named size (see ``VARIANTS``) that the size fields left None come from.
      vocab_size: tokens (None: the variant's, else the data's tokenizer's).
      max_len: longest sequence (learned positions: the number of position embeddings).
      num_layers: decoder layers (None: the variant's).
      hidden: width of the residual stream (None: the variant's).
      heads: attention heads (None: the variant's).
      kv_heads: key/value heads; fewer than heads is grouped-query attention (None: heads).
      mlp_dim: hidden width of each MLP (None: the variant's).
      position: "learned" position embeddings (GPT-2) or "rotary" (Llama).
      rope_theta: RoPE base of rotary positions.
      rope_scaling: Llama 3.1's long-context rescaling of the RoPE frequencies, as
        (factor, low_freq_factor, high_freq_factor, original_max_len); None: unscaled.
        Llama 3.2 1B has (32, 1, 4, 8192); Hugging Face imports set it.
      tie_embeddings: the output projection is the word embedding matrix (else its own
        ``lm_head``).
      activation: MLP nonlinearity: "gelu" (exact), "gelu_tanh" (GPT-2) or "swiglu"
        (a gated MLP, Llama).
      norm: "layer_norm" (GPT-2) or "rms_norm" (Llama).
      norm_eps: the norms' epsilon.
      use_bias: biases in the projections and LayerNorms.
      dropout_rate: dropout on the embeddings and every residual branch.
      attention_dropout_rate: dropout on the attention probabilities (nanoGPT applies its
        dropout there too; GPT-2's ``attn_pdrop``).
      vocab_multiple: pads the vocabulary to a multiple of this (e.g. the tensor axis).
      attention_impl: jax.nn.dot_product_attention's implementation: "xla" (CPU/TPU),
        "cudnn" (the fused GPU kernel) or None (JAX picks); or "heads_first": the same
        math as bigjax's own einsums over [batch, heads, length, head_dim], faster on
        XLA:CPU (the CPU recipe's; experiments/shakespeare).
      dtype: compute dtype of the activations.
      param_dtype: dtype of the params.
      scan_layers: one ``nn.scan`` over the layers (faster compiles, stacked params).
      remat: recompute each layer's activations in the backward pass (less memory).
      remat_policy: what remat keeps: "nothing_saveable", "dots_saveable" or
        "dots_with_no_batch_dims_saveable".
    """

    CONFIG_CHOICES: ClassVar[dict] = {
        "variant": tuple(VARIANTS), "position": POSITIONS, "activation": tuple(ACTIVATIONS),
        "norm": NORMS, "attention_impl": CausalSelfAttention.IMPLEMENTATIONS,
        "remat_policy": tuple(REMAT_POLICIES)}
    HEAD_MODULES: ClassVar[tuple[str, ...]] = ("lm_head",)  # may be new under init_from

    variant: str = "nano"
    vocab_size: int | None = None
    max_len: int | None = None
    num_layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    mlp_dim: int | None = None
    position: str | None = None
    rope_theta: float | None = None
    rope_scaling: tuple[float, ...] | None = None
    tie_embeddings: bool | None = None
    activation: str | None = None
    norm: str | None = None
    norm_eps: float | None = None
    use_bias: bool | None = None
    dropout_rate: float | None = None
    attention_dropout_rate: float | None = None
    vocab_multiple: int = 1
    attention_impl: str | None = None
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    scan_layers: bool = False
    remat: bool = False
    remat_policy: str = "nothing_saveable"

    def config(self) -> dict[str, Any]:
        """The resolved size config (variant + overrides)."""
        return gpt_config(self.variant, **{k: getattr(self, k) for k in SIZE_KEYS})

    def max_length(self) -> int:
        """The longest sequence, in tokens."""
        return self.config()["max_len"]

    def with_data_vocab(self, vocab_size: int) -> GPT:
        """This model sized for a tokenizer of ``vocab_size`` tokens
        (``data_vocab.with_data_vocab``)."""
        return data_vocab.with_data_vocab(self, vocab_size)

    def setup(self) -> None:
        c = self.config()
        if c["vocab_size"] is None:
            raise ValueError("config.model.vocab_size is None and no tokenizer gave one.")
        self.embeddings = TextEmbeddings(
            vocab_size=c["vocab_size"], hidden=c["hidden"], max_len=c["max_len"],
            learned_positions=c["position"] == "learned", use_layer_norm=False,
            dropout_rate=c["dropout_rate"], vocab_multiple=self.vocab_multiple,
            dtype=self.dtype, param_dtype=self.param_dtype)
        block = dict(
            num_heads=c["heads"], num_kv_heads=c["kv_heads"], mlp_dim=c["mlp_dim"],
            num_layers=c["num_layers"], rotary=c["position"] == "rotary",
            rope_theta=c["rope_theta"], rope_scaling=c["rope_scaling"], use_bias=c["use_bias"],
            implementation=self.attention_impl, activation=c["activation"], norm=c["norm"],
            norm_eps=c["norm_eps"], dropout_rate=c["dropout_rate"],
            attention_dropout_rate=c["attention_dropout_rate"], dtype=self.dtype,
            param_dtype=self.param_dtype)
        self.decoder = DecoderStack(block, scan_layers=self.scan_layers, remat=self.remat,
                                    remat_policy=self.remat_policy)
        padded = padded_vocab_size(c["vocab_size"], self.vocab_multiple)
        if not c["tie_embeddings"]:
            self.lm_head = nn.Dense(
                padded, use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
                kernel_init=nn.with_logical_partitioning(nn.initializers.normal(stddev=0.02),
                                                         (axes.EMBED, axes.VOCAB)),
                name="lm_head")

    def __call__(self, inputs: jax.Array, *, positions: jax.Array | None = None,
                 key_valid: jax.Array | None = None, decode: bool = False,
                 train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Next-token logits.

        Args:
          inputs: [batch, length] int token ids.
          positions: [batch, length] int positions (default 0, 1, ...; left-padded prompts
            start theirs at the first real token); required when decoding.
          key_valid: bool [batch, keys], False at padding tokens (keys = length, or the
            cache length when decoding).
          decode: append to the KV cache and attend to it (see the module docstring).
          train: enables dropout (rng name "dropout").

        Returns:
          logits float32 [batch, length, padded vocab], aux {"hidden_states"}.
        """
        c = self.config()
        if positions is None and decode and not self.is_initializing():
            raise ValueError("Decoding needs the tokens' positions (they continue the cached "
                             "ones); pass positions=[batch, length].")
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(inputs.shape[1]), inputs.shape)
        x = self.embeddings(inputs, positions=positions, train=train)
        x = self.decoder(x, positions, key_valid, decode=decode, train=train)
        if c["tie_embeddings"]:
            logits = self.embeddings.attend(x)
        else:
            logits = dense_rows(self.lm_head, x)
        logits = logits.astype(jnp.float32)
        padded = logits.shape[-1]
        if padded != c["vocab_size"]:
            real = jnp.arange(padded) < c["vocab_size"]
            logits = logits + jnp.where(real, 0.0, PADDED_LOGIT)
        logits = nn.with_logical_constraint(logits, (axes.BATCH, axes.LENGTH, axes.VOCAB))
        return logits, {"hidden_states": x}

    def init_cache(self, batch: int, length: int) -> dict:
        """A zero KV cache for ``batch`` rows of up to ``length`` tokens (the ``"cache"``
        collection; pass it as a variable with ``mutable=["cache"]`` when decoding)."""
        shapes = jax.eval_shape(
            lambda: self.init(jax.random.PRNGKey(0), jnp.zeros((batch, length), jnp.int32),
                              decode=True, train=False)["cache"])
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
