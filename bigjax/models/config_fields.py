"""A model's constructor fields as config keys: `config.model` of model `name` takes the
dataclass fields of its Flax module, with their type hints, defaults and the
`Attributes:` lines of the class docstrings as docs — one source of truth, so a new
model family documents and validates its config by being written."""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from bigjax.config_schema import FRACTION, NON_NEGATIVE, POSITIVE, Key, Range

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
_DTYPE_FIELDS = ("dtype", "param_dtype")
_MODULE_FIELDS = ("parent", "name")
# Ranges by field name where a number's name says more than its type.
_RANGES = {"pad_id": NON_NEGATIVE, "layer_norm_eps": Range(0, low_open=True)}


def attribute_docs(cls: type) -> dict[str, str]:
    """`{field: first sentence of its doc}` from the `Attributes:` sections of `cls` and
    its bases (the class's own doc wins)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        text = inspect.cleandoc(klass.__dict__.get("__doc__") or "")
        _, found, section = text.partition("Attributes:\n")
        if not found:
            continue
        field = None
        for line in section.splitlines():
            match = re.match(r"  (\w+): (.*)", line)
            if match:
                field = match.group(1)
                docs[field] = match.group(2).strip()
            elif field and line.startswith("    "):
                docs[field] += " " + line.strip()  # a continuation line
            else:
                break  # the section ended
    return {k: re.split(r"(?<=\.)\s", v, maxsplit=1)[0] for k, v in docs.items()}


def _kind(hint) -> tuple[str, bool]:
    """`(schema kind, nullable)` of a type hint."""
    args = typing.get_args(hint)
    nullable = type(None) in args
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else typing.Any
    if hint in (int, float, bool, str):
        return hint.__name__, nullable
    if typing.get_origin(hint) in (Sequence, tuple, list) and typing.get_args(hint)[:1] == (int,):
        return "ints", nullable
    if typing.get_origin(hint) in (Sequence, tuple, list) and typing.get_args(hint)[:1] == (
            float,):
        return "floats", nullable
    return "any", nullable


def model_keys(cls: type[nn.Module]) -> dict[str, Key]:
    """The config keys of model class `cls` (besides `name`); a class may name the
    accepted values of a field in a `CONFIG_CHOICES: ClassVar[dict]`."""
    hints = typing.get_type_hints(cls)
    docs = attribute_docs(cls)
    keys = {}
    for field in dataclasses.fields(cls):
        if field.name in _MODULE_FIELDS:
            continue
        required = field.default is dataclasses.MISSING and \
            field.default_factory is dataclasses.MISSING
        default = None if required else field.default
        doc = docs.get(field.name, "(undocumented)")
        if field.name in _DTYPE_FIELDS:
            name = next(n for n, d in DTYPES.items() if d == default)
            keys[field.name] = Key("str", name, doc, choices=tuple(DTYPES))
            continue
        kind, nullable = _kind(hints[field.name])
        choices = getattr(cls, "CONFIG_CHOICES", {}).get(field.name)
        value_range = _RANGES.get(field.name)
        if value_range is None and kind == "int" and choices is None:
            value_range = POSITIVE
        if value_range is None and kind == "float" and field.name.endswith("_rate"):
            value_range = FRACTION
        if value_range is None and kind == "ints":
            value_range = POSITIVE
        keys[field.name] = Key(kind, tuple(default) if isinstance(default, list) else default,
                               doc, choices=choices, range=value_range,
                               nullable=nullable or (default is None and not required),
                               required=required)
    return keys
