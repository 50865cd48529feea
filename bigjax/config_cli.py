"""Config files and `--config.KEY=VALUE` overrides, as in ../shared/design/cli.md.

A config file `configs/NAME.py` defines `get_config(arg=None) -> ConfigDict`; the
command line names it as `configs/NAME.py[:ARG]`. Overrides are coerced to the
type of the value they replace; an unknown key is an error that lists the valid
keys.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Sequence

import ml_collections

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class ConfigError(ValueError):
    """Bad config input; the message says what to do."""


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """Loads `path/to/file.py[:arg]` by calling its `get_config(arg)`."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path!r} does not exist (see configs/ for the choices).")
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so a config can import its folder's shared pieces
    module_spec = importlib.util.spec_from_file_location("bigjax_user_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"Config file {path!r} defines no get_config(arg=None).")
    try:
        config = module.get_config(arg or None)
    except ValueError as err:  # e.g. an unknown variant name
        raise ConfigError(f"{spec}: {err}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{path}:get_config must return an ml_collections.ConfigDict.")
    return config


def config_from_json(path: str) -> ml_collections.ConfigDict:
    """Reads a `config.json` that a run wrote into its workdir."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path} not found: is the workdir one that bigjax.main trained into?")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def valid_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """All dotted leaf keys of `config`, sorted."""
    keys = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict):
            keys.extend(valid_keys(value, name + "."))
        else:
            keys.append(name)
    return sorted(keys)


def _coerce(text: str, current, key: str):
    """Parses `text` into the type of `current` (the value being overridden); "None" unsets
    any field that is not a string."""
    if text.lower() == "none" and not isinstance(current, str):
        return None
    if isinstance(current, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"--config.{key} expects true/false, got {text!r}.")
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            kind = type(current).__name__
            raise ConfigError(f"--config.{key} expects a number ({kind}), got {text!r}.")
        return float(value) if isinstance(current, float) else value
    if isinstance(current, str):
        return text
    # None, tuples, lists, dicts: a Python literal, else the plain string.
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Iterable[tuple[str, str]]
) -> ml_collections.ConfigDict:
    """Sets each dotted `key` to `value` (a string from the command line), in place."""
    for key, text in overrides:
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            child = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
            if not isinstance(child, ml_collections.ConfigDict):
                node = None
                break
            node = child
        if node is None or leaf not in node or isinstance(node[leaf], ml_collections.ConfigDict):
            listing = "\n  ".join(valid_keys(config))
            raise ConfigError(f"Unknown config key {key!r}. Valid keys:\n  {listing}")
        node[leaf] = _coerce(text, node[leaf], key)
    return config


def split_override_args(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Separates `--config.KEY=VALUE` / `--config.KEY VALUE` from the other arguments."""
    rest, overrides = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config."):
            body = arg[len("--config."):]
            if "=" in body:
                key, value = body.split("=", 1)
            elif i + 1 < len(argv):
                key, value = body, argv[i + 1]
                i += 1
            else:
                raise ConfigError(f"{arg} has no value: write {arg}=VALUE.")
            overrides.append((key, value))
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def to_json(config: ml_collections.ConfigDict) -> str:
    """The config as the JSON that a run writes to `workdir/config.json`."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)
