"""Analytic training FLOPs of a model, and XLA's count of a compiled step.

``train_flops_per_example`` is what MFU divides by, for every model family: for a
language model, ``gpt_train_flops_per_token`` (the Kaplan et al. 2020 / PaLM, Chowdhery
et al. 2022, appendix B estimate, causal attention halved) times the context; for any
other model, the matmul and convolution FLOPs of its forward and backward passes counted
from the forward's jaxpr (``jaxpr_flops``: dense, convolution and attention with its
sequence-length term; norms, BatchNorm included, and activations are not counted, as
MaxText counts).
``cost_analysis_flops`` reads XLA's own count from a lowered or compiled step (what
``dry_run`` reports), to check the analytic figure against.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from bigjax.jaxpr_flops import function_flops
from bigjax.models.gpt import GPT
from bigjax.models.layers.embeddings import padded_vocab_size
from bigjax.train_state import make_variables_init


def gpt_train_flops_per_token(model: GPT, seq_len: int) -> dict[str, Any]:
    """Training FLOPs per token of ``model`` on sequences of ``seq_len`` tokens.

    Counts matmuls only (2 FLOPs per multiply-add; backward = 2 x forward, so training is
    6 FLOPs per matmul weight per token). Norms, activations, softmax, rotary, biases,
    residual adds, the loss and the optimizer update are not counted (a few percent for
    small models, less as they grow).

    Params counted (``N``, the matmul weights a token passes through), per layer:
    attention query ``embed x heads*head_dim``, key and value ``embed x kv_heads*head_dim``
    each (grouped-query attention: fewer kv heads, fewer FLOPs), output
    ``heads*head_dim x embed``; MLP ``embed x mlp_dim`` and ``mlp_dim x embed`` (SwiGLU:
    one more ``embed x mlp_dim``, the gate). Plus the output projection (the logits
    matmul), ``embed x padded vocab`` (``vocab_multiple`` padding included: those columns
    are computed): a real matmul whether or not it is tied to the word embeddings. The
    input embedding lookup (word and learned position embeddings) is a gather, not a
    matmul, and is excluded, as are biases and norm scales.

    Attention scores and values (``q k^T`` and ``softmax(.) v``): per layer and token,
    forward ``2 * 2 * seq_len * heads * head_dim`` (every query head, also under GQA),
    training 3x that. PaLM (appendix B) counts the full ``seq_len x seq_len`` square,
    ``6 * num_layers * seq_len * heads * head_dim * 2`` per token, without a causal
    saving; a causal kernel (flash attention) skips the masked upper triangle, about half,
    so we also give the halved ``6 * num_layers * seq_len * heads * head_dim`` and count
    that one in ``total``. XLA's dense attention (``implementation="xla"``) computes the
    whole square and masks it: compare its ``cost_analysis`` with
    ``total_no_causal_saving``.

    Args:
      model: a ``GPT`` whose vocabulary is known (``vocab_size`` set, or from its variant).
      seq_len: tokens per training sequence (the attention context).

    Returns:
      ``params``: int, N (the matmul params above, output projection included).
      ``params_non_embedding``: int, N without the output projection.
      ``params_flops``: int, ``6 * N`` per token.
      ``logits_flops``: int, ``6 * embed * padded vocab`` (part of ``params_flops``).
      ``attention_flops``: int, ``12 * num_layers * seq_len * heads * head_dim``, the
        full square (PaLM's count).
      ``attention_flops_causal``: int, half of that (the causal saving).
      ``total``: int, ``params_flops + attention_flops_causal``: the figure for MFU.
      ``total_no_causal_saving``: int, ``params_flops + attention_flops`` (PaLM's).
    """
    c = model.config()
    if c["vocab_size"] is None:
        raise ValueError("The model's vocab_size is None; set it (e.g. with_data_vocab).")
    if seq_len < 1:
        raise ValueError(f"seq_len={seq_len} must be >= 1.")
    embed, layers, heads, mlp = c["hidden"], c["num_layers"], c["heads"], c["mlp_dim"]
    kv_heads = c["kv_heads"] or heads
    head_dim = embed // heads
    attention = embed * heads * head_dim * 2 + embed * kv_heads * head_dim * 2
    mlp_params = (3 if c["activation"] == "swiglu" else 2) * embed * mlp
    non_embedding = layers * (attention + mlp_params)
    output = embed * padded_vocab_size(c["vocab_size"], model.vocab_multiple)
    params = non_embedding + output
    attention_flops = 6 * 2 * layers * seq_len * heads * head_dim
    return {
        "params": params,
        "params_non_embedding": non_embedding,
        "params_flops": 6 * params,
        "logits_flops": 6 * output,
        "attention_flops": attention_flops,
        "attention_flops_causal": attention_flops // 2,
        "total": 6 * params + attention_flops // 2,
        "total_no_causal_saving": 6 * params + attention_flops,
    }


def cost_analysis_flops(compiled: Any) -> float | None:
    """FLOPs that XLA counts in ``compiled.cost_analysis()`` (a ``jax.stages.Compiled`` or
    ``Lowered``: the lowered one is the unoptimised HLO), or None when unavailable.

    jax has returned a dict, a list with one dict per program (older versions), or None;
    backends without a cost model raise. XLA counts a loop body (``scan``, ``fori_loop``)
    once, not once per iteration: lower an unrolled step to count every layer.
    """
    try:
        cost = compiled.cost_analysis()
    except Exception:  # no cost model on this backend or jax version
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        return None
    flops = float(cost["flops"])
    return flops if math.isfinite(flops) and flops >= 0 else None


def train_flops_per_example(parts: Any, sample: dict) -> dict[str, Any]:
    """Analytic training FLOPs of one example of ``parts`` (an ``experiment.ModelParts``).

    Args:
      parts: the config's model, task and data (``ModelParts`` or ``Experiment``).
      sample: one preprocessed example, ``[1, ...]`` arrays (``parts.sample``).

    Returns:
      ``flops``: training FLOPs of one example (forward + backward).
      ``tokens``: tokens in one example (language models: the context; models of token
        ids ``[1, length]``: the length; encoder-decoders: source + decoder inputs), or
        None (images, features).
      ``basis``: how it was counted, for the log.
    """
    config = parts.config
    lm = config.data.get("lm")
    if lm and isinstance(parts.model, GPT):
        per_token = gpt_train_flops_per_token(parts.model, lm.context)["total"]
        return {"flops": per_token * lm.context, "tokens": int(lm.context),
                "basis": "6N + causal attention per token (model_flops."
                         "gpt_train_flops_per_token)"}
    kwargs = parts.task.model_kwargs(sample)
    init = make_variables_init(parts.model, sample["inputs"], kwargs)
    variables = nn.meta.unbox(jax.eval_shape(init, jax.random.key(0)))
    params = variables.pop("params")

    def apply(params, model_state, inputs, kwargs):
        return parts.model.apply({"params": params, **model_state}, inputs, train=False,
                                 **kwargs)

    flops = function_flops(apply, params, variables, sample["inputs"], kwargs)
    inputs = np.asarray(sample["inputs"]) if not isinstance(sample["inputs"], dict) else None
    tokens = (int(inputs.shape[1]) if inputs is not None and inputs.ndim == 2
              and np.issubdtype(inputs.dtype, np.integer) else None)
    if tokens is not None and "decoder_inputs" in kwargs:  # encoder-decoder: both sides
        tokens += int(np.shape(kwargs["decoder_inputs"])[1])
    return {"flops": flops.train, "tokens": tokens,
            "basis": "the forward's and backward's matmuls and convolutions (jaxpr_flops)"}
