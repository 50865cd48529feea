"""The one generic training loop: `train_and_evaluate(config, workdir)`.

    mesh -> data -> model/task/optimizer -> born-sharded state -> resume or init
    -> loop of jit-compiled train steps, with logging, eval and checkpoints on
       their own schedules -> final eval (printed as a JSON line by main).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax

from bigjax import (
    config_cli,
    datasets,
    durations,
    init_from,
    input_pipeline,
    models,
    optim,
    param_lr,
    pp,
    sharding,
    tasks,
)
from bigjax.checkpoint import Checkpointer
from bigjax.datasets import tokenized
from bigjax.datasets.array_dataset import ArrayDataset
from bigjax.evaluators.dataset_eval import DatasetEvaluator
from bigjax.metric_writers import MetricWriter
from bigjax.progress import Progress
from bigjax.train_state import TrainState, abstract_state, init_state, make_init_fn

log = logging.getLogger("bigjax")

# Config keys a resumed run may change (durations, cadences, eval settings); others are refused.
RESUMABLE_CHANGES = ("total_steps", "total_epochs", "log_every_steps", "eval_every_steps",
                     "eval_every_epochs", "checkpoint.every_steps", "checkpoint.keep",
                     "eval_batch_size", "eval_trim_multiple", "data.eval_examples")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the message names the step."""


# ----------------------------------------------------------------------------- setup
@dataclasses.dataclass
class Experiment:
    """Everything a config builds before training: mesh, data, model, task, optimizer."""

    config: ml_collections.ConfigDict
    mesh: jax.sharding.Mesh
    rules: tuple
    train_data: ArrayDataset
    eval_data: ArrayDataset
    model: nn.Module
    task: object
    preprocess: object
    train_batches: input_pipeline.TrainBatches
    total_steps: int
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    init_fn: object


def build_experiment(config: ml_collections.ConfigDict) -> Experiment:
    """Builds (but does not initialise) everything the loop and `evaluate` need."""
    mesh = sharding.make_mesh(config.mesh)
    rules = sharding.rules_from_config(config)
    sharding.check_batch_size(mesh, config.batch_size, "config.batch_size")
    train_data = load_data(config, "train")
    eval_data = load_data(config, "eval")
    if config.task == "classification":
        for data in (train_data, eval_data):
            if data.num_classes is not None and data.num_classes != config.model.num_classes:
                raise ValueError(f"config.model.num_classes={config.model.num_classes} but "
                                 f"data set {data.name!r} has {data.num_classes} classes.")
    train_batches = input_pipeline.TrainBatches(train_data, config.batch_size, config.seed,
                                                sharding.process_rows(mesh, config.batch_size))
    steps_per_epoch = train_batches.steps_per_epoch
    total_steps = durations.resolve_steps(config, "total", steps_per_epoch)
    if not total_steps or total_steps <= 0:
        raise ValueError("Set config.total_steps or config.total_epochs to a positive value.")
    optim_config = ml_collections.ConfigDict(config.optim.to_dict())
    warmup = durations.resolve_steps(config.optim, "warmup", steps_per_epoch, 0)
    optim_config.warmup_steps, optim_config.warmup_epochs = warmup, None
    tx, schedule = optim.make_optimizer(optim_config, total_steps)
    model = models.build(config.model)
    preprocess = pp.make(config.pp, _tokenizer(config))
    sample = preprocess(jax.tree.map(lambda v: v[:1], train_batches[0]), None, train=False)
    _check_inputs(config, sample["inputs"])
    return Experiment(config, mesh, rules, train_data, eval_data, model, tasks.get(config),
                      preprocess, train_batches, total_steps, tx, schedule,
                      make_init_fn(model, tx, sample["inputs"]))


