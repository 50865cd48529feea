"""Measurements on a mesh of 8 fake CPU devices, run in a subprocess by tests/test_mesh.py
(`python tests/mesh_probe.py` prints one JSON object). Not collected by pytest."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys

from bigjax.fake_cpu_devices import xla_flags_with_devices

os.environ["XLA_FLAGS"] = xla_flags_with_devices(os.environ.get("XLA_FLAGS"), 8)
os.environ["JAX_PLATFORMS"] = "cpu"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from bigjax import config_cli, models, sharding, tasks, train  # noqa: E402
from bigjax.train_state import abstract_state, init_state, make_init_fn  # noqa: E402
from bigjax.train_step import jit_train_step, make_step_fn  # noqa: E402

CONSTRAINT = re.compile(r"sdy.sharding_constraint %\S+ <@mesh, (.*?)> : tensor<([^>]*)>")


def bert_step(mesh_axes: dict, heads: int = 4, vocab_multiple: int = 1):
    """(jitted step, state, batch, shardings) of a tiny BERT classifier on `mesh_axes`."""
    mesh = sharding.make_mesh(ml_collections.ConfigDict(mesh_axes))
    rules = sharding.DEFAULT_RULES
    model = models.build(ml_collections.ConfigDict(dict(
        name="bert_classifier", variant="tiny", heads=heads, num_classes=2, max_len=32,
        vocab_multiple=vocab_multiple, dropout_rate=0.0, attention_dropout_rate=0.0)))
    task = tasks.get(ml_collections.ConfigDict(dict(task="classification",
                                                    model=dict(num_classes=2))))
    tx = optax.adamw(1e-3)
    ids = np.random.default_rng(0).integers(1, 30000, (8, 32)).astype(np.int32)
    init_fn = make_init_fn(model, tx, ids[:1])
    _, shardings = abstract_state(init_fn, mesh, rules)
    state = init_state(init_fn, 0, shardings, rules)

    def preprocess(b, rng, train):
        return {**b, "inputs": b["input_ids"]}

    one_step = make_step_fn(model, task, preprocess, tx, optax.constant_schedule(1e-3), mesh)
    step = jit_train_step(one_step, shardings, mesh)
    batch = sharding.put_batch({"input_ids": ids, "label": (ids[:, 1] % 2)}, mesh)
    return step, state, batch, shardings, mesh, rules


def constraints() -> dict:
    step, state, batch, _, mesh, rules = bert_step(dict(data=2, fsdp=1, tensor=4))
    with sharding.mesh_context(mesh, rules):
        inside = step.lower(state, batch).as_text()
    outside = step.lower(state, batch).as_text()
    return {"inside": sorted(set(CONSTRAINT.findall(inside))),
            "outside": sorted(set(CONSTRAINT.findall(outside)))}


def layout_after_steps() -> dict:
    step, state, batch, shardings, mesh, rules = bert_step(dict(data=2, fsdp=2, tensor=2))
    with sharding.mesh_context(mesh, rules):
        for _ in range(3):
            state, metrics = step(state, batch)
    pairs = zip(jax.tree.leaves(state), jax.tree.leaves(shardings), strict=True)
    mismatched = [str(x.sharding.spec) for x, s in pairs if x.sharding != s]
    specs = {str(s.spec) for s in jax.tree.leaves(shardings)}
    return {"mismatched": mismatched, "distinct_specs": sorted(specs),
            "compiles": step._cache_size(), "loss": float(metrics["loss"])}


def fsdp_bytes() -> dict:
    _, state, _, _, _, _ = bert_step(dict(data=1, fsdp=8, tensor=1), vocab_multiple=1024)
    large = {}
    for path, x in jax.tree_util.tree_flatten_with_path(state.params)[0]:
        if x.size >= 2**12:
            large[jax.tree_util.keystr(path)] = (x.addressable_shards[0].data.nbytes, x.nbytes)
    total = sum(x.nbytes for x in jax.tree.leaves(state.params))
    on_device_0 = sum(x.addressable_shards[0].data.nbytes for x in jax.tree.leaves(state.params))
    return {"large": large, "total": total, "device_0": on_device_0}


def tensor_fallback() -> dict:
    """heads=2 on a tensor axis of 4: the heads dims are replicated, the rest sharded."""
    _, state, _, shardings, _, _ = bert_step(dict(data=2, fsdp=1, tensor=4), heads=2,
                                             vocab_multiple=1024)
    query = state.params["bert"]["encoder"]["layers_0"]["attention"]["query"]["kernel"]
    mlp = state.params["bert"]["encoder"]["layers_0"]["mlp"]["wi"]["kernel"]
    emb = state.params["bert"]["embeddings"]["word_embeddings"]["embedding"]
    return {"query": str(query.sharding.spec), "mlp": str(mlp.sharding.spec),
            "embedding": [list(emb.shape), str(emb.sharding.spec)]}


def cnn_experiment(*overrides):
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:runlocal"))
    config = config_cli.apply_overrides(config, [("model.dropout_rate", "0.0"), *overrides])
    return train.build_experiment(config)


def accumulation() -> dict:
    """One step of the digits CNN with the full batch vs 4 microbatches, on 8 devices."""
    params = {}
    for k in (1, 4):
        exp = cnn_experiment(("grad_accum_steps", str(k)))
        state = init_state(exp.init_fn, 0, exp.state_shardings, exp.rules)
        step = train.make_train_step(exp)
        with sharding.mesh_context(exp.mesh, exp.rules):
            for i in range(2):
                state, _ = step(state, sharding.put_batch(exp.train_batches[i], exp.mesh))
        params[k] = [np.asarray(x) for x in jax.tree.leaves(state.params)]
    diff = max(float(np.abs(a - b).max() / (np.abs(a).max() + 1e-12))
               for a, b in zip(params[1], params[4], strict=True))
    return {"max_relative_difference": diff}


def cnn_fsdp() -> dict:
    exp = cnn_experiment(("mesh.data", "1"), ("mesh.fsdp", "8"))
    p = exp.abstract_state.params
    return {"dense_0": str(p["dense_0"]["kernel"].sharding.spec),
            "head": str(p["head"]["kernel"].sharding.spec)}


def sharded_dropout() -> dict:
    """bigjax's Dropout on an input split over 8 devices: the same output as unsharded."""
    import flax.linen as nn
    from jax.sharding import NamedSharding, PartitionSpec

    from bigjax.models.layers.dropout import Dropout

    x = np.random.default_rng(0).normal(size=(8, 4, 16, 16)).astype(np.float32)
    rngs = {"dropout": jax.random.key(3)}

    def apply(module, inputs):
        return module.apply({}, inputs, deterministic=False, rngs=rngs)

    mesh = jax.make_mesh((8,), ("data",))
    split = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    sharded = jax.jit(apply, static_argnums=0)(Dropout(0.1), split)
    whole = jax.jit(apply, static_argnums=0)(Dropout(0.1), x)
    reference = jax.jit(apply, static_argnums=0)(nn.Dropout(0.1), x)
    return {"shards": len(sharded.sharding.device_set),
            "equal_to_unsharded": bool(np.array_equal(np.asarray(sharded), np.asarray(whole))),
            "equal_to_flax": bool(np.array_equal(np.asarray(sharded), np.asarray(reference)))}


CHECKS = {f.__name__: f for f in (constraints, layout_after_steps, fsdp_bytes, tensor_fallback,
                                  accumulation, cnn_fsdp, sharded_dropout)}

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    names = sys.argv[1:] or list(CHECKS)
    assert len(jax.devices()) == 8 and math.prod([1]) == 1
    print(json.dumps({name: CHECKS[name]() for name in names}))
