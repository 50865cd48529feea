"""Import a Hugging Face GPT-2 or Llama checkpoint into ``bigjax.models.gpt.GPT`` params.

A folder holds ``config.json`` and ``model.safetensors``, or shards listed by
``model.safetensors.index.json``; it is read through ``etils.epath`` (local or
``gs://``) and parsed with numpy (no torch; bfloat16 through ``ml_dtypes``). The
params are the tree of ``GPT(**kwargs).init(...)["params"]`` (unboxed, float32 numpy,
the vocabulary unpadded: ``init_from.merge_params`` pads it)::

    embeddings/word_embeddings/embedding        [vocab, embed]
    embeddings/position_embeddings/embedding    [max_len, embed]      (GPT-2)
    decoder/layers_{i}/attention/{query, key, value}/kernel [embed, (kv_)heads, head_dim]
    decoder/layers_{i}/attention/out/kernel     [heads, head_dim, embed]
    decoder/layers_{i}/mlp/{wi | wi_0, wi_1, wo}, {attention_norm, mlp_norm}, final_norm
    lm_head/kernel                              [embed, vocab]        (untied only)

GPT-2's ``Conv1D`` weights are already [in, out]; Llama's ``nn.Linear`` ones are
[out, in] and are transposed. HF Llama's rotary embedding uses the "rotate half"
layout of ``bigjax.models.layers.rotary``, so queries and keys need no permutation.
"""

from __future__ import annotations

import json
from typing import Any

import ml_dtypes
import numpy as np
from etils import epath

from bigjax.models.hf_bert_import import _Tensors
from bigjax.models.layers.encoder import stack_layer_params

MODEL_TYPES = ("gpt2", "llama")
# The HF tensor-name prefix of each model's body (``lm_head.weight`` has none).
_PREFIXES = {"gpt2": "transformer.", "llama": "model."}
# Non-parameter buffers some checkpoints carry: GPT-2's causal masks, old rotary caches.
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")
_GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "BOOL": np.bool_,
}


def hf_config_to_kwargs(hf_config: dict[str, Any]) -> dict[str, Any]:
    """Maps a HF ``GPT2Config`` / ``LlamaConfig`` dict to ``GPT`` module fields.

    Every size field is set, so the result does not depend on ``GPT.variant``. Raises
    ValueError for a model type or a feature (a rope type other than Llama 3.1's, biases
    in Llama, ...) that
    ``GPT`` cannot reproduce.
    """
    model_type = hf_config.get("model_type")
    if model_type == "gpt2":
        return _gpt2_kwargs(hf_config)
    if model_type == "llama":
        return _llama_kwargs(hf_config)
    raise ValueError(f"Unsupported Hugging Face model_type {model_type!r}; supported: "
                     f"{', '.join(MODEL_TYPES)}.")


def _gpt2_kwargs(c: dict[str, Any]) -> dict[str, Any]:
    act = c.get("activation_function", "gelu_new")
    if act not in _GPT2_ACTIVATIONS:
        raise ValueError(f"GPT-2 activation_function={act!r} is not supported; supported: "
                         f"{sorted(_GPT2_ACTIVATIONS)}.")
    for key, ok in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                    ("add_cross_attention", False)):
        if c.get(key, ok) != ok:
            raise ValueError(f"GPT-2 {key}={c[key]!r} is not supported (only {ok}).")
    hidden = c["n_embd"]
    return dict(
        vocab_size=c["vocab_size"], max_len=c["n_positions"], num_layers=c["n_layer"],
        hidden=hidden, heads=c["n_head"], kv_heads=c["n_head"],
        mlp_dim=c.get("n_inner") or 4 * hidden, position="learned", rope_theta=10000.0,
        rope_scaling=None,
        tie_embeddings=c.get("tie_word_embeddings", True),
        activation=_GPT2_ACTIVATIONS[act], norm="layer_norm",
        norm_eps=c.get("layer_norm_epsilon", 1e-5), use_bias=True, dropout_rate=0.0)


