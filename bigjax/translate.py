"""Decoding an encoder-decoder: greedy and beam search, jit-compiled and batched.

Both run the encoder once and then the decoder one token per step with the KV cache
(the encoder's keys and values projected once, on the first step), inside one
`lax.while_loop` that stops when every row is done. Outputs are `tokens` int32 [batch,
max_len] (the target after BOS, through EOS, then 0s) and `scores` float32 [batch]: the
log-probability of those tokens divided by the length penalty of GNMT (Wu et al. 2016),
`((5 + length) / 6) ** alpha`, length counting EOS. Beam search with `beam_size=1` and
`alpha=0` gives greedy decoding's tokens (tests/test_transformer.py). Padding and BOS are
never emitted.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigjax.models.transformer import PAD_ID

NEG_INF = -1.0e9  # a score no real sequence reaches (finite: no inf - inf = NaN)


def length_penalty(length: jax.Array, alpha: float) -> jax.Array:
    """GNMT's length penalty ``((5 + length) / 6) ** alpha`` (1 when alpha is 0)."""
    return ((5.0 + length.astype(jnp.float32)) / 6.0) ** alpha


def _log_probs(model: nn.Module, params, cache, encoded, source_valid, tokens, position,
               bos_id: int):
    """`(log-probabilities float32 [rows, vocab], new cache)` of the next token after
    `tokens` [rows] at `position` (an int); padding and BOS get `NEG_INF` (a translation
    never contains them; an undertrained model may still rank them first)."""
    positions = jnp.full((tokens.shape[0], 1), position, jnp.int32)
    logits, variables = model.apply(
        {"params": params, "cache": cache}, encoded, source_valid, tokens[:, None],
        positions=positions, decode=True, method=type(model).decode_step, mutable=["cache"])
    log_probs = jax.nn.log_softmax(logits[:, 0].astype(jnp.float32))
    return log_probs.at[:, jnp.array([PAD_ID, bos_id])].set(NEG_INF), variables["cache"]


def _encode(model: nn.Module, params, source: jax.Array, rows: int, max_len: int):
    """The encoder's outputs and the source mask, each row repeated `rows // batch` times
    (beams), and a zero cache for `rows` rows."""
    limit = model.max_length() if hasattr(model, "max_length") else None
    if limit is not None and max(source.shape[1], max_len) > limit:
        raise ValueError(f"Sources of {source.shape[1]} tokens or translations of max_len="
                         f"{max_len} exceed the model's {limit} positions; shorten them.")
    encoded = model.apply({"params": params}, source, method=type(model).encode)
    repeats = rows // source.shape[0]
    encoded = jnp.repeat(encoded, repeats, axis=0)
    valid = jnp.repeat(source != PAD_ID, repeats, axis=0)
    return encoded, valid, model.init_cache(rows, source.shape[1], max_len)


def _replicated(x: jax.Array) -> jax.Array:
    """`x` replicated over the mesh (a no-op without one): every process reads all rows."""
    return nn.with_logical_constraint(x, (None,) * x.ndim)


def _first_step_then_loop(step_fn, carry, encoded, max_len: int, running):
    """Runs `step_fn(carry, encoded)` once (it caches the encoder's projections), then
    `step_fn(carry, None)` while `running(carry)` and the step is below `max_len`."""
    carry = step_fn(carry, encoded)
    return jax.lax.while_loop(lambda c: (c[0] < max_len) & running(c),
                              lambda c: step_fn(c, None), carry)


@functools.partial(jax.jit, static_argnames=("model", "max_len", "bos_id", "eos_id", "alpha"))
def greedy_decode(model: nn.Module, params, source: jax.Array, *, max_len: int, bos_id: int,
                  eos_id: int, alpha: float = 0.0) -> tuple[jax.Array, jax.Array]:
    """The most likely token at every step. `source`: int32 [batch, source_length] (0 =
    padding). Returns `(tokens [batch, max_len], scores [batch])` (see the module
    docstring; `alpha` only scales the reported scores)."""
    batch = source.shape[0]
    encoded, valid, cache = _encode(model, params, source, batch, max_len)

    def step_fn(carry, encoded):
        step, cache, token, done, logp, out = carry
        log_probs, cache = _log_probs(model, params, cache, encoded, valid, token, step, bos_id)
        nxt = jnp.where(done, PAD_ID, jnp.argmax(log_probs, axis=-1).astype(jnp.int32))
        picked = jnp.take_along_axis(log_probs, nxt[:, None], axis=-1)[:, 0]
        logp = logp + jnp.where(done, 0.0, picked)
        out = jax.lax.dynamic_update_slice(out, nxt[:, None], (0, step))
        return step + 1, cache, nxt, done | (nxt == eos_id), logp, out

    carry = (jnp.int32(0), cache, jnp.full((batch,), bos_id, jnp.int32),
             jnp.zeros((batch,), bool), jnp.zeros((batch,), jnp.float32),
             jnp.zeros((batch, max_len), jnp.int32))
    *_, logp, out = _first_step_then_loop(step_fn, carry, encoded, max_len,
                                          lambda c: ~jnp.all(c[3]))
    ends = out == eos_id  # length: through the first EOS, else all max_len tokens
    lengths = jnp.where(ends.any(axis=1), jnp.argmax(ends, axis=1) + 1, max_len)
    return _replicated(out), _replicated(logp / length_penalty(lengths, alpha))


