"""Text generation from a decoder-only language model with a KV cache.

`generate(model, params, prompts, ...)` left-pads a batch of prompts of different
lengths, runs them through the model once to fill the cache (each row's positions start
at its first real token, its padding hidden from attention), then adds one token per
step to every row, inside one jit-compiled loop. A row stops at the end-of-text token
or after `max_new_tokens`. Decoding with the cache gives the tokens decoding by full
recomputation gives (tests/test_gpt.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bigjax.sampling import sample_logits


def left_pad(prompts: Sequence[np.ndarray], multiple: int = 1
             ) -> tuple[np.ndarray, np.ndarray]:
    """Prompts (int arrays, each at least one token) right-aligned in one batch.

    Returns `tokens` int32 [rows, longest] and `valid` bool [rows, longest] (False on the
    left padding); rows is `len(prompts)` rounded up to `multiple` with copies of the
    first prompt (their outputs are dropped).
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("Every prompt needs at least one token.")
    rows = -(-len(prompts) // multiple) * multiple
    prompts = list(prompts) + [prompts[0]] * (rows - len(prompts))
    longest = max(len(p) for p in prompts)
    tokens = np.zeros((rows, longest), np.int32)
    valid = np.zeros((rows, longest), bool)
    for i, p in enumerate(prompts):
        tokens[i, longest - len(p):] = p
        valid[i, longest - len(p):] = True
    return tokens, valid


@functools.partial(jax.jit, static_argnames=("model", "max_new_tokens", "eot_id",
                                             "temperature", "top_k", "top_p"))
def generate_tokens(model: nn.Module, params, tokens: jax.Array, valid: jax.Array,
                    rng: jax.Array, *, max_new_tokens: int, eot_id: int,
                    temperature: float = 0.0, top_k: int | None = None,
                    top_p: float | None = None) -> jax.Array:
    """New tokens int32 [rows, max_new_tokens] after left-padded `tokens` / `valid`
    [rows, prompt_len]; after a row's end-of-text token, the rest of the row is
    end-of-text tokens."""
    rows, prompt_len = tokens.shape
    total = prompt_len + max_new_tokens
    key_valid = jnp.concatenate([valid, jnp.ones((rows, max_new_tokens), bool)], axis=1)
    positions = jnp.maximum(jnp.cumsum(valid, axis=1) - 1, 0)
    cache = model.init_cache(rows, total)
    (logits, _), variables = model.apply(
        {"params": params, "cache": cache}, tokens, positions=positions, key_valid=key_valid,
        decode=True, train=False, mutable=["cache"])
    rng, first_rng = jax.random.split(rng)
    sample = functools.partial(sample_logits, temperature=temperature, top_k=top_k,
                               top_p=top_p)
    token = sample(logits[:, -1], first_rng)
    next_position = positions[:, -1] + 1

    def step(carry, step_rng):
        cache, token, position, done = carry
        done = done | (token == eot_id)
        (logits, _), variables = model.apply(
            {"params": params, "cache": cache}, token[:, None], positions=position[:, None],
            key_valid=key_valid, decode=True, train=False, mutable=["cache"])
        new = jnp.where(done, eot_id, sample(logits[:, -1], step_rng))
        return (variables["cache"], new, position + 1, done), token

    carry = (variables["cache"], token, next_position, jnp.zeros((rows,), bool))
    (_, last, _, done), emitted = jax.lax.scan(
        step, carry, jax.random.split(rng, max_new_tokens - 1))
    last = jnp.where(done, eot_id, last)
    out = jnp.concatenate([emitted.T, last[:, None]], axis=1)
    # Replicated on every device of the mesh (a no-op without one), so that every process
    # can read all rows; otherwise they would keep the batch sharding of the logits.
    return nn.with_logical_constraint(out, (None, None))


def generate(model: nn.Module, params, prompts: Sequence[np.ndarray], *,
             max_new_tokens: int, eot_id: int, rng: jax.Array, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, batch_multiple: int = 1
             ) -> list[np.ndarray]:
    """The tokens generated after each prompt (int32 arrays, cut before the first
    end-of-text token). `batch_multiple`: rows padded to a multiple of it (e.g. the
    devices on the mesh's batch axes)."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be at least 1.")
    tokens, valid = left_pad(prompts, batch_multiple)
    limit = model.max_length() if hasattr(model, "max_length") else None
    if limit is not None and tokens.shape[1] + max_new_tokens > limit:
        raise ValueError(f"The longest prompt ({tokens.shape[1]} tokens) plus max_new_tokens="
                         f"{max_new_tokens} exceeds the model's {limit} positions; shorten "
                         "them.")
    # numpy inputs: the same on every process, placed by jit (replicated).
    out = np.asarray(generate_tokens(model, params, tokens, valid,
                                     rng, max_new_tokens=max_new_tokens, eot_id=eot_id,
                                     temperature=float(temperature), top_k=top_k,
                                     top_p=top_p))
    results = []
    for row in out[:len(prompts)]:
        ends = np.flatnonzero(row == eot_id)
        results.append(row[:ends[0]] if ends.size else row)
    return results