def load_data(config: ml_collections.ConfigDict, which: str) -> ArrayDataset:
    """The "train" or "eval" split named by the config: loaded, optionally subsampled to
    `config.data.<which>_examples` (a fixed random subset), and tokenized when
    `config.data.tokenizer` is set."""
    data = datasets.load(config.data.name, config.data[f"{which}_split"],
                         config.data.get("data_dir"))
    limit = config.data.get(f"{which}_examples")
    if limit and limit < len(data):
        keep = np.sort(np.random.default_rng(0).permutation(len(data))[:limit])
        data = data.subset(keep)
    if config.data.get("tokenizer"):
        data = tokenized.tokenize(data, config.data.tokenizer)
    return data


def _tokenizer(config):
    return tokenized.make_tokenizer(config.data.tokenizer) if config.data.get("tokenizer") \
        else None


def _check_inputs(config, inputs) -> None:
    expected = config.data.get("input_shape")
    if expected is not None and tuple(inputs.shape[1:]) != tuple(expected):
        raise ValueError(f"Data set {config.data.name!r} gives inputs of shape "
                         f"{tuple(inputs.shape[1:])}, but config.data.input_shape is "
                         f"{tuple(expected)}.")


# ------------------------------------------------------------------------------ steps
def make_train_step(exp: Experiment, steps_per_call: int = 1):
    """`train_step(state, batch) -> (state, metrics)`, jit-compiled, state donated.

    With `steps_per_call = k > 1` the batch holds `k` stacked batches
    (`[k, batch, ...]`) and the step scans over them, so k optimizer steps run
    per compiled call (metrics are then `[k]`). k = 1 takes a plain batch: XLA
    on CPU runs convolutions inside a scan several times slower.
    """
    config, model, task = exp.config, exp.model, exp.task
    l1, l2 = config.optim.get("l1", 0.0), config.optim.get("l2", 0.0)

    def one_step(state: TrainState, batch: dict):
        rng = jax.random.fold_in(state.rng, state.step)
        pp_rng, dropout_rng = jax.random.split(rng)
        batch = exp.preprocess(batch, pp_rng, train=True)

        def loss_fn(params):
            with nn.logical_axis_rules(exp.rules):
                out, _ = model.apply({"params": params}, batch["inputs"], train=True,
                                     rngs={"dropout": dropout_rng}, **task.model_kwargs(batch))
            loss, metrics = task.loss(out, batch)
            return loss + optim.regularization_penalty(params, l1, l2), (loss, metrics)

        grads, (loss, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = exp.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads),
                   "learning_rate": exp.schedule(state.step)}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    if steps_per_call == 1:
        return jax.jit(one_step, donate_argnums=0)
    return jax.jit(lambda state, batches: jax.lax.scan(one_step, state, batches),
                   donate_argnums=0)


# ------------------------------------------------------------------------- workdir
def write_config(config: ml_collections.ConfigDict, workdir: str, resuming: bool) -> None:
    """Writes `workdir/config.json`. When `resuming` (the workdir has a checkpoint), a config
    that differs from the saved one in more than RESUMABLE_CHANGES is refused."""
    path = os.path.join(workdir, "config.json")
    new = json.loads(config_cli.to_json(config))
    if resuming and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        changed = sorted(_diff(old, new))
        refused = [k for k in changed if k not in RESUMABLE_CHANGES]
        if refused:
            raise ValueError(
                f"{workdir} holds a run with a different config ({', '.join(refused)} differ); "
                "resuming would mix two experiments. Use a new --workdir, or the original "
                f"values. Only {', '.join(RESUMABLE_CHANGES)} may change on resume.")
        if any(k in ("total_steps", "total_epochs") for k in changed) and \
                config.optim.get("schedule", "constant") != "constant":
            log.warning("The run's length changed: the %s learning-rate schedule is stretched to "
                        "the new length from here on.", config.optim.schedule)
        if changed and jax.process_index() == 0:
            with open(os.path.join(workdir, "config_history.jsonl"), "a") as f:
                f.write(json.dumps(old) + "\n")
            log.info("Resuming with changed %s (previous config kept in config_history.jsonl).",
                     ", ".join(changed))
    if jax.process_index() == 0:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(config_cli.to_json(config))
        os.replace(tmp, path)  # readers never see a half-written file


