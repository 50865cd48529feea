"""The machinery of a config schema: typed keys with defaults and docs, and `resolve`,
which checks a config against them and fills in what it leaves out.

A schema is a dict `name -> node`, where a node is
  - `Key`: a leaf with a kind ("int", "float", "bool", "str", "ints", "floats", "strs",
    "any"), a default, a one-line doc, and optionally `choices`, a `Range`, `required`;
  - `Section`: a fixed set of keys (`nullable`: the whole section may be None);
  - `Switch`: keys that depend on the value of one of them (`config.model.name` picks
    the model's constructor arguments, `config.pp.kind` the preprocessing's);
  - `Entries`: any number of named sub-sections of one schema (`config.evals`).
The project's schema itself is `bigjax.config_keys`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any, Union


class ConfigError(ValueError):
    """Bad config input; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed numbers: `low <= x` (or `<` when `low_open`), likewise `high`; always finite."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, x: float) -> bool:
        if not math.isfinite(x):
            return False
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        return self.high is None or (x < self.high if self.high_open else x <= self.high)

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


POSITIVE = Range(1)  # for ints: >= 1
NON_NEGATIVE = Range(0)
ABOVE_ZERO = Range(0, low_open=True)
FRACTION = Range(0, 1, high_open=True)  # [0, 1): rates, momenta

_SCALARS = {"int": int, "float": (int, float), "bool": bool, "str": str}
_SEQUENCES = {"ints": int, "floats": (int, float), "strs": str}
_KIND_NAMES = {"ints": "list of int", "floats": "list of float", "strs": "str or list of str"}


@dataclasses.dataclass(frozen=True)
class Key:
    """One config value. `nullable`: None is allowed (it means what `doc` says);
    `also`: values allowed besides `range` (e.g. -1 for "all remaining devices")."""

    kind: str
    default: Any
    doc: str
    choices: tuple | None = None
    range: Range | None = None
    nullable: bool = False
    required: bool = False
    also: tuple = ()

    def type_name(self) -> str:
        """e.g. `int >= 1 | None`, `one of 'sgd', 'adam'`."""
        text = (f"one of {', '.join(map(repr, self.choices))}" if self.choices
                else _KIND_NAMES.get(self.kind, self.kind))
        if self.range is not None:
            text += f" {self.range}"
        if self.also:
            text += f" (or {', '.join(map(str, self.also))})"
        return text + (" | None" if self.nullable and None not in (self.choices or ()) else "")

    def check(self, value: Any, where: str) -> Any:
        """`value`, normalised (lists -> tuples, ints -> floats for float keys); raises
        ConfigError naming `where` when it does not fit."""
        if value is None:
            if self.nullable or (self.choices and None in self.choices):
                return None
            raise ConfigError(f"{where} must be set ({self.type_name()}): {self.doc}")
        if self.kind in _SCALARS:
            ok = isinstance(value, _SCALARS[self.kind]) and not (
                isinstance(value, bool) and self.kind != "bool")
            if not ok:
                raise ConfigError(f"{where}={value!r} must be {self.type_name()}; got a "
                                  f"{type(value).__name__}.")
            if self.kind == "float":
                value = float(value)
        elif self.kind in _SEQUENCES:
            item = _SEQUENCES[self.kind]
            if self.kind == "strs" and isinstance(value, str):
                return value  # one string stands for a list of one
            if not isinstance(value, list | tuple) or not all(
                    isinstance(v, item) and not isinstance(v, bool) for v in value):
                raise ConfigError(f"{where}={value!r} must be a list of {self.kind[:-1]}s"
                                  f"{' (or one string)' if self.kind == 'strs' else ''}.")
            value = tuple(value)
        if self.choices and value not in self.choices:
            hint = _did_you_mean(value, self.choices) if isinstance(value, str) else ""
            listing = ", ".join(map(repr, self.choices))
            raise ConfigError(f"{where}={value!r} is not one of {listing}.{hint}")
        if self.range is not None and value not in self.also:
            numbers = value if isinstance(value, tuple) else (value,)
            if not all(v in self.range for v in numbers):
                raise ConfigError(f"{where}={value!r} must be {self.type_name()}: {self.doc}")
        return value


@dataclasses.dataclass(frozen=True)
class Section:
    """Fixed keys; `nullable`: the section may be None as a whole (e.g. no tokenizer)."""

    doc: str
    keys: Mapping[str, Node]
    nullable: bool = False


@dataclasses.dataclass(frozen=True)
class Switch:
    """`common` keys, one of which (`selector`) picks the rest: `options[value]()`."""

    doc: str
    selector: str
    common: Mapping[str, Node]
    options: Mapping[str, Callable[[], Mapping[str, Node]]]

    def keys_for(self, choice: Any) -> dict[str, Node]:
        return {**self.common, **(self.options[choice]() if choice in self.options else {})}