def _rope(c: dict[str, Any]) -> tuple[float, tuple | None]:
    """(RoPE base, Llama 3.1 scaling or None) from ``rope_theta``, ``rope_parameters``
    (transformers 5) or ``rope_scaling`` (4.x); raises ValueError on a rope type other
    than "default" and "llama3"."""
    theta, scaling = c.get("rope_theta"), None
    for key in ("rope_parameters", "rope_scaling"):
        rope = c.get(key) or {}
        kind = rope.get("rope_type", rope.get("type", "default"))
        if kind == "llama3":
            scaling = (float(rope["factor"]), float(rope["low_freq_factor"]),
                       float(rope["high_freq_factor"]),
                       int(rope["original_max_position_embeddings"]))
        elif kind != "default":
            raise ValueError(f"Llama {key} has rope type {kind!r}; supported: 'default' "
                             "(unscaled) and 'llama3' (Llama 3.1's rescaling).")
        theta = rope.get("rope_theta", theta)
    return float(10000.0 if theta is None else theta), scaling


def _llama_kwargs(c: dict[str, Any]) -> dict[str, Any]:
    for key in ("attention_bias", "mlp_bias"):
        if c.get(key, False):
            raise ValueError(f"Llama {key}=true is not supported (GPT has no biases with "
                             "RMSNorm).")
    act = c.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"Llama hidden_act={act!r} is not supported (only 'silu').")
    hidden, heads = c["hidden_size"], c["num_attention_heads"]
    theta, scaling = _rope(c)
    head_dim = c.get("head_dim") or hidden // heads
    if head_dim * heads != hidden:
        raise ValueError(f"Llama head_dim={head_dim} * num_attention_heads={heads} != "
                         f"hidden_size={hidden}; GPT needs head_dim = hidden / heads.")
    return dict(
        vocab_size=c["vocab_size"], max_len=c["max_position_embeddings"],
        num_layers=c["num_hidden_layers"], hidden=hidden, heads=heads,
        kv_heads=c.get("num_key_value_heads") or heads, mlp_dim=c["intermediate_size"],
        position="rotary", rope_theta=theta, rope_scaling=scaling,
        tie_embeddings=c.get("tie_word_embeddings", False), activation="swiglu",
        norm="rms_norm", norm_eps=c.get("rms_norm_eps", 1e-6), use_bias=False,
        dropout_rate=0.0)


def _gpt2_layer(t: _Tensors, p: str, heads: int) -> dict[str, Any]:
    """GPT-2 block ``p`` ("h.{i}."); Conv1D weights are [in, out]."""
    qkv = t.get(p + "attn.c_attn.weight")  # [embed, 3 * embed]: q | k | v
    qkv_bias = t.get(p + "attn.c_attn.bias")  # [3 * embed]
    embed = qkv.shape[0]
    attention = {
        name: {"kernel": w.reshape(embed, heads, -1), "bias": b.reshape(heads, -1)}
        for name, w, b in zip(("query", "key", "value"), np.split(qkv, 3, axis=1),
                              np.split(qkv_bias, 3), strict=True)}
    attention["out"] = {  # [heads * head_dim, embed] -> [heads, head_dim, embed]
        "kernel": t.get(p + "attn.c_proj.weight").reshape(heads, -1, embed),
        "bias": t.get(p + "attn.c_proj.bias")}

    def conv1d(name: str) -> dict[str, np.ndarray]:
        return {"kernel": t.get(p + name + ".weight"), "bias": t.get(p + name + ".bias")}

    return {"attention_norm": t.norm(p + "ln_1"), "attention": attention,
            "mlp_norm": t.norm(p + "ln_2"),
            "mlp": {"wi": conv1d("mlp.c_fc"), "wo": conv1d("mlp.c_proj")}}


