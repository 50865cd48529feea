"""Models by name: `build(config.model)` returns a Flax linen Module.

Every model is applied purely, `model.apply({"params": p}, x, train=...,
rngs={"dropout": key})`, and returns `(out, aux)`.
"""

from __future__ import annotations

import flax.linen as nn
import ml_collections

from bigjax.models.bert import BertForMaskedLM, BertForSequenceClassification
from bigjax.models.cnn import CNN
from bigjax.models.config_fields import DTYPES, model_keys
from bigjax.models.gpt import GPT
from bigjax.models.mlp import MLP
from bigjax.models.resnet import ResNet
from bigjax.models.speed_resnet import SpeedResNet
from bigjax.models.transformer import Transformer
from bigjax.models.vit import ViT

# `config.model.name` -> the module class; its dataclass fields are the config keys.
MODELS: dict[str, type[nn.Module]] = {
    "mlp": MLP, "cnn": CNN, "bert_classifier": BertForSequenceClassification,
    "bert_mlm": BertForMaskedLM, "gpt": GPT, "transformer": Transformer,
    "resnet": ResNet, "speed_resnet": SpeedResNet, "vit": ViT}

__all__ = ["MODELS", "build", "model_keys"]


def build(model_config: ml_collections.ConfigDict) -> nn.Module:
    """`model_config.name` picks the class; the other fields are its constructor arguments."""
    kwargs = dict(model_config)
    name = kwargs.pop("name")
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; known: {sorted(MODELS)}.")
    for key in ("dtype", "param_dtype"):
        if key in kwargs:
            if kwargs[key] not in DTYPES:
                raise ValueError(f"config.model.{key}={kwargs[key]!r}; choose from "
                                 f"{sorted(DTYPES)}.")
            kwargs[key] = DTYPES[kwargs[key]]
    for key, value in kwargs.items():
        if isinstance(value, list):
            kwargs[key] = tuple(value)
    try:
        return MODELS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"config.model does not fit model {name!r}: {err}") from None
