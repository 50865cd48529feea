"""The one generic training loop: `train_and_evaluate(config, workdir)`.

    experiment (mesh, data, model, task, optimizer, abstract state; experiment.py)
    -> restore or born-sharded init (+ init_from) -> under the mesh and rules:
       loop of jit-compiled train steps, with logging, evaluators, checkpoints and
       preemption checks on their own schedules -> final evals (printed by main).
"""

from __future__ import annotations

import functools
import json
import logging
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from bigjax import (
    compilation_cache,
    config_cli,
    config_keys,
    decay_mask,
    durations,
    evaluators,
    init_from,
    param_lr,
    run_ahead,
    run_files,
    sharding,
    train_state,
)
from bigjax.checkpoint import Checkpointer
from bigjax.experiment import Experiment, build_experiment, save_tokenizer
from bigjax.metric_writers import MetricWriter
from bigjax.models import hf_gpt_import
from bigjax.preemption import PreemptionCheck
from bigjax.progress import Progress
from bigjax.step_profiler import StepProfiler, check_profile_steps
from bigjax.throughput import Throughput, xla_flops_per_step
from bigjax.train_state import TrainState, init_state
from bigjax.train_step import jit_train_step, make_step_fn

log = logging.getLogger("bigjax")

# Config keys a resumed run may change (durations, cadences, eval settings); others are refused.
RESUMABLE_CHANGES = ("total_steps", "total_epochs", "log_every_steps", "eval_every_steps",
                     "eval_every_epochs", "checkpoint.every_steps", "checkpoint.keep",
                     "eval_batch_size", "eval_trim_multiple", "data.eval_examples",
                     "divergence_factor", "compilation_cache_dir", "profile_steps",
                     "profile_memory",
                     # Where and by whom the same batches are read (tested equal):
                     "data.workers", "data.on_disk", "data.prepared_dir")
