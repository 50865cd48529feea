"""Token + learned position + segment embeddings, with a tied-decoder ``attend``."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigjax.models.layers import axes
from bigjax.models.layers.norm import layer_norm


class TextEmbeddings(nn.Module):
    """word(ids) + position(positions) [+ token_type(type ids)] -> [LayerNorm] -> dropout.

    Params (logical axes): ``word_embeddings/embedding`` [vocab, embed],
    ``position_embeddings/embedding`` [max_len, embed] (positions unsharded),
    ``token_type_embeddings/embedding`` [type_vocab_size, embed] when
    ``type_vocab_size > 0``, ``norm`` when ``use_layer_norm``.

    Attributes:
      vocab_size: number of tokens.
      hidden: embedding width.
      max_len: number of learned positions.
      type_vocab_size: number of segment types; 0 = no segment embedding.
      use_layer_norm: LayerNorm after the sum (BERT, post-LN models).
      layer_norm_eps: LayerNorm epsilon.
      dropout_rate: dropout on the output.
      dtype: compute dtype of the output.
      param_dtype: dtype of the tables.
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

    def setup(self) -> None:
        init = nn.initializers.normal(stddev=0.02)

        def table(num: int, first_axis: str | None, name: str) -> nn.Embed:
            return nn.Embed(
                num,
                self.hidden,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                embedding_init=nn.with_logical_partitioning(init, (first_axis, axes.EMBED)),
                name=name,
            )

        self.word_embeddings = table(self.vocab_size, axes.VOCAB, "word_embeddings")
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
        self.dropout = nn.Dropout(self.dropout_rate)

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
          ids: [batch, length] int token ids.
          token_type_ids: [batch, length] int segment ids; default zeros.
          positions: [batch, length] or [length] int positions; default arange(length).
          train: enables dropout.

        Returns:
          [batch, length, embed] in ``dtype``.
        """
        if positions is None:
            positions = jnp.arange(ids.shape[-1])[None, :]
        x = self.word_embeddings(ids) + self.position_embeddings(positions)
        if self.type_vocab_size:
            if token_type_ids is None:
                token_type_ids = jnp.zeros_like(ids)
            x = x + self.token_type_embeddings(token_type_ids)
        if self.use_layer_norm:
            x = self.norm(x)
        x = self.dropout(x, deterministic=not train)
        return nn.with_logical_constraint(x, (axes.BATCH, axes.LENGTH, axes.EMBED))

    def attend(self, x: jax.Array) -> jax.Array:
        """Tied decoder: x: [batch, length, embed] -> [batch, length, vocab] logits."""
        logits = self.word_embeddings.attend(x)
        return nn.with_logical_constraint(logits, (axes.BATCH, axes.LENGTH, axes.VOCAB))
