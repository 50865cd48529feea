"""`--dry_run`: compile a config's train step for its mesh without training.

Builds the state abstractly (no param is allocated), lowers and compiles the
train step against the configured mesh, and reports what a researcher needs
before reserving machines: parameter count, bytes per device of params and
optimizer state (from their shardings), the compiled step's argument / output /
temporary bytes per device (XLA's memory analysis) and FLOPs per step (XLA's cost
analysis of the step, unrolled: see `flops_per_step`). Writes nothing to the workdir.
"""

from __future__ import annotations

import logging
import math

import jax
import ml_collections
import numpy as np

from bigjax import config_keys, evaluators, input_pipeline, sharding
from bigjax.experiment import build_experiment
from bigjax.train import make_train_step, validate_loop

log = logging.getLogger("bigjax")


def bytes_per_device(tree) -> int:
    """The largest per-device byte count of a tree of arrays / ShapeDtypeStructs with
    shardings (the bytes one device holds)."""
    per_device: dict = {}
    for leaf in jax.tree.leaves(tree):
        shard = leaf.sharding.shard_shape(leaf.shape)
        nbytes = math.prod(shard) * np.dtype(leaf.dtype).itemsize
        for device in leaf.sharding.device_set:
            per_device[device] = per_device.get(device, 0) + nbytes
    return max(per_device.values(), default=0)


def abstract_batch(exp, steps_per_call: int = 1) -> dict:
    """ShapeDtypeStructs of one global training batch (`[k, batch, ...]` for k steps per
    call), sharded as the train step expects."""
    local = exp.train_batches[0]
    rows = exp.config.batch_size
    lead = () if steps_per_call == 1 else (steps_per_call,)
    batch_sharding = sharding.batch_sharding(exp.mesh, len(lead))
    return {k: jax.ShapeDtypeStruct((*lead, rows, *v.shape[1:]), v.dtype, sharding=batch_sharding)
            for k, v in local.items()}


def report(config: ml_collections.ConfigDict) -> dict:
    """Compiles the train step of `config` on its mesh; returns (and logs) the report."""
    config = config_keys.resolve(config)
    exp = build_experiment(config)
    per_call = int(config.get("steps_per_call", 1))
    # What the real run checks before training: loop settings and every evaluator's.
    spe = exp.train_batches.steps_per_epoch
    validate_loop(exp, per_call)
    for s in evaluators.settings_from_config(config, spe):
        sharding.check_batch_size(exp.mesh, s.batch_size, s.batch_size_key)
        input_pipeline.check_trim_multiple(s.trim_multiple)
    train_step = make_train_step(exp, per_call)
    with sharding.mesh_context(exp.mesh, exp.rules):
        compiled = train_step.lower(exp.abstract_state,
                                    abstract_batch(exp, per_call)).compile()
    memory = compiled.memory_analysis()
    flops = flops_per_step(config, exp)
    state = exp.abstract_state
    result = {
        "mesh": dict(exp.mesh.shape),
        "params": int(sum(math.prod(x.shape) for x in jax.tree.leaves(state.params))),
        "params_bytes_per_device": bytes_per_device(state.params),
        "opt_state_bytes_per_device": bytes_per_device(state.opt_state),
        "model_state_bytes_per_device": bytes_per_device(state.model_state),
        "step_argument_bytes_per_device": int(getattr(memory, "argument_size_in_bytes", -1)),
        "step_output_bytes_per_device": int(getattr(memory, "output_size_in_bytes", -1)),
        "step_temp_bytes_per_device": int(getattr(memory, "temp_size_in_bytes", -1)),
        "flops_per_step": flops,
        "flops_per_step_per_device": flops / exp.mesh.devices.size,
        "steps": exp.total_steps,
    }
    log.info("Dry run: the train step compiles for mesh %s.\n%s", result["mesh"],
             "\n".join(f"  {k}: {_human(k, v)}" for k, v in result.items() if k != "mesh"))
    return result


def flops_per_step(config: ml_collections.ConfigDict, exp=None) -> float:
    """FLOPs of one optimizer step on the global batch, from XLA's cost analysis of the
    step lowered without loops: XLA counts a loop body once, so an unrolled twin of the
    config (one step per call, no accumulation, unscanned layers: the same arithmetic)
    is lowered when the config has loops. `exp`: the config's experiment, if built."""
    twin = ml_collections.ConfigDict(config.to_dict())
    twin.steps_per_call = 1
    twin.grad_accum_steps = 1
    if "scan_layers" in twin.model:
        twin.model.scan_layers = False
    if exp is None or twin.to_dict() != config.to_dict():
        exp = build_experiment(twin)
    with sharding.mesh_context(exp.mesh, exp.rules):
        lowered = make_train_step(exp).lower(exp.abstract_state, abstract_batch(exp))
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float((cost or {}).get("flops", float("nan")))


def _human(key: str, value) -> str:
    if key.endswith("bytes_per_device") and value >= 0:
        return f"{value:,} ({value / 2**20:.1f} MiB)"
    if key.startswith("flops"):
        return f"{value:.3e}"
    return f"{value:,}" if isinstance(value, int) else str(value)
