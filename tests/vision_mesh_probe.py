"""Run by tests/test_vision_models.py in a subprocess with 8 fake CPU devices: two train
steps of a small ResNet (BatchNorm) on 1 device and on data=8, and of a small ViT on 1
device and on data=2 x fsdp=2 x tensor=2, on the same global batches; prints one JSON
object: the largest differences of the params and BatchNorm statistics from the
1-device run, two ViT params' shardings, and how far per-device BatchNorm statistics
(each device normalising its own 2 examples) would land from the global ones. Not
collected by pytest."""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bigjax.fake_cpu_devices import xla_flags_with_devices  # noqa: E402

os.environ["XLA_FLAGS"] = xla_flags_with_devices(os.environ.get("XLA_FLAGS"), 8)
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from bigjax import models, sharding, tasks  # noqa: E402
from bigjax.pp import image  # noqa: E402
from bigjax.train_state import abstract_state, init_state, make_init_fn  # noqa: E402
from bigjax.train_step import jit_train_step, make_step_fn  # noqa: E402

MODELS = {
    "resnet": dict(name="resnet", num_classes=10, variant="resnet10", stem="cifar", width=4,
                   zero_init_residual=False),
    "vit": dict(name="vit", num_classes=10, variant="Ti/4", depth=2, width=32, num_heads=4,
                mlp_dim=64),
}


def train(model_config: dict, mesh_axes: dict, devices, batches: list[dict]):
    mesh = sharding.make_mesh(ml_collections.ConfigDict(mesh_axes), devices)
    rules = sharding.DEFAULT_RULES
    model = models.build(ml_collections.ConfigDict(model_config))
    task = tasks.get(ml_collections.ConfigDict(dict(task="classification",
                                                    model=dict(num_classes=10))))
    preprocess = image.make_preprocess(ml_collections.ConfigDict(dict(
        normalize="minus_one_to_one")))
    tx = optax.sgd(0.1, momentum=0.9)
    sample = preprocess({k: v[:1] for k, v in batches[0].items()}, None,
                        train=False)["inputs"]
    init_fn = make_init_fn(model, tx, sample)
    _, shardings = abstract_state(init_fn, mesh, rules)
    state = init_state(init_fn, 0, shardings, rules)
    one_step = make_step_fn(model, task, preprocess, tx, optax.constant_schedule(0.1), mesh)
    step = jit_train_step(one_step, shardings, mesh)
    with sharding.mesh_context(mesh, rules):
        for batch in batches:
            state, metrics = step(state, sharding.put_batch(batch, mesh))
    return jax.device_get(state), shardings, float(metrics["loss"])


def spec(shardings, path: str) -> list:
    node = shardings.params
    for part in path.split("/"):
        node = node[part]
    return [a if a is None or isinstance(a, str) else list(a) for a in node.spec]


def max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def main() -> None:
    rng = np.random.default_rng(0)
    batches = [{"image": rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8),
                "label": rng.integers(0, 10, (16,)).astype(np.int32)} for _ in range(2)]
    devices = jax.devices()
    out = {}
    for name, mesh_axes in (("resnet", dict(data=8)), ("vit", dict(data=2, fsdp=2, tensor=2))):
        config = MODELS[name]
        one, _, loss = train(config, dict(data=1), devices[:1], batches)
        many, shardings, loss8 = train(config, mesh_axes, devices, batches)
        out[name] = {"loss_1": loss, "loss_8": loss8,
                     "params": max_diff(one.params, many.params),
                     "model_state": max_diff(one.model_state, many.model_state)
                     if one.model_state else None}
        if name == "vit":
            out[name]["specs"] = {
                p: spec(shardings, p) for p in ("encoder/layers_0/attention/query/kernel",
                                                "encoder/layers_0/mlp/wi/kernel")}
    # What per-device BatchNorm would compute instead: the first batch's statistics over
    # each device's 2 examples, averaged, against those over the global 16.
    model = models.build(ml_collections.ConfigDict(MODELS["resnet"]))
    x = batches[0]["image"].astype(np.float32) / 127.5 - 1
    variables = model.init(jax.random.key(0), x[:1])

    def stats(images):
        return model.apply(variables, images, train=True, mutable=["batch_stats"])[1]

    per_device = jax.tree.map(lambda s: s.mean(0),
                              jax.jit(jax.vmap(stats))(x.reshape(8, 2, *x.shape[1:])))
    out["resnet"]["per_device_vs_global"] = max_diff(jax.jit(stats)(x), per_device)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
