"""A sweep's points: what a config's `get_sweep(arg)` returns, and the runs they expand to.

A config file may define ``get_sweep(arg=None) -> list[dict]``: one dict of config
overrides per point, keyed by dotted config keys (``{"optim.learning_rate": 1e-3}``).
``axis``, ``product`` and ``zipped`` build such lists the way big_vision's
``get_hyper`` does::

    from bigjax.sweep_points import axis, product

    def get_sweep(arg=None):
        return product(axis("optim.learning_rate", [1e-3, 3e-3]),
                       axis("model.conv_features", [(16, 32), (32, 64)]))

``expand`` turns the points into runs: each point once, or once per seed
(``--seeds``) and per cross-validation fold (``--cv_folds``). Every run has its own
workdir, named after its overrides (``run_name``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from typing import Any

from bigjax import config_cli
from bigjax.datasets.cv_folds import HOLDOUT


def axis(key: str, values: list) -> list[dict]:
    """One point per value: ``[{key: v} for v in values]``."""
    return [{key: value} for value in values]


def product(*axes: list[dict]) -> list[dict]:
    """Every combination of one point from each axis (the first varies slowest)."""
    return [dict(itertools.chain.from_iterable(p.items() for p in combo))
            for combo in itertools.product(*axes)]


def zipped(*axes: list[dict]) -> list[dict]:
    """The i-th points of the axes merged (axes of one length)."""
    if len({len(a) for a in axes}) > 1:
        raise ValueError(f"zipped axes have different lengths: {[len(a) for a in axes]}.")
    return [dict(itertools.chain.from_iterable(p.items() for p in combo))
            for combo in zip(*axes, strict=True)]


def override_text(value: Any) -> str:
    """``value`` as ``--config.KEY=`` text that `config_cli` parses back to it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "None"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"Sweep value {value!r} is not a finite number.")
    return repr(tuple(value) if isinstance(value, list) else value)


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a sweep: its point (``overrides``, ``point`` = the point's name), its
    seed and fold (None when not repeated), its workdir name ``name``, and every
    override it passes (``args``: the point's, then seed and cross-validation)."""

    point: str
    overrides: dict
    seed: int | None
    fold: int | None
    name: str
    args: tuple[tuple[str, str], ...]


def _short(key: str, keys: list[str]) -> str:
    """The last part of a dotted key, or the whole key where that part is ambiguous."""
    last = key.rsplit(".", 1)[-1]
    return last if sum(k.rsplit(".", 1)[-1] == last for k in keys) == 1 else key


def point_name(overrides: dict, keys: list[str]) -> str:
    """A folder name for a point: ``learning_rate=0.001,conv_features=16-32``; "default"
    for a point without overrides. Characters other than letters, digits and ``._=,+-``
    become ``-``."""
    if not overrides:
        return "default"
    parts = []
    for key, value in overrides.items():
        text = override_text(value)
        text = re.sub(r"[()\[\]' ]+", "", text.replace(", ", ",").replace(",", "-"))
        parts.append(f"{_short(key, keys)}={text}")
    return re.sub(r"[^A-Za-z0-9._=,+-]", "-", ",".join(parts))


def check_points(points: Any, config_spec: str, base_overrides: list[tuple[str, str]]) -> list:
    """``points`` if it is a non-empty list of dicts whose every override applies to the
    config (with the command line's ``base_overrides``); else a `ConfigError` naming the
    point and the problem."""
    if not isinstance(points, list) or not points or \
            not all(isinstance(p, dict) for p in points):
        raise config_cli.ConfigError(
            f"{config_spec}: get_sweep must return a non-empty list of dicts of config "
            "overrides, e.g. [{'optim.learning_rate': 1e-3}, ...].")
    config = config_cli.apply_overrides(config_cli.load_config_file(config_spec), base_overrides)
    for i, point in enumerate(points):
        try:
            config_cli.apply_overrides(config, [(k, override_text(v)) for k, v in point.items()])
        except config_cli.ConfigError as err:
            raise config_cli.ConfigError(f"{config_spec}: sweep point {i} {point}: {err}") from None
    return points


def expand(points: list[dict], seeds: int | None = None, cv_folds: int | None = None
           ) -> list[Run]:
    """The runs of ``points``: each once, or for seeds 0..seeds-1 and folds
    0..cv_folds-1 (``data.cv_folds``, ``data.cv_fold``, and the default evaluator on
    the held-out fold, ``data.eval_split="cv_holdout"``). Two points with one name
    (the same overrides) are refused."""
    keys = sorted({k for p in points for k in p})
    for flag, owned in (("--seeds", ("seed",)) if seeds else (None, ()),
                        ("--cv_folds", ("data.cv_folds", "data.cv_fold", "data.eval_split"))
                        if cv_folds else (None, ())):
        clash = sorted(set(owned) & set(keys))
        if clash:
            raise config_cli.ConfigError(f"get_sweep sets {clash}, which {flag} sets for "
                                         f"every run: drop {flag} or those keys.")
    names = [point_name(p, keys) for p in points]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise config_cli.ConfigError(f"get_sweep lists the same point twice: {repeated}.")
    runs = []
    for point, name in zip(points, names, strict=True):
        args = [(k, override_text(v)) for k, v in point.items()]
        for seed in range(seeds) if seeds else [None]:
            for fold in range(cv_folds) if cv_folds else [None]:
                extra, suffix = [], ""
                if seed is not None:
                    extra.append(("seed", str(seed)))
                    suffix += f",seed={seed}"
                if fold is not None:
                    extra += [("data.cv_folds", str(cv_folds)), ("data.cv_fold", str(fold)),
                              ("data.eval_split", HOLDOUT)]
                    suffix += f",fold={fold}"
                full = (name + suffix).removeprefix("default,") if suffix else name
                runs.append(Run(name, point, seed, fold, full, tuple(args + extra)))
    return runs
