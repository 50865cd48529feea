"""Models by name: `build(config.model)` returns a Flax linen Module.

Every model is applied purely, `model.apply({"params": p}, x, train=...,
rngs={"dropout": key})`, and returns `(out, aux)`.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from bigjax.models.bert import BertForMaskedLM, BertForSequenceClassification
from bigjax.models.cnn import CNN
from bigjax.models.mlp import MLP

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def _constructors() -> dict[str, Callable[..., nn.Module]]:
    return {"mlp": MLP, "cnn": CNN, "bert_classifier": BertForSequenceClassification,
            "bert_mlm": BertForMaskedLM}


def build(model_config: ml_collections.ConfigDict) -> nn.Module:
    """`model_config.name` picks the class; the other fields are its constructor arguments."""
    kwargs = dict(model_config)
    name = kwargs.pop("name")
    constructors = _constructors()
    if name not in constructors:
        raise ValueError(f"Unknown model {name!r}; known: {sorted(constructors)}.")
    for key in ("dtype", "param_dtype"):
        if key in kwargs:
            if kwargs[key] not in _DTYPES:
                raise ValueError(f"config.model.{key}={kwargs[key]!r}; choose from "
                                 f"{sorted(_DTYPES)}.")
            kwargs[key] = _DTYPES[kwargs[key]]
    for key, value in kwargs.items():
        if isinstance(value, list):
            kwargs[key] = tuple(value)
    try:
        return constructors[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"config.model does not fit model {name!r}: {err}") from None
