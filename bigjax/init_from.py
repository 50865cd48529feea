"""Starting a run from another run's params or a HF BERT/GPT-2/Llama folder (`config.init_from`).

Params are matched by their "a/b/c" path. From a bigjax workdir only the params of
its newest checkpoint are read (never optimizer moments), each device reading its
own shards of the new run's layout; a scanned stack (`layers` with a leading
[layers] axis) and an unscanned one (`layers_0 ... layers_{n-1}`) load into each
other. A source table smaller than the new one along a `vocab` axis (a vocabulary
padded for tensor parallelism) fills its first rows; a larger one whose extra rows are
all zero (padding) gives its first rows. A param whose path is missing
from the source, or whose shape differs otherwise (a new head), keeps its fresh
initialisation. A log line lists what was loaded and what is new.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import jax
import numpy as np
from etils import epath
from jax.sharding import NamedSharding, PartitionSpec

from bigjax import checkpoint, param_paths, run_files

log = logging.getLogger("bigjax")
_LAYER = re.compile(r"^layers_(\d+)$")


def read_source_params(source: str, scan_layers: bool = False, like=None) -> dict:
    """Params from a bigjax workdir (newest checkpoint) or a HF BERT folder
    (`config.json` + `model.safetensors`; numpy); "minilm" names the bundled
    all-MiniLM-L6-v2. A HF folder whose `config.json` has `model_type` "gpt2" or "llama"
    is read by `hf_gpt_import` (GPT params, numpy; safetensors may be sharded).

    For a workdir, `like` (the new run's params, sharded) gives the layout to read
    into: a flat `{"a/b/c": array}` of the leaves that could be matched, already on
    `like`'s shardings. Without `like` the workdir's params come back as numpy.
    """
    from bigjax.models import hf_bert_import, hf_gpt_import

    if source == "minilm":
        source = hf_bert_import.minilm_folder()
    if _is_workdir(source):
        log.info("init_from: reading the params of %s's newest checkpoint", source)
        step = checkpoint.latest_step_in(source)
        if like is None:
            return checkpoint.read_state_to_host(source, step)["params"]
        return read_workdir_params(source, step, like)
    if hf_gpt_import.is_hf_gpt_folder(source):
        return hf_gpt_import.load_hf_gpt(source, scan_layers=scan_layers)[1]
    if os.path.isfile(os.path.join(source, "config.json")) and os.path.isfile(
            os.path.join(source, "model.safetensors")):
        return hf_bert_import.load_hf_bert(source, scan_layers=scan_layers)[1]
    raise FileNotFoundError(
        f"config.init_from={source!r} is neither a bigjax workdir (with checkpoints/) nor a "
        "Hugging Face folder (config.json + model.safetensors).")


def read_workdir_params(workdir: str, step: int, like) -> dict[str, jax.Array]:
    """The params of checkpoint `step` that match `like`'s leaves, read onto their
    shardings, converting between scanned and unscanned layer stacks.

    Returns `{"a/b/c": array}` keyed by `like`'s paths.
    """
    saved = checkpoint.saved_shapes(workdir, step, "params")
    requests: dict[str, jax.ShapeDtypeStruct] = {}
    plans: dict[str, tuple] = {}
    for name, leaf in param_paths.flatten(like).items():
        spec, mesh = leaf.sharding.spec, leaf.sharding.mesh
        parts = name.split("/")
        if name in saved:
            shape = saved[name][0]
            target = leaf.sharding if shape == tuple(leaf.shape) else NamedSharding(
                mesh, PartitionSpec())
            requests[name] = jax.ShapeDtypeStruct(shape, leaf.dtype, sharding=target)
            plans[name] = ("same", name)
        elif "layers" in parts:  # scanned here, maybe unscanned in the source
            at = parts.index("layers")
            names = ["/".join([*parts[:at], f"layers_{i}", *parts[at + 1:]])
                     for i in range(leaf.shape[0])]
            if all(n in saved and saved[n][0] == tuple(leaf.shape[1:]) for n in names):
                per_layer = NamedSharding(mesh, PartitionSpec(*tuple(spec)[1:]))
                for n in names:
                    requests[n] = jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype,
                                                       sharding=per_layer)
                plans[name] = ("stack", names)
        else:  # unscanned here, maybe scanned in the source
            hits = [(i, p) for i, p in enumerate(parts) if _LAYER.match(p)]
            if hits:
                at, part = hits[0]
                stacked = "/".join([*parts[:at], "layers", *parts[at + 1:]])
                shape = saved.get(stacked, ((),))[0]
                index = int(_LAYER.match(part).group(1))
                if len(shape) == leaf.ndim + 1 and shape[1:] == tuple(leaf.shape) and \
                        index < shape[0]:
                    requests[stacked] = jax.ShapeDtypeStruct(
                        shape, leaf.dtype, sharding=NamedSharding(mesh, PartitionSpec(None, *spec)))
                    plans[name] = ("index", stacked, index)
    path = run_files.join(workdir, "checkpoints", str(step), "state")
    restored = param_paths.flatten(
        checkpoint.restore_parts(path, {"params": _nest(requests)})["params"])
    flat_like = param_paths.flatten(like)
    out = {}
    for name, plan in plans.items():
        if plan[0] == "same":
            out[name] = restored[plan[1]]
        elif plan[0] == "stack":
            out[name] = jax.jit(lambda *xs: jax.numpy.stack(xs),
                                out_shardings=flat_like[name].sharding)(
                *[restored[n] for n in plan[1]])
        else:
            out[name] = jax.jit(lambda x, i=plan[2]: x[i],
                                out_shardings=flat_like[name].sharding)(restored[plan[1]])
    unused = sorted(set(saved) - set(requests))
    if unused:
        out["__unused__"] = unused  # reported by merge_params
    return out


def read_workdir_model_state(source: str, like: dict) -> dict | None:
    """The model state (e.g. BatchNorm `batch_stats`) of a bigjax workdir's newest
    checkpoint onto `like`'s shardings, or None when `source` is not a workdir or its
    model state does not have `like`'s structure and shapes."""
    if not jax.tree.leaves(like) or not _is_workdir(source):
        return None
    step = checkpoint.latest_step_in(source)
    saved = checkpoint.saved_shapes(source, step, "model_state") or {}
    wanted = {name: tuple(x.shape) for name, x in param_paths.flatten(like).items()}
    if {name: shape for name, (shape, _) in saved.items()} != wanted:
        log.info("init_from %s: its model state does not fit this model; keeping the fresh "
                 "one.", source)
        return None
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                            like)
    path = run_files.join(source, "checkpoints", str(step), "state")
    return checkpoint.restore_parts(path, {"model_state": abstract})["model_state"]