@dataclasses.dataclass(frozen=True)
class Entries:
    """Any number of named sections, each of schema `entry`; None or {} for none. Keys an
    entry leaves out are not filled in (the evaluator falls back to its defaults)."""

    doc: str
    entry: Mapping[str, Node]


Node = Union[Key, Section, Switch, Entries]  # noqa: UP007 (a runtime alias)


def resolve(raw: Mapping, schema: Mapping[str, Node], prefix: str = "config.") -> dict:
    """`raw` (a nested dict) checked against `schema` with every missing key filled in by
    its default. Raises ConfigError for an unknown key (listing the section's keys with a
    "did you mean"), a value of the wrong type, outside its range or choices, or a missing
    required key."""
    raw = dict(raw or {})
    unknown = [k for k in raw if k not in schema]
    if unknown:
        raise ConfigError(_unknown_message(prefix, unknown[0], schema))
    out = {}
    for name, node in schema.items():
        where = f"{prefix}{name}"
        if isinstance(node, Key):
            if name not in raw and node.required:
                raise ConfigError(f"{where} is required ({node.type_name()}): {node.doc}")
            out[name] = node.check(raw[name], where) if name in raw else node.default
        elif isinstance(node, Entries):
            out[name] = _resolve_entries(raw.get(name), node, where)
        else:
            nullable = getattr(node, "nullable", False)
            value = raw.get(name, None if nullable else {})
            if value is None and nullable:
                out[name] = None
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where} must be a section (a dict of keys), got {value!r}.")
            out[name] = resolve(value, _section_keys(node, value, where), where + ".")
    return out


def fill_defaults(raw: Mapping, schema: Mapping[str, Node]) -> dict:
    """`raw` with the defaults of the keys it lacks added; nothing is checked (for configs
    saved by older runs, which may hold keys since retired)."""
    out = dict(raw)
    for name, node in schema.items():
        if isinstance(node, Key):
            out.setdefault(name, node.default)
        elif isinstance(node, Entries):
            out.setdefault(name, None)
        elif isinstance(node, Section) and node.nullable and out.get(name) is None:
            out[name] = None
        elif isinstance(out.get(name, {}), Mapping):
            value = out.get(name, {})
            keys = node.keys if isinstance(node, Section) else node.keys_for(
                value.get(node.selector))
            out[name] = fill_defaults(value, keys)
    return out


def lookup(schema: Mapping[str, Node], config: Mapping, dotted: str) -> Key | None:
    """The `Key` of dotted key `dotted` in `config` (None if there is none)."""
    parts = dotted.split(".")
    keys: Mapping[str, Node] = schema
    while len(parts) > 1:
        part = parts.pop(0)
        node, config = keys.get(part), (config or {}).get(part)
        if isinstance(node, Section):
            keys = node.keys
        elif isinstance(node, Switch):
            keys = node.keys_for((config or {}).get(node.selector))
        elif isinstance(node, Entries) and len(parts) == 2:  # evals.<entry name>.<key>
            keys, parts = node.entry, parts[1:]
        else:
            return None
    node = keys.get(parts[0])
    return node if isinstance(node, Key) else None


def _section_keys(node: Section | Switch, value: Mapping, where: str) -> Mapping[str, Node]:
    if isinstance(node, Section):
        return node.keys
    selector = node.common[node.selector]
    choice = selector.check(value.get(node.selector, selector.default),
                            f"{where}.{node.selector}")
    return node.keys_for(choice)


def _resolve_entries(value: Any, node: Entries, where: str) -> dict | None:
    if not value:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a dict of named entries, got {value!r}.")
    out = {}
    for entry_name, entry in value.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}.{entry_name} must be a dict of keys, got {entry!r}.")
        entry_where = f"{where}.{entry_name}"
        unknown = [k for k in entry if k not in node.entry]
        if unknown:
            raise ConfigError(_unknown_message(entry_where + ".", unknown[0], node.entry))
        resolved = {}
        for key, sub in node.entry.items():
            if key in entry:
                resolved[key] = sub.check(entry[key], f"{entry_where}.{key}")
            elif sub.required:
                raise ConfigError(f"{entry_where}.{key} is required ({sub.type_name()}): "
                                  f"{sub.doc}")
        out[entry_name] = resolved
    return out


def _did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _unknown_message(prefix: str, key: str, keys: Mapping[str, Node]) -> str:
    listing = ", ".join(sorted(keys))
    return (f"Unknown config key {prefix}{key}.{_did_you_mean(key, keys)} The keys of "
            f"{prefix.rstrip('.') or 'config'} are: {listing}. (`python -m bigjax.main "
            "--config=... --print_config` shows every key with its doc.)")