def _gather_beams(tree, beams: jax.Array, batch_axis: int):
    """The self-attention cache leaves of `tree` with rows [batch * beam] re-picked by
    `beams` [batch * beam] (flat row indices); the encoder projections and the cache
    index are the same for every beam of a row and stay."""

    def gather(path, leaf):
        name = getattr(path[-1], "key", None)
        if name not in ("cached_key", "cached_value"):
            return leaf
        return jnp.take(leaf, beams, axis=batch_axis)

    return jax.tree_util.tree_map_with_path(gather, tree)


@functools.partial(jax.jit, static_argnames=("model", "beam_size", "max_len", "alpha",
                                             "bos_id", "eos_id"))
def beam_search(model: nn.Module, params, source: jax.Array, *, beam_size: int, max_len: int,
                alpha: float, bos_id: int, eos_id: int) -> tuple[jax.Array, jax.Array]:
    """The best-scoring of the hypotheses that `beam_size` beams find. `source`: int32
    [batch, source_length]. Returns `(tokens [batch, max_len], scores [batch])`.

    Each step extends every live beam by every token and keeps the `2 * beam_size` best
    extensions by log-probability: those ending in EOS (or reaching `max_len`) join the
    finished set (kept to the `beam_size` best by length-penalised score), the
    `beam_size` best others stay live. The search stops when no live beam can still beat
    the worst finished one (its log-probability only falls; with `alpha` >= 0 its
    penalty grows at most to that of `max_len`).
    """
    batch, k = source.shape[0], beam_size
    rows = batch * k
    encoded, valid, cache = _encode(model, params, source, rows, max_len)
    batch_axis = 1 if getattr(model, "scan_layers", False) else 0
    seqs = jnp.zeros((batch, k, max_len), jnp.int32)
    # Only beam 0 is live at first: the others would repeat its hypotheses.
    live_logp = jnp.tile(jnp.array([0.0] + [NEG_INF] * (k - 1), jnp.float32), (batch, 1))

    def step_fn(carry, encoded):
        step, cache, last, seqs, live_logp, fin_seqs, fin_scores = carry
        log_probs, cache = _log_probs(model, params, cache, encoded, valid,
                                      last.reshape(rows), step, bos_id)
        vocab = log_probs.shape[-1]
        candidates = (live_logp[:, :, None] + log_probs.reshape(batch, k, vocab)
                      ).reshape(batch, k * vocab)
        top_logp, top = jax.lax.top_k(candidates, 2 * k)  # [batch, 2k], best first
        beam, token = top // vocab, (top % vocab).astype(jnp.int32)
        new_seqs = jnp.take_along_axis(seqs, beam[:, :, None], axis=1)
        new_seqs = jax.lax.dynamic_update_slice(new_seqs, token[:, :, None], (0, 0, step))
        ends = (token == eos_id) | (step + 1 >= max_len)
        # Finished: the old ones and the k best extensions that end here (an ending
        # ranked below k would not have been kept by a search of k beams).
        rank = jnp.arange(2 * k)[None, :]
        scores = jnp.where(ends & (rank < k), top_logp / length_penalty(step + 1, alpha),
                           NEG_INF)
        fin_scores, best = jax.lax.top_k(jnp.concatenate([fin_scores, scores], axis=1), k)
        fin_seqs = jnp.take_along_axis(jnp.concatenate([fin_seqs, new_seqs], axis=1),
                                       best[:, :, None], axis=1)
        # Live: the best k extensions that did not end.
        live_logp, keep = jax.lax.top_k(jnp.where(ends, NEG_INF, top_logp), k)
        seqs = jnp.take_along_axis(new_seqs, keep[:, :, None], axis=1)
        last = jnp.take_along_axis(token, keep, axis=1)
        parents = jnp.take_along_axis(beam, keep, axis=1)  # [batch, k]
        flat = (jnp.arange(batch)[:, None] * k + parents).reshape(rows)
        cache = _gather_beams(cache, flat, batch_axis)
        return step + 1, cache, last, seqs, live_logp, fin_seqs, fin_scores

    def running(carry):
        *_, live_logp, _, fin_scores = carry
        best_possible = live_logp[:, 0] / length_penalty(jnp.int32(max_len), alpha)
        return jnp.any(best_possible > fin_scores[:, -1])

    carry = (jnp.int32(0), cache, jnp.full((batch, k), bos_id, jnp.int32), seqs, live_logp,
             jnp.zeros((batch, k, max_len), jnp.int32),
             jnp.full((batch, k), NEG_INF, jnp.float32))
    *_, fin_seqs, fin_scores = _first_step_then_loop(step_fn, carry, encoded, max_len, running)
    out = fin_seqs[:, 0]
    # Tokens after EOS are padding.
    after_eos = jnp.cumsum(out == eos_id, axis=1) - (out == eos_id) > 0
    out = jnp.where(after_eos, PAD_ID, out)
    return _replicated(out), _replicated(fin_scores[:, 0])