def _llama_layer(t: _Tensors, p: str, heads: int, kv_heads: int) -> dict[str, Any]:
    """Llama block ``p`` ("layers.{i}."); Linear weights [out, in] are transposed."""

    def kernel(name: str) -> np.ndarray:
        return t.get(p + name + ".weight").T  # [in, out]

    query = kernel("self_attn.q_proj")  # [embed, heads * head_dim]
    embed = query.shape[0]
    return {
        "attention_norm": {"scale": t.get(p + "input_layernorm.weight")},
        "attention": {
            "query": {"kernel": query.reshape(embed, heads, -1)},
            "key": {"kernel": kernel("self_attn.k_proj").reshape(embed, kv_heads, -1)},
            "value": {"kernel": kernel("self_attn.v_proj").reshape(embed, kv_heads, -1)},
            "out": {"kernel": kernel("self_attn.o_proj").reshape(heads, -1, embed)},
        },
        "mlp_norm": {"scale": t.get(p + "post_attention_layernorm.weight")},
        "mlp": {"wi_0": {"kernel": kernel("mlp.gate_proj")},
                "wi_1": {"kernel": kernel("mlp.up_proj")},
                "wo": {"kernel": kernel("mlp.down_proj")}},
    }


def convert_hf_gpt(
    tensors: dict[str, np.ndarray], hf_config: dict[str, Any], *, scan_layers: bool = False
) -> dict[str, Any]:
    """HF GPT-2 / Llama state dict (numpy) -> ``GPT`` params (see the module docstring).

    Args:
      tensors: HF tensor names (with or without the ``transformer.`` / ``model.``
        prefix) -> arrays.
      hf_config: the checkpoint's ``config.json``.
      scan_layers: stack the layers for ``GPT(scan_layers=True)`` (leading [layers] axis).
    """
    kwargs = hf_config_to_kwargs(hf_config)
    model_type = hf_config["model_type"]
    prefix = _PREFIXES[model_type]
    t = _Tensors({k.removeprefix(prefix): v for k, v in tensors.items()
                  if not k.endswith(_BUFFER_SUFFIXES)})
    num_layers, heads = kwargs["num_layers"], kwargs["heads"]
    if model_type == "gpt2":
        word = t.get("wte.weight")
        embeddings = {"word_embeddings": {"embedding": word},
                      "position_embeddings": {"embedding": t.get("wpe.weight")}}
        layer_prefix = "h."
        decoder = {f"layers_{i}": _gpt2_layer(t, f"h.{i}.", heads) for i in range(num_layers)}
        decoder["final_norm"] = t.norm("ln_f")
    else:
        word = t.get("embed_tokens.weight")
        embeddings = {"word_embeddings": {"embedding": word}}
        layer_prefix = "layers."
        decoder = {f"layers_{i}": _llama_layer(t, f"layers.{i}.", heads, kwargs["kv_heads"])
                   for i in range(num_layers)}
        decoder["final_norm"] = {"scale": t.get("norm.weight")}
    if t.has(f"{layer_prefix}{num_layers}."):
        raise ValueError(f"Checkpoint has more than {num_layers} layers.")
    if scan_layers:
        decoder = stack_layer_params(decoder, num_layers)
    params: dict[str, Any] = {"embeddings": embeddings, "decoder": decoder}
    if not kwargs["tie_embeddings"]:
        params["lm_head"] = {"kernel": t.get("lm_head.weight").T}  # [vocab, embed] -> .T
    elif "lm_head.weight" in t.tensors and not np.array_equal(t.get("lm_head.weight"), word):
        raise ValueError("tie_word_embeddings is true but lm_head.weight differs from the "
                         "word embeddings.")
    unused = sorted(k for k in t.tensors if k not in t.used)
    if unused:
        raise ValueError(f"Checkpoint tensors not mapped to GPT params: {unused}")
    return params


