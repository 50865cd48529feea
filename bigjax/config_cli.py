"""Config files and `--config.KEY=VALUE` overrides, as in ../shared/design/cli.md.

A config file `configs/NAME.py` defines `get_config(arg=None) -> ConfigDict` stating
what differs from the defaults of `bigjax.config_keys`; the command line names it as
`configs/NAME.py[:ARG]`. Config files are executed Python code: use only files from
sources you trust. Loaded configs and overrides are checked against the schema
(`config_keys.resolve`): an unknown key is an error with a "did you mean" and the
section's keys; overrides are parsed as the type of their key.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Iterable, Sequence

import ml_collections
from etils import epath

from bigjax import config_keys
from bigjax.config_schema import ConfigError, Key

__all__ = ["ConfigError", "apply_overrides", "config_from_json", "load_config_file",
           "load_sweep", "split_override_args", "to_json", "valid_keys"]

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _call_config_function(spec: str, function: str):
    """Executes the config file of `path/to/file.py[:arg]` and returns `function(arg)`;
    a failure inside the file is a one-line `ConfigError` naming the line."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path!r} does not exist (see configs/ for the choices).")
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so a config can import its folder's shared pieces
    try:
        module_spec = importlib.util.spec_from_file_location("bigjax_user_config", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        if not hasattr(module, function):
            raise ConfigError(f"Config file {path!r} defines no {function}(arg=None).")
        return getattr(module, function)(arg or None)
    except ConfigError:
        raise
    except Exception as err:  # the config's own code failed: say where, in one line
        raise ConfigError(f"{spec}: {_where_in(err, path)}{type(err).__name__}: {err}") from err


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """Loads `path/to/file.py[:arg]` by calling its `get_config(arg)`; returns the config
    resolved against the schema (every key set, every value checked)."""
    config = _call_config_function(spec, "get_config")
    path = spec.partition(":")[0]
    if not isinstance(config, ml_collections.ConfigDict | dict):
        raise ConfigError(f"{path}:get_config must return an ml_collections.ConfigDict.")
    return config_keys.resolve(config)


def load_sweep(spec: str) -> list:
    """The points of `path/to/file.py[:arg]`'s `get_sweep(arg)` (unchecked: see
    `sweep_points.check_points`)."""
    return _call_config_function(spec, "get_sweep")


def _where_in(err: BaseException, path: str) -> str:
    """"line N: " of the innermost frame of `err` inside file `path` ("" if none)."""
    if isinstance(err, SyntaxError) and err.lineno:
        return f"line {err.lineno}: "
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if os.path.abspath(f.filename) == os.path.abspath(path)]
    return f"line {frames[-1].lineno} ({frames[-1].line.strip()}): " if frames else ""


def config_from_json(path: str) -> ml_collections.ConfigDict:
    """Reads a `config.json` that a run wrote into its workdir (data, never executed);
    keys added to bigjax since that run get their defaults."""
    file = epath.Path(path)
    if not file.is_file():
        raise ConfigError(f"{path} not found: is the workdir one that bigjax.main trained into?")
    try:
        saved = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); restore it from "
                          "config_history.jsonl or the command that made the run.") from None
    return config_keys.resolve(config_keys.fill_legacy(saved))


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


def _coerce(text: str, current, key: str, schema_key: Key | None = None):
    """Parses `text` into the type of key `key`: its schema kind, else the type of
    `current` (the value being overridden); "None" unsets any field that is not a string."""
    kind = schema_key.kind if schema_key is not None else None
    if text.lower() == "none" and not (kind == "str" and not schema_key.nullable) and \
            not (kind is None and isinstance(current, str)):
        return None
    if kind == "bool" or (kind is None and isinstance(current, bool)):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"--config.{key} expects true/false, got {text!r}.")
    if kind in ("int", "float") or (kind is None and isinstance(current, int | float)):
        number_kind = kind or type(current).__name__
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, int | float) or isinstance(value, bool) or (
                number_kind == "int" and not isinstance(value, int)):
            wanted = "an integer" if number_kind == "int" else "a number"
            kind_name = schema_key.type_name() if schema_key else number_kind
            raise ConfigError(f"--config.{key} expects {wanted} ({kind_name}), got {text!r}.")
        return float(value) if number_kind == "float" else value
    if kind == "str" or (kind is None and isinstance(current, str)):
        return text
    # Sequences, "any", unknown: a Python literal, else the plain string.
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Iterable[tuple[str, str]]
) -> ml_collections.ConfigDict:
    """`config` with each dotted `key` set to `value` (a string from the command line),
    resolved against the schema (a new ConfigDict)."""
    raw = config.to_dict()
    for key, text in overrides:
        schema_key = config_keys.key_of(raw, key)
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            if schema_key is not None and node.get(part) is None:
                node[part] = {}  # e.g. a new evals entry, or a tokenizer section
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                break
        known = isinstance(node, dict) and (schema_key is not None or (
            leaf in node and not isinstance(node[leaf], dict)))
        if not known:
            raise ConfigError(_unknown_key_message(raw, key))
        node[leaf] = _coerce(text, node.get(leaf), key, schema_key)
    return config_keys.resolve(raw)


def _unknown_key_message(raw: dict, key: str) -> str:
    keys = valid_keys(ml_collections.ConfigDict(raw))
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    section = key.rpartition(".")[0]
    listed = [k for k in keys if k.startswith(section + ".")] if section else []
    hint = f" Did you mean --config.{close[0]}?" if close else ""
    where = f"of {section}" if listed else "of the config"
    return (f"Unknown config key --config.{key}.{hint} The keys {where} are: "
            f"{', '.join(listed or keys)}.")


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