def _is_workdir(source: str) -> bool:
    """Whether `source` (a local folder or a bucket URL) holds a bigjax run's checkpoints."""
    return epath.Path(run_files.join(source, "checkpoints")).is_dir()


def _nest(flat: dict[str, Any]) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def replaced_names(like, source: dict) -> frozenset[str]:
    """The param paths of `like` (the new run's params, or their abstract shapes) that
    `source` (as `read_source_params` returns it) replaces whole, by path and shape:
    their fresh initialisation is never used (`merge_params` puts the source's value)."""
    source_flat = param_paths.flatten({k: v for k, v in dict(source).items()
                                       if k != "__unused__"})
    return frozenset(name for name, leaf in param_paths.flatten(like).items()
                     if _loads_whole(source_flat.get(name), leaf))


def _loads_whole(value, leaf) -> bool:
    """Whether source `value` (None: absent) replaces the fresh `leaf` as it is: same shape."""
    return value is not None and tuple(np.shape(value)) == tuple(leaf.shape)


def merge_params(fresh, source: dict, logical_specs=None):
    """`fresh` (sharded, initialised) with every leaf that `source` has at the same path
    and shape replaced by the source's value, placed with the fresh leaf's sharding.

    `source`: a nested tree or a flat `{"a/b/c": value}`. With `logical_specs` (the
    fresh params' PartitionSpecs of logical axis names), a source value smaller than
    the fresh leaf only along `vocab` axes fills the leading part of it.

    Returns `(params, report)`, report = {"loaded": [...], "new": [...], "unused": [...]}.
    """
    source = dict(source)
    extra_unused = source.pop("__unused__", [])
    source_flat = {k: v for k, v in param_paths.flatten(source).items()}
    names_flat = param_paths.flatten(logical_specs) if logical_specs is not None else {}
    report = {"loaded": [], "new": [], "unused": []}
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(fresh)
    merged = []
    for path, leaf in paths_leaves:
        name = param_paths.path_name(path)
        value = source_flat.get(name)
        shape = None if value is None else tuple(np.shape(value))
        sharding = getattr(leaf, "sharding", None)
        if _loads_whole(value, leaf):
            value = value.astype(leaf.dtype) if isinstance(value, jax.Array) else \
                np.asarray(value, leaf.dtype)
            merged.append(value if sharding is None else jax.device_put(value, sharding))
            report["loaded"].append(name)
        elif shape is not None and _pads_vocab(shape, leaf.shape, names_flat.get(name)):
            index = tuple(slice(0, n) for n in shape)
            merged.append(jax.jit(lambda f, v, i=index: f.at[i].set(v.astype(f.dtype)),
                                  out_shardings=sharding)(leaf, value))
            report["loaded"].append(f"{name} (padded {shape} -> {tuple(leaf.shape)})")
        elif shape is not None and _pads_vocab(tuple(leaf.shape), shape, names_flat.get(name)) \
                and _only_zeros_beyond(value, leaf.shape):
            index = tuple(slice(0, n) for n in leaf.shape)  # the source's padding rows go
            merged.append(jax.device_put(np.asarray(value)[index].astype(leaf.dtype), sharding))
            report["loaded"].append(f"{name} (unpadded {shape} -> {tuple(leaf.shape)})")
        else:
            merged.append(leaf)
            report["new"].append(name if value is None else
                                 f"{name} (shape {shape} -> {tuple(leaf.shape)})")
    used = {n.split(" ")[0] for n in report["loaded"]}
    report["unused"] = sorted((set(source_flat) - used) | set(extra_unused))
    return jax.tree_util.tree_unflatten(treedef, merged), report


