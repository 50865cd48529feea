"""Token + position (learned or sinusoidal) + segment embeddings, with a tied-decoder
``attend``."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigjax.models.layers import axes
from bigjax.models.layers.dropout import Dropout
from bigjax.models.layers.flat import dense_rows
from bigjax.models.layers.norm import layer_norm


def padded_vocab_size(vocab_size: int, multiple: int = 1) -> int:
    """``vocab_size`` rounded up to a multiple of ``multiple`` (>= 1), e.g. so that the
    vocab dim of the word embeddings divides by the ``tensor`` mesh axis: 30522, 1024 -> 30720.
    """
    if multiple < 1:
        raise ValueError(f"vocab_multiple={multiple} must be >= 1.")
    return -(-vocab_size // multiple) * multiple


def zero_padded_rows_init(init: Any, rows: int) -> Any:
    """An initializer that draws ``init(key, [rows, *rest])`` and appends zero rows up to the
    requested ``shape[0]``: the first ``rows`` rows are exactly those of an unpadded param
    initialised with the same key (draws depend on the shape, so padding must not reach
    ``init``)."""

    def padded(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        if shape[0] < rows:
            raise ValueError(f"padded shape {shape} has fewer than {rows} rows.")
        real = init(key, (rows, *shape[1:]), dtype)
        return jnp.pad(real, [(0, shape[0] - rows)] + [(0, 0)] * (len(shape) - 1))

    return padded


def sinusoidal_positions(positions: jax.Array, hidden: int) -> jax.Array:
    """The fixed position encodings of Vaswani et al. 2017: positions [...] int ->
    [..., hidden] float32, ``sin(p / 10000^(2i / hidden))`` in the first half of the
    features and ``cos`` of the same angles in the second (the layout of tensor2tensor;
    the paper interleaves them, which is the same up to a fixed permutation)."""
    if hidden % 2:
        raise ValueError(f"Sinusoidal positions need an even width, got {hidden}.")
    half = hidden // 2
    inv_freq = 10000.0 ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = positions.astype(jnp.float32)[..., None] * inv_freq
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class TextEmbeddings(nn.Module):
    """word(ids) [* sqrt(hidden)] [+ position(positions)] [+ token_type(type ids)] ->
    [LayerNorm] -> dropout.

    Params (logical axes): ``word_embeddings/embedding`` [vocab, embed] with
    ``padded_vocab_size(vocab_size, vocab_multiple)`` rows (rows ``>= vocab_size`` are
    zeros at init and never looked up),
    ``position_embeddings/embedding`` [max_len, embed] (positions unsharded; when
    ``learned_positions``),
    ``token_type_embeddings/embedding`` [type_vocab_size, embed] when
    ``type_vocab_size > 0``, ``norm`` when ``use_layer_norm``.

    Attributes:
      vocab_size: number of tokens (ids are in ``[0, vocab_size)``).
      hidden: embedding width.
      max_len: number of learned positions.
      type_vocab_size: number of segment types; 0 = no segment embedding.
      use_layer_norm: LayerNorm after the sum (BERT, post-LN models).
      layer_norm_eps: LayerNorm epsilon.
      dropout_rate: dropout on the output.
      dtype: compute dtype of the output.
      param_dtype: dtype of the tables.
      vocab_multiple: the word-embedding table is padded with zero rows to a multiple of
        this (e.g. so the ``vocab`` dim divides by the ``tensor`` mesh axis); the real rows
        are initialised exactly as without padding. 1 = no padding.
      learned_positions: add learned position embeddings (False: none, e.g. for rotary
        attention).
      sinusoidal_positions: add the fixed sinusoidal encodings instead (no params).
      scale_words: multiply the word embeddings by sqrt(hidden) (the original
        Transformer, whose tables are initialised with std hidden^-0.5).
      embedding_std: std of the normal initialisation of the tables.
    """

    vocab_size: int
    hidden: int
    max_len: int
    type_vocab_size: int = 0
    use_layer_norm: bool = True
    layer_norm_eps: float = 1e-12
    dropout_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    vocab_multiple: int = 1
    learned_positions: bool = True
    sinusoidal_positions: bool = False
    scale_words: bool = False
    embedding_std: float = 0.02

    def setup(self) -> None:
        if self.learned_positions and self.sinusoidal_positions:
            raise ValueError("Choose learned or sinusoidal positions, not both.")
        init = nn.initializers.normal(stddev=self.embedding_std)

        def table(num: int, first_axis: str | None, name: str, rows: int | None = None
                  ) -> nn.Embed:
            """An embedding table [rows or num, embed]; rows > num pads with zero rows."""
            row_init = init if rows is None else zero_padded_rows_init(init, num)
            return nn.Embed(
                num if rows is None else rows,
                self.hidden,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                embedding_init=nn.with_logical_partitioning(row_init, (first_axis, axes.EMBED)),
                name=name,
            )

        padded = padded_vocab_size(self.vocab_size, self.vocab_multiple)
        self.word_embeddings = table(self.vocab_size, axes.VOCAB, "word_embeddings",
                                     rows=padded if padded != self.vocab_size else None)
        if self.learned_positions:
            self.position_embeddings = table(self.max_len, None, "position_embeddings")
        if self.type_vocab_size:
            self.token_type_embeddings = table(self.type_vocab_size, None, "token_type_embeddings")
        if self.use_layer_norm:
            self.norm = layer_norm(
                epsilon=self.layer_norm_eps,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name="norm",
            )
        self.dropout = Dropout(self.dropout_rate)

    def __call__(
        self,
        ids: jax.Array,
        *,
        token_type_ids: jax.Array | None = None,
        positions: jax.Array | None = None,
        train: bool,
    ) -> jax.Array:
        """Embeds token ids.

        Args:
          ids: [batch, length] int token ids in ``[0, vocab_size)``.
          token_type_ids: [batch, length] int segment ids; default zeros.
          positions: [batch, length] or [length] int positions; default arange(length).
          train: enables dropout.

        Returns:
          [batch, length, embed] in ``dtype``.
        """
        x = self.lookup(self.word_embeddings, ids)
        if self.scale_words:
            x = x * jnp.asarray(self.hidden ** 0.5, x.dtype)
        if positions is None:
            positions = jnp.arange(ids.shape[-1])[None, :]
        if self.learned_positions:
            x = x + self.lookup(self.position_embeddings, positions)
        elif self.sinusoidal_positions:
            x = x + sinusoidal_positions(positions, self.hidden).astype(x.dtype)
        if self.type_vocab_size:
            if token_type_ids is None:
                token_type_ids = jnp.zeros_like(ids)
            x = x + self.lookup(self.token_type_embeddings, token_type_ids)
        if self.use_layer_norm:
            x = self.norm(x)
        x = self.dropout(x, deterministic=not train)
        return nn.with_logical_constraint(x, (axes.BATCH, axes.LENGTH, axes.EMBED))

    def lookup(self, table: nn.Embed, ids: jax.Array) -> jax.Array:
        """Rows of ``table`` for ``ids`` [...]: gathered in ``param_dtype``, then cast to
        ``dtype`` -> [..., embed].

        ``nn.Embed`` casts the whole table to ``dtype`` before gathering, so in bfloat16 the
        gradient's scatter-add into the table runs in bfloat16. On an H200 that scatter
        (16,384 tokens into 67 rows, GPU atomics on bfloat16) took 33 ms of the 40 ms step of
        nanoGPT's GPU recipe; gathering first keeps it in float32. The values are the same.
        """
        return jnp.take(table.embedding, ids, axis=0).astype(self.dtype)

    def attend(self, x: jax.Array) -> jax.Array:
        """Tied decoder: x: [batch, length, embed] -> [batch, length, padded vocab] logits.

        The padded vocab is ``padded_vocab_size(vocab_size, vocab_multiple)``; the logits of
        the padding rows are NOT masked here (``MlmHead`` masks them after its bias).
        """
        logits = dense_rows(self.word_embeddings.attend, x)  # 2-D: see layers/flat.py
        return nn.with_logical_constraint(logits, (axes.BATCH, axes.LENGTH, axes.VOCAB))