def _diff(old, new, prefix=""):
    for key in set(old) | set(new):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            yield from _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            yield f"{prefix}{key}"


def restore_or_init(exp: Experiment, checkpointer: Checkpointer) -> tuple[TrainState, int]:
    """The newest complete checkpoint in the workdir, else a fresh state. Returns (state, batch)."""
    abstract, shardings = abstract_state(exp.init_fn, exp.mesh, exp.rules)
    step = checkpointer.latest_step()
    if step is None:
        state = init_state(exp.init_fn, exp.config.seed, shardings)
        source = exp.config.get("init_from")
        if source:
            scan = bool(exp.config.model.get("scan_layers", False))
            params, report = init_from.merge_params(
                state.params, init_from.read_source_params(source, scan))
            init_from.log_report(source, report)
            if not report["loaded"]:
                raise ValueError(f"config.init_from={source!r} matched no params of the model; "
                                 "check that it holds the same architecture.")
            opt_state = jax.jit(exp.tx.init, out_shardings=shardings.opt_state)(params)
            state = state.replace(params=params, opt_state=opt_state)
        return state, 0
    state, data_position = checkpointer.restore(step, abstract)
    next_batch = exp.train_batches.check_position(data_position)
    log.info("Resumed from checkpoint %d (next batch %d).", step, next_batch)
    return state, next_batch