def _pads_vocab(shape, fresh_shape, spec) -> bool:
    """Whether `shape` differs from `fresh_shape` only by being smaller on `vocab` axes."""
    if spec is None or len(shape) != len(fresh_shape):
        return False
    names = list(spec) + [None] * (len(shape) - len(spec))
    diffs = [d for d, (a, b) in enumerate(zip(shape, fresh_shape, strict=True)) if a != b]
    return bool(diffs) and all(names[d] == "vocab" and shape[d] < fresh_shape[d]
                               for d in diffs)


def _only_zeros_beyond(value, shape) -> bool:
    """Whether `value` is zero outside its leading `shape` block (vocabulary padding)."""
    value = np.asarray(value)
    kept = np.zeros(value.shape, bool)
    kept[tuple(slice(0, n) for n in shape)] = True
    return not np.any(value[~kept])


def check_body_loaded(source: str, report: dict, head_modules: tuple[str, ...],
                      partial: bool) -> None:
    """Raises ValueError when `init_from` would leave params outside the model's heads
    (`head_modules`, top-level names) freshly initialised, unless `partial`
    (`config.init_from_partial`): a source of another architecture should not pass as
    a pretrained one."""
    body = [name for name in report["new"] if name.split("/")[0] not in head_modules]
    if body and not partial:
        raise ValueError(
            f"config.init_from={source!r} does not match the model's body: {len(body)} "
            f"params outside the heads ({', '.join(head_modules)}) would be freshly "
            f"initialised: {', '.join(body[:6])}{', ...' if len(body) > 6 else ''}. Use a "
            "source of the same architecture, or --config.init_from_partial=true to "
            "train those params from scratch.")


def log_report(source: str, report: dict) -> None:
    log.info("init_from %s: loaded %d params; new (freshly initialised) %d: %s; unused from "
             "source %d: %s", source, len(report["loaded"]), len(report["new"]),
             ", ".join(report["new"]) or "none", len(report["unused"]),
             ", ".join(report["unused"][:10]) or "none")