RESUMABLE_PREFIXES = ("evals.",)
# Key of the data item of a checkpoint: evaluators that were due when a preempted run
# saved it (run first on resume, so a preemption never skips an evaluation).
PENDING_EVALS = "pending_evals"
__all__ = ["Experiment", "build_experiment", "make_train_step", "train_and_evaluate"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the message names the step."""


# ------------------------------------------------------------------------------ steps
def make_train_step(exp: Experiment, steps_per_call: int = 1):
    """`train_step(state, batch) -> (state, metrics)` for `exp`, jit-compiled with the
    state's shardings (see `train_step.py`)."""
    config = exp.config
    one_step = make_step_fn(
        exp.model, exp.task, exp.preprocess, exp.tx, exp.schedule, exp.mesh,
        l1=config.optim.get("l1", 0.0), l2=config.optim.get("l2", 0.0),
        decay_exclude=config.optim.get("decay_exclude"),
        grad_accum_steps=int(config.get("grad_accum_steps") or 1))
    return jit_train_step(one_step, exp.state_shardings, exp.mesh, steps_per_call)


# ------------------------------------------------------------------------- workdir
def check_config(config: ml_collections.ConfigDict, workdir: str, resuming: bool
                 ) -> tuple[list[str], dict | None]:
    """`(changed keys, saved config)` of a resumed run (`resuming`: the workdir has a
    checkpoint); a config that differs from the saved one in more than RESUMABLE_CHANGES
    is refused. Keys the saved config lacks (added to bigjax since) count as what that
    run used (`config_keys.fill_legacy`). Writes nothing."""
    path = epath.Path(run_files.join(workdir, "config.json"))
    if not (resuming and path.exists()):
        return [], None
    new = json.loads(config_cli.to_json(config))
    saved = json.loads(path.read_text())
    old = json.loads(config_cli.to_json(ml_collections.ConfigDict(config_keys.fill_legacy(saved))))
    changed = sorted(_diff(old, new))
    refused = [k for k in changed if k not in RESUMABLE_CHANGES and k != "evals"
               and not k.startswith(RESUMABLE_PREFIXES)]
    if refused:
        flags = [f"--config.{k}={config_keys.LEGACY_VALUES[k]}" for k in refused
                 if k in config_keys.LEGACY_VALUES and _lookup(saved, k) is _MISSING]
        hint = (f" The run predates {', '.join(f.split('=')[0][9:] for f in flags)}: "
                f"resume it as it was with {' '.join(flags)}.") if flags else ""
        raise ValueError(
            f"{workdir} holds a run with a different config ({', '.join(refused)} differ); "
            "resuming would mix two experiments. Use a new --workdir, or the original "
            f"values. Only {', '.join(RESUMABLE_CHANGES)} and evals.* may change on "
            f"resume.{hint}")
    return changed, saved


def write_config(config: ml_collections.ConfigDict, workdir: str, resuming: bool) -> None:
    """Writes `workdir/config.json` (after `check_config`; the previous config goes to
    `config_history.jsonl` when a resumed run changed it)."""
    changed, old = check_config(config, workdir, resuming)
    if any(k in ("total_steps", "total_epochs") for k in changed) and \
            config.optim.get("schedule", "constant") != "constant":
        log.warning("The run's length changed: the %s learning-rate schedule is stretched to "
                    "the new length from here on.", config.optim.schedule)
    if jax.process_index() != 0:
        return
    if changed:
        history = run_files.LineLog(run_files.join(workdir, "config_history.jsonl"))
        history.append(json.dumps(old))
        history.close()
        log.info("Resuming with changed %s (previous config kept in config_history.jsonl).",
                 ", ".join(changed))
    run_files.write_text(run_files.join(workdir, "config.json"), config_cli.to_json(config))


_MISSING = object()


def _lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


def _diff(old, new, prefix=""):
    for key in set(old) | set(new):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            yield from _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            yield f"{prefix}{key}"


def restore_or_init(exp: Experiment, checkpointer: Checkpointer,
                    step: int | None = None) -> tuple[TrainState, int, list[str]]:
    """The newest checkpoint in the workdir that restores (or checkpoint `step`), else a
    fresh state (with a model's data-dependent init, then the params of
    `config.init_from` when set). Returns (state, next
    batch, names of the evaluators that were due when a preempted run saved it)."""
    newest = checkpointer.latest_step()
    if newest is None:
        return fresh_state(exp), 0, []
    step, (state, data_position) = checkpointer.restore_first_good(
        lambda s: checkpointer.restore(s, exp.abstract_state), step)
    if step != newest:
        moved = checkpointer.set_aside_newer_than(step)
        log.warning("RESUMING FROM CHECKPOINT %d, not the newest (%d): the steps after it are "
                    "trained again. The newer checkpoints are kept aside, not deleted: %s.",
                    step, newest, ", ".join(f"checkpoints/{m}" for m in moved) or "none")
    next_batch = exp.train_batches.check_position(data_position)
    log.info("Resumed from checkpoint %d (next batch %d).", step, next_batch)
    return state, next_batch, list(data_position.get(PENDING_EVALS, []))


def fresh_state(exp: Experiment) -> TrainState:
    """A new run's state: the init on its shardings, the model's data-dependent init, then
    the params of `config.init_from` when set (read first, so the params it replaces are
    never randomly initialised: `init_state(params_to_replace=...)`)."""
    source = exp.config.get("init_from")
    loaded = read_init_from(exp, source) if source else {}
    state = init_state(exp.init_fn, exp.config.seed, exp.state_shardings, exp.rules,
                       init_from.replaced_names(exp.abstract_state.params, loaded))
    state = exp.init_state_with_data(state)
    if source:
        state = load_init_from(exp, state, source, loaded)
    return state


def read_init_from(exp: Experiment, source: str) -> dict:
    """The params of `source` (a bigjax workdir, HF folder or "minilm"), as
    `init_from.read_source_params` gives them for `exp`'s layout, after checking that a
    HF GPT folder is the same model."""
    scan = bool(exp.config.model.get("scan_layers", False))
    if hf_gpt_import.is_hf_gpt_folder(source):  # equal shapes do not make the same model
        hf_gpt_import.check_model_matches(source, exp.model.config())
        lm = exp.config.data.get("lm")
        if lm and run_files.resolve(lm.tokenizer) != run_files.resolve(source):
            log.warning("config.init_from=%s is a language model trained with its own "
                        "tokenizer, but config.data.lm.tokenizer=%s: the token ids mean other "
                        "things to it unless that is the same tokenizer.", source, lm.tokenizer)
    return init_from.read_source_params(source, scan, like=exp.abstract_state.params)


def load_init_from(exp: Experiment, state: TrainState, source: str,
                   loaded: dict | None = None) -> TrainState:
    """`state` with the params of `source` (`loaded`: as `read_init_from` read them; None:
    read now) merged in by path onto its shardings, and a fresh optimizer state for
    them."""
    if loaded is None:
        loaded = read_init_from(exp, source)
    with sharding.mesh_context(exp.mesh, exp.rules):
        boxed = jax.eval_shape(exp.init_fn, jax.random.PRNGKey(0))
    names = nn.get_partition_spec(boxed).params
    params, report = init_from.merge_params(state.params, loaded, names)
    init_from.log_report(source, report)
    if not report["loaded"]:
        raise ValueError(f"config.init_from={source!r} matched no params of the model; "
                         "check that it holds the same architecture.")
    init_from.check_body_loaded(source, report, getattr(exp.model, "HEAD_MODULES", ()),
                                exp.config.init_from_partial)
    model_state = init_from.read_workdir_model_state(source, state.model_state)
    if model_state is not None:
        log.info("init_from %s: loaded the model state (%s).", source, ", ".join(model_state))
    model_state = state.model_state if model_state is None else model_state
    opt_state = jax.jit(functools.partial(train_state.init_opt_state, exp.tx),
                        out_shardings=exp.state_shardings.opt_state)(params, model_state)
    return state.replace(params=params, opt_state=opt_state, model_state=model_state)


# --------------------------------------------------------------------------- loop
@jax.jit
def params_finite(params) -> jax.Array:
    """Whether every param is finite (a scalar bool, computed on device)."""
    return jnp.all(jnp.asarray([jnp.isfinite(x).all() for x in jax.tree.leaves(params)]))


def _host_metrics(pending: list) -> tuple[list[int], dict[str, np.ndarray]]:
    """Fetches pending `(first_step, metrics[k])` pairs; returns steps and stacked values."""
    fetched = [jax.tree.map(np.atleast_1d, m) for m in jax.device_get([m for _, m in pending])]
    steps = [first + i for (first, _), m in zip(pending, fetched, strict=True)
             for i in range(len(m["loss"]))]
    return steps, {k: np.concatenate([m[k] for m in fetched]) for k in fetched[0]}


def validate_loop(exp: Experiment, per_call: int) -> None:
    """Loop settings that would fail mid-run, checked before training (and by --dry_run);
    single values are checked by the schema (`config_keys.resolve`)."""
    if per_call <= 0 or exp.total_steps % per_call:
        raise ValueError(f"config.steps_per_call={per_call} must be positive and divide the "
                         f"{exp.total_steps} total steps.")
    profile = exp.config.get("profile_steps")
    if profile is not None:
        check_profile_steps(tuple(profile), exp.total_steps)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       step: int | None = None) -> dict:
    """Trains per `config` in `workdir` (resuming from its newest checkpoint that restores,
    or from checkpoint `step`); returns the final eval metrics. `config` may leave keys
    out (they get their defaults); bad keys or values raise `ConfigError`."""
    config = config_keys.resolve(config)
    workdir = run_files.resolve(workdir)
    run_files.check(workdir)
    cache_folder = compilation_cache.enable(config.compilation_cache_dir, workdir)
    exp = build_experiment(config, workdir)
    spe = exp.train_batches.steps_per_epoch
    log_every = durations.resolve_steps(config, "log_every", spe, 100)
    ckpt_every = config.checkpoint.every_steps
    per_call = config.steps_per_call
    validate_loop(exp, per_call)
    evals = evaluators.build(evaluators.settings_from_config(config, spe, workdir),
                             exp.load_split, exp.model, exp.task, exp.preprocess, exp.mesh,
                             exp.rules, exp.tokenizer)
    created = not epath.Path(workdir).exists()
    run_files.make(workdir)
    checkpointer = Checkpointer(workdir, config.checkpoint.keep, config.checkpoint.async_save)
    try:
        resuming = checkpointer.latest_step() is not None
        check_config(config, workdir, resuming)  # refuse a changed experiment before anything
        state, step, pending_evals = restore_or_init(exp, checkpointer, step)
        write_config(config, workdir, resuming)  # only once the state is known to fit
        if jax.process_index() == 0:
            save_tokenizer(exp.tokenizer, workdir)
    except BaseException:
        checkpointer.close()
        if created and jax.process_index() == 0:  # a failed start leaves no workdir behind
            run_files.remove(workdir)
        raise
    log.info("Mesh %s; %d steps (%d per epoch); params:\n%s", dict(exp.mesh.shape),
             exp.total_steps, spe, sharding.describe(state.params))
    lr_line = param_lr.describe(state.params, config.optim)
    if lr_line:
        log.info(lr_line)
    if config.optim.get("weight_decay") or config.optim.get("l1") or config.optim.get("l2"):
        log.info(decay_mask.describe(state.params, config.optim.get("decay_exclude")))
    writer = MetricWriter(workdir)
    jitted_step = make_train_step(exp, per_call)
    train_step = compilation_cache.report_first_call(jitted_step, cache_folder, "the train step")
    throughput = Throughput.for_experiment(exp)
    progress = Progress(exp.total_steps, config.batch_size, step)
    preemption = PreemptionCheck()
    profiler = StepProfiler(config.profile_steps, config.profile_memory, workdir)
    batches = exp.train_batches.iterate(step, exp.total_steps, per_call=per_call,
                                        workers=config.data.workers)
    pending: list = []  # (first step, device metrics) not yet fetched
    in_flight = run_ahead.RunAhead()  # one train call queued behind the running one
    unlogged: list = []  # fetched values since the last written row
    divergence = config.divergence_factor
    lowest = [np.inf]  # the lowest training loss seen in this process

    def newest_good(first_bad_loss_step: int) -> str:
        """Names the newest checkpoint that the losses vouch for: the loss of step k is
        computed with the params after step k - 1, so a bad loss at step k condemns
        checkpoint k - 1 too."""
        good = [s for s in checkpointer.all_steps() if s <= first_bad_loss_step - 2]
        return "No good checkpoint was saved." if not good else \
            f"The newest good checkpoint is {max(good)} (rerun with --step={max(good)})."

    def check_and_log(step: int, write: bool) -> None:
        steps, values = _host_metrics(pending)
        pending.clear()
        unlogged.append(values)
        # A finite loss with a non-finite gradient still corrupts the params: check both.
        bad = np.flatnonzero(~np.isfinite(values["loss"]) | ~np.isfinite(values["grad_norm"]))
        if bad.size:
            raise NonFiniteLossError(
                f"Loss is {values['loss'][bad[0]]} (gradient norm "
                f"{values['grad_norm'][bad[0]]}) at step {steps[bad[0]] + 1}; stopping. "
                f"{newest_good(steps[bad[0]] + 1)} Lower the learning rate or enable "
                "config.optim.grad_clip_norm.")
        if divergence is not None:
            running_min = np.minimum.accumulate(np.concatenate([lowest, values["loss"]]))[:-1]
            over = np.flatnonzero(values["loss"] > divergence * running_min)
            lowest[0] = min(lowest[0], float(values["loss"].min()))
            if over.size:
                i = over[0]
                raise NonFiniteLossError(
                    f"Loss {values['loss'][i]:.4g} at step {steps[i] + 1} is over "
                    f"config.divergence_factor={divergence} times the lowest so far "
                    f"({running_min[i]:.4g}): the run diverges; stopping before saving. "
                    f"{newest_good(steps[i] + 1)} Lower the learning rate or enable "
                    "config.optim.grad_clip_norm.")
        if write:  # means over every step since the last row, not just since the last check
            values = {k: np.concatenate([v[k] for v in unlogged]) for k in values}
            unlogged.clear()
            scalars = {f"train/{k}": v.mean() for k, v in values.items()}
            scalars["train/learning_rate"] = values["learning_rate"][-1]
            rates = progress.rates(step)
            scalars["perf/data_wait_fraction"] = rates.pop("data_wait_fraction")
            scalars.update(throughput.scalars(rates["steps_per_sec"]))
            scalars.update({f"train/{k}": v for k, v in rates.items()})
            writer.write(step, scalars)
            log.info(progress.line(step, float(values["loss"].mean()), rates))

    def save(step: int, due_evals: list = ()) -> None:
        """Saves `state` as checkpoint `step`, unless its params are not all finite (an
        update can overflow while the loss and gradients it came from were finite).
        `due_evals`: evaluators a preempted run skips; the resumed run runs them first."""
        if not bool(params_finite(state.params)):
            raise NonFiniteLossError(
                f"The params became NaN or Inf at step {step}; stopping without saving it. "
                f"{newest_good(step + 1)} Lower the learning rate or enable "
                "config.optim.grad_clip_norm.")
        data = exp.train_batches.position(step).to_json()
        if due_evals:
            data[PENDING_EVALS] = [e.settings.name for e in due_evals]
        writer.flush()  # every row up to a checkpoint outlives a kill
        checkpointer.save(step, state, data)

    def run_evals(step: int, which: list) -> dict:
        results = {}
        for evaluator in which:
            metrics = evaluator.run(state.variables, step)
            writer.write(step, _scalars(metrics, evaluator.settings.prefix))
            writer.write_texts(step, _texts(metrics, evaluator.settings.prefix))
            results[evaluator.settings.name] = metrics
        return results

    try:
        stop = False
        with sharding.mesh_context(exp.mesh, exp.rules):
            skipped = [e for e in evals if e.settings.name in pending_evals]
            if skipped and step < exp.total_steps:  # due when the run was preempted
                log.info("Running the evaluations due at step %d before the run stopped.", step)
                run_evals(step, skipped)
            metrics = None  # the previous call's outputs, still being computed or not
            while step < exp.total_steps and not stop:
                k = per_call
                waiting = time.perf_counter()
                # Placed here, not on grain's reader thread: launching transfers from a
                # second thread can stall the step's collectives on XLA:CPU (a 2-device
                # all-reduce waited for a device that never arrived).
                batch = sharding.put_batch(next(batches), exp.mesh, leading_axes=int(k > 1))
                # The devices waited for this batch only if they had nothing left to run
                # when it arrived (dispatch is asynchronous: while the previous call still
                # runs, the loop's wait costs the devices nothing).
                if metrics is None or all(x.is_ready() for x in jax.tree.leaves(metrics)):
                    progress.waited_for_input(time.perf_counter() - waiting)
                if metrics is None:  # once: the analytic count beside XLA's
                    log.info(throughput.describe(xla_flops_per_step(
                        jitted_step, state, batch, per_call,
                        bool(config.model.get("scan_layers")), config.grad_accum_steps)))
                profiler.before_call(step, k)
                state, metrics = train_step(state, batch)
                in_flight.launched(metrics)
                pending.append((step, metrics))
                step += k
                profiler.after_call(step, state)
                stop = preemption.should_stop()
                due_log = durations.crossed(step, log_every, k) or step == exp.total_steps
                due_ckpt = durations.crossed(step, ckpt_every, k) or stop
                due_evals = [e for e in evals if durations.crossed(step, e.settings.every_steps, k)]
                if due_log or due_ckpt or due_evals:
                    check_and_log(step, due_log or stop)
                if due_ckpt:  # before any eval: a preempted run saves first
                    save(step, due_evals if stop and step < exp.total_steps else ())
                if due_evals and not stop and step < exp.total_steps:
                    run_evals(step, due_evals)
            if pending:
                check_and_log(step, True)
            save(step)
            checkpointer.wait()
            if stop:
                log.warning("Stopped at step %d for preemption; rerun the same command to "
                            "resume.", step)
                return {"preempted_at_step": step}
            final = run_evals(step, evals)
        flat = evaluators.flatten_results(final)
        _write_eval_file(workdir, step, flat)
        return {"step": step, **flat}
    finally:
        preemption.close()
        writer.close()
        checkpointer.close()
        close_batches = getattr(batches, "close", None)
        if close_batches is not None:  # stops grain's reader thread or worker processes
            close_batches()
        profiler.close()  # last: a trace a failed run was inside


def _scalars(metrics: dict, prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in metrics.items() if np.isscalar(v)}


def _texts(metrics: dict, prefix: str) -> dict[str, list[str]]:
    """The metrics that are lists of texts (generated samples)."""
    return {f"{prefix}{k}": v for k, v in metrics.items()
            if isinstance(v, list) and v and all(isinstance(t, str) for t in v)}


def _write_eval_file(workdir: str, step: int, metrics: dict) -> None:
    """Full metrics (with the confusion matrix) to `workdir/eval/step_<N>.json`."""
    if jax.process_index() != 0:
        return
    epath.Path(run_files.join(workdir, "eval")).mkdir(parents=True, exist_ok=True)
    run_files.write_text(run_files.join(workdir, "eval", f"step_{step}.json"),
                         json.dumps({"step": step, **metrics}))
