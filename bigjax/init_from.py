"""Starting a run from another run's params or a Hugging Face BERT folder (`config.init_from`).

Params are matched by their path in the tree; a param whose path is missing
from the source, or whose shape differs (a new head), keeps its fresh
initialisation. A log line lists what was loaded and what is new.
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np

from bigjax import checkpoint, param_paths

log = logging.getLogger("bigjax")


def read_source_params(source: str, scan_layers: bool = False) -> dict:
    """Params (numpy) from a bigjax workdir (newest checkpoint) or a HF BERT folder
    (`config.json` + `model.safetensors`); "minilm" names the bundled all-MiniLM-L6-v2."""
    from bigjax.models import hf_bert_import

    if source == "minilm":
        source = hf_bert_import.minilm_folder()
    if os.path.isdir(os.path.join(source, "checkpoints")):
        log.info("init_from: reading the params of %s's newest checkpoint", source)
        return checkpoint.read_params_to_host(source)
    if os.path.isfile(os.path.join(source, "config.json")) and os.path.isfile(
            os.path.join(source, "model.safetensors")):
        return hf_bert_import.load_hf_bert(source, scan_layers=scan_layers)[1]
    raise FileNotFoundError(
        f"config.init_from={source!r} is neither a bigjax workdir (with checkpoints/) nor a "
        "Hugging Face folder (config.json + model.safetensors).")


def merge_params(fresh, source: dict):
    """`fresh` (sharded, initialised) with every leaf that `source` has at the same path and
    shape replaced by the source's value, placed with the fresh leaf's sharding.

    Returns `(params, report)`, report = {"loaded": [...], "new": [...], "unused": [...]}.
    """
    source_flat = param_paths.flatten(source)
    report = {"loaded": [], "new": [], "unused": []}
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(fresh)
    merged = []
    for path, leaf in paths_leaves:
        name = param_paths.path_name(path)
        value = source_flat.get(name)
        if value is not None and tuple(np.shape(value)) == tuple(leaf.shape):
            value = np.asarray(value, leaf.dtype)
            sharding = getattr(leaf, "sharding", None)
            merged.append(value if sharding is None else jax.device_put(value, sharding))
            report["loaded"].append(name)
        else:
            merged.append(leaf)
            report["new"].append(name if value is None else
                                 f"{name} (shape {np.shape(value)} -> {tuple(leaf.shape)})")
    used = set(report["loaded"])
    report["unused"] = sorted(set(source_flat) - used)
    return jax.tree_util.tree_unflatten(treedef, merged), report


def log_report(source: str, report: dict) -> None:
    log.info("init_from %s: loaded %d params; new (freshly initialised) %d: %s; unused from "
             "source %d: %s", source, len(report["loaded"]), len(report["new"]),
             ", ".join(report["new"]) or "none", len(report["unused"]),
             ", ".join(report["unused"][:10]) or "none")
