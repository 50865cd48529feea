"""20 training steps of a tiny GPT on a given mesh: the losses, for tests/test_gpt_mesh.py.

`python tests/gpt_mesh_probe.py` runs every mesh of `MESHES` on 8 fake CPU devices and
prints one JSON object {mesh name: [loss per step]}; `losses(mesh)` is the same
measurement in the calling process (on its devices). Not collected by pytest.
"""

from __future__ import annotations

import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MESHES = {"dp8": dict(data=8, fsdp=1, tensor=1), "fsdp8": dict(data=1, fsdp=8, tensor=1),
          "dp2_tp4": dict(data=2, fsdp=1, tensor=4), "fsdp4_tp2": dict(data=1, fsdp=4, tensor=2)}
STEPS = 20


def losses(mesh: dict, data_dir: str | None = None) -> dict:
    """`{"losses": the training loss of each of STEPS steps, "shards": the shape of one
    device's shard of two params, "generated": greedy tokens after two prompts}` of the
    tiny char GPT (heads and vocabulary divisible by the tensor axis) on `mesh`, on the
    same batches whatever the mesh."""
    import jax
    import numpy as np

    from bigjax import config_cli, sharding, train
    from bigjax.generate import generate
    from bigjax.train_state import init_state

    config = config_cli.apply_overrides(
        config_cli.load_config_file(os.path.join(REPO, "configs/shakespeare_char.py:runlocal")),
        [(f"mesh.{k}", str(v)) for k, v in mesh.items()] +
        [("data.data_dir", data_dir or os.environ["BIGJAX_DATA_DIR"]), ("model.heads", "4"),
         ("model.vocab_multiple", "8"), ("batch_size", "16")])
    exp = train.build_experiment(config)
    step = train.make_train_step(exp)
    state = init_state(exp.init_fn, config.seed, exp.state_shardings, exp.rules)
    values = []
    with sharding.mesh_context(exp.mesh, exp.rules):
        for k in range(STEPS):
            state, metrics = step(state, sharding.put_batch(exp.train_batches[k], exp.mesh))
            values.append(float(jax.device_get(metrics["loss"])))
    with sharding.mesh_context(exp.mesh, exp.rules):  # greedy text from the trained params
        texts = generate(exp.model, state.params, [np.asarray([5, 6, 7], np.int32),
                                                   np.asarray([9], np.int32)],
                         max_new_tokens=8, eot_id=exp.tokenizer.eot_id,
                         rng=jax.random.PRNGKey(0),
                         batch_multiple=sharding.num_batch_shards(exp.mesh))
    params = state.params
    specs = {"query": params["decoder"]["layers_0"]["attention"]["query"]["kernel"],
             "embedding": params["embeddings"]["word_embeddings"]["embedding"]}
    return {"losses": values, "generated": [t.tolist() for t in texts],
            "shards": {k: list(v.sharding.shard_shape(v.shape)) for k, v in specs.items()}}


if __name__ == "__main__":
    sys.path.insert(0, REPO)
    from bigjax.fake_cpu_devices import xla_flags_with_devices

    os.environ["XLA_FLAGS"] = xla_flags_with_devices(os.environ.get("XLA_FLAGS"), 8)
    os.environ["JAX_PLATFORMS"] = "cpu"
    print(json.dumps({name: losses(mesh) for name, mesh in MESHES.items()}))