def read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file's bytes as numpy arrays (bfloat16 included, which
    ``safetensors.numpy`` cannot read): an 8-byte little-endian header length, a JSON
    header ``{name: {dtype, shape, data_offsets}}``, then the data."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        if info["dtype"] not in _SAFETENSORS_DTYPES:
            raise ValueError(f"Tensor {name!r} has unsupported safetensors dtype "
                             f"{info['dtype']!r}.")
        dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]])
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data, dtype, (end - start) // dtype.itemsize,
                                  8 + size + start).reshape(info["shape"])
    return out


def is_hf_gpt_folder(folder: str) -> bool:
    """Whether ``folder`` has a ``config.json`` whose ``model_type`` is in ``MODEL_TYPES``."""
    config = epath.Path(folder) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") in MODEL_TYPES


def load_hf_gpt(folder: str, *, scan_layers: bool = False) -> tuple[dict[str, Any], dict]:
    """Loads a HF GPT-2 / Llama folder (local or ``gs://``).

    Args:
      folder: ``config.json`` and ``model.safetensors``, or shards listed by
        ``model.safetensors.index.json`` (``weight_map``: tensor -> file).
      scan_layers: return the layers stacked for ``GPT(scan_layers=True)``.

    Returns:
      (model_kwargs, params): ``GPT`` fields (``hf_config_to_kwargs``) and float32 numpy
      params.
    """
    root = epath.Path(folder)
    if not (root / "config.json").is_file():
        raise FileNotFoundError(f"Hugging Face folder {folder!r} has no 'config.json'.")
    hf_config = json.loads((root / "config.json").read_text())
    kwargs = hf_config_to_kwargs(hf_config)
    if (root / "model.safetensors").is_file():
        files = ["model.safetensors"]
    elif (root / "model.safetensors.index.json").is_file():
        index = json.loads((root / "model.safetensors.index.json").read_text())
        files = sorted(set(index["weight_map"].values()))
    else:
        raise FileNotFoundError(f"Hugging Face folder {folder!r} has neither "
                                "'model.safetensors' nor 'model.safetensors.index.json'.")
    tensors: dict[str, np.ndarray] = {}
    for name in files:
        tensors.update(read_safetensors((root / name).read_bytes()))
    return kwargs, convert_hf_gpt(tensors, hf_config, scan_layers=scan_layers)


# Fields that shape the computation without (always) shaping a param: a difference is
# not caught by the param shapes when the checkpoint is merged in.
_ARCHITECTURE_FIELDS = ("num_layers", "hidden", "heads", "kv_heads", "mlp_dim", "position",
                        "rope_theta", "rope_scaling", "tie_embeddings", "activation", "norm",
                        "norm_eps", "use_bias")


def check_model_matches(folder: str, model_config: dict[str, Any]) -> None:
    """ValueError listing every architecture field in which `model_config` (a `GPT`'s
    resolved `config()`) differs from the checkpoint in `folder` (e.g. RMSNorm vs a
    bias-free LayerNorm, or another RoPE base: equal param shapes, another model)."""
    expected = hf_config_to_kwargs(json.loads((epath.Path(folder) / "config.json").read_text()))
    def same_types(config: dict[str, Any]) -> dict[str, Any]:  # a list read from JSON
        return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}

    mine = same_types({**model_config,
                       "kv_heads": model_config["kv_heads"] or model_config["heads"]})
    theirs = same_types({**expected, "kv_heads": expected["kv_heads"] or expected["heads"]})
    differ = [f"{k}={mine[k]!r} (checkpoint: {theirs[k]!r})" for k in _ARCHITECTURE_FIELDS
              if mine[k] != theirs[k]]
    if differ:
        raise ValueError(f"config.init_from={folder} holds another architecture than "
                         f"config.model: {', '.join(differ)}. Set config.model to the "
                         "checkpoint's (models.hf_gpt_import.hf_config_to_kwargs gives them).")