# --------------------------------------------------------------------------- loop
class _Preemption:
    """Turns SIGTERM (how TPU VMs announce preemption) into a flag the loop checks."""

    def __init__(self):
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        log.warning("SIGTERM received: saving a checkpoint and stopping.")
        self.requested = True

    def agreed(self) -> bool:
        """Whether any process was asked to stop: all processes must leave the loop at the
        same step, since saving is collective. (A cross-process reduction when there are
        several processes; call it at the same steps on all of them.)"""
        if jax.process_count() == 1:
            return self.requested
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.asarray(self.requested, np.int32))
        return bool(np.asarray(flags).any())

    def close(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _host_metrics(pending: list) -> tuple[list[int], dict[str, np.ndarray]]:
    """Fetches pending `(first_step, metrics[k])` pairs; returns steps and stacked values."""
    fetched = [jax.tree.map(np.atleast_1d, m) for m in jax.device_get([m for _, m in pending])]
    steps = [first + i for (first, _), m in zip(pending, fetched, strict=True)
             for i in range(len(m["loss"]))]
    return steps, {k: np.concatenate([m[k] for m in fetched]) for k in fetched[0]}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains per `config` in `workdir` (resuming from its newest checkpoint); returns the
    final eval metrics."""
    os.makedirs(workdir, exist_ok=True)
    exp = build_experiment(config)
    spe = exp.train_batches.steps_per_epoch
    log_every = durations.resolve_steps(config, "log_every", spe, 100)
    eval_every = durations.resolve_steps(config, "eval_every", spe)
    ckpt_every = config.checkpoint.every_steps
    per_call = int(config.get("steps_per_call", 1))
    if log_every <= 0:
        raise ValueError(f"config.log_every_steps must be positive, got {log_every}.")
    if per_call <= 0 or exp.total_steps % per_call:
        raise ValueError(f"config.steps_per_call={per_call} must be positive and divide the "
                         f"{exp.total_steps} total steps.")
    checkpointer = Checkpointer(workdir, config.checkpoint.keep,
                                config.checkpoint.get("async_save", True))
    write_config(config, workdir, resuming=checkpointer.latest_step() is not None)
    state, step = restore_or_init(exp, checkpointer)
    log.info("Mesh %s; %d steps (%d per epoch); params:\n%s", dict(exp.mesh.shape),
             exp.total_steps, spe, sharding.describe(state.params))
    lr_line = param_lr.describe(state.params, config.optim)
    if lr_line:
        log.info(lr_line)
    evaluator = DatasetEvaluator(exp.model, exp.task, exp.preprocess, exp.eval_data,
                                 config.eval_batch_size, exp.mesh, exp.rules,
                                 config.get("eval_trim_multiple"))
    writer = MetricWriter(workdir)
    train_step = make_train_step(exp, per_call)
    progress = Progress(exp.total_steps, config.batch_size, step)
    preemption = _Preemption()
    batches = exp.train_batches.iterate(step, exp.total_steps)
    pending: list = []

    def check_and_log(step: int, write: bool) -> None:
        steps, values = _host_metrics(pending)
        pending.clear()
        # A finite loss with a non-finite gradient still corrupts the params: check both.
        bad = np.flatnonzero(~np.isfinite(values["loss"]) | ~np.isfinite(values["grad_norm"]))
        if bad.size:
            raise NonFiniteLossError(
                f"Loss is {values['loss'][bad[0]]} (gradient norm "
                f"{values['grad_norm'][bad[0]]}) at step {steps[bad[0]] + 1}; stopping. The "
                f"newest good checkpoint is {checkpointer.latest_step()}. Lower the learning "
                "rate or enable config.optim.grad_clip_norm.")
        if write:
            scalars = {f"train/{k}": v.mean() for k, v in values.items()}
            scalars["train/learning_rate"] = values["learning_rate"][-1]
            rates = progress.rates(step)
            scalars.update({f"train/{k}": v for k, v in rates.items()})
            writer.write(step, scalars)
            log.info(progress.line(step, float(values["loss"].mean()), rates))

    try:
        stop = False
        while step < exp.total_steps and not stop:
            k = per_call
            if k == 1:
                batch = sharding.put_batch(next(batches), exp.mesh)
            else:
                chunk = [next(batches) for _ in range(k)]
                stacked = {key: np.stack([b[key] for b in chunk]) for key in chunk[0]}
                batch = sharding.put_batch(stacked, exp.mesh, leading_axes=1)
            state, metrics = train_step(state, batch)
            pending.append((step, metrics))
            step += k
            due_log = durations.crossed(step, log_every, k) or step == exp.total_steps
            due_eval = durations.crossed(step, eval_every, k) and step < exp.total_steps
            due_ckpt = durations.crossed(step, ckpt_every, k)
            if due_log or due_eval or due_ckpt:
                check_and_log(step, due_log)
            if jax.process_count() == 1 or due_log:
                stop = preemption.agreed()
            if due_eval:
                writer.write(step, _prefixed(evaluator.run(state.params)))
            if due_ckpt:
                checkpointer.save(step, state, exp.train_batches.position(step).to_json())
        if pending:
            check_and_log(step, True)
        checkpointer.save(step, state, exp.train_batches.position(step).to_json())
        checkpointer.wait()
        if stop:
            log.warning("Stopped at step %d for preemption; rerun the same command to resume.",
                        step)
            return {"preempted_at_step": step}
        final = evaluator.run(state.params)
        writer.write(step, _prefixed(final))
        _write_eval_file(workdir, step, final)
        return {"step": step, **final}
    finally:
        preemption.close()
        writer.close()
        checkpointer.close()


def _prefixed(metrics: dict, prefix: str = "eval") -> dict[str, float]:
    return {f"{prefix}/{k}": v for k, v in metrics.items() if np.isscalar(v)}


def _write_eval_file(workdir: str, step: int, metrics: dict) -> None:
    """Full metrics (with the confusion matrix) to `workdir/eval/step_<N>.json`."""
    if jax.process_index() != 0:
        return
    os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
    with open(os.path.join(workdir, "eval", f"step_{step}.json"), "w") as f:
        json.dump({"step": step, **metrics}, f)
