"""Orbax checkpoints under `workdir/checkpoints/<step>/`: the train state and the data position.

Saves are asynchronous (training continues while the files are written) and
only complete checkpoints are ever listed, so the newest one is always safe to
resume from. `keep` bounds how many are kept. Restores read straight onto the
target shardings: each device reads only its shards, from whatever mesh wrote them.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import sys
import threading
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from bigjax import param_paths, run_files

log = logging.getLogger("bigjax")


class _Manager(ocp.CheckpointManager):
    """Orbax's manager, minus its own preemption check: it would call JAX's preemption sync
    point with checkpoint steps, moving the per-process counter that
    `bigjax.preemption.PreemptionCheck` counts in train-step calls (a notice arriving
    after a save could then stop the run many steps late, or never). bigjax saves with
    `force=True` and decides about preemption itself."""

    def reached_preemption(self, step: int) -> bool:
        return False


class CheckpointWriteError(RuntimeError):
    """Writing a checkpoint failed (a full disk, lost permissions); the message names the
    step, the reason and the newest complete checkpoint, which is intact."""


class Checkpointer:
    """Saves `(state, data_position)` when asked; lists and restores complete checkpoints."""

    def __init__(self, workdir: str, keep: int | None = 3, async_save: bool = True,
                 read_only: bool = False):
        """`read_only`: for readers of another run's workdir (evaluate, init_from), which
        must never create, delete or write anything there."""
        self.directory = run_files.join(workdir, "checkpoints")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=not read_only, enable_async_checkpointing=async_save,
            read_only=read_only,
            # A save a killed run left half-written on a local disk (a
            # `*.orbax-checkpoint-tmp-*` folder, never listed) is deleted. In a bucket a
            # half-written save is a step folder without `commit_success.txt`, like one
            # copied there without it: never deleted here (Orbax replaces it only when
            # this run saves that same step), and named in a warning.
            cleanup_tmp_directories=not read_only and not run_files.is_url(workdir),
        )
        self._manager = _Manager(
            self.directory, options=options, item_names=("state", "data")
        )
        if run_files.is_url(workdir) and not read_only:
            self._warn_uncommitted()

    def _warn_uncommitted(self) -> None:
        """Names the step folders of a bucket workdir that lack `commit_success.txt`."""
        folder = epath.Path(self.directory)
        steps = [p.name for p in folder.iterdir() if p.name.isdigit()] if folder.exists() else []
        uncommitted = sorted((s for s in steps if not (folder / s / "commit_success.txt").exists()),
                             key=int)
        if uncommitted and jax.process_index() == 0:
            log.warning(
                "Checkpoint folders %s in %s have no commit_success.txt: saves a killed run "
                "left unfinished, or checkpoints copied from a local disk. They are not "
                "resumed from, and a save of the same step replaces them. To keep a copied "
                "one, add an empty commit_success.txt to it.", ", ".join(uncommitted),
                self.directory)

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def set_aside_newer_than(self, step: int) -> list[str]:
        """Renames every complete checkpoint newer than `step` (the one a run resumes from)
        to `<n>.superseded` (`<n>.superseded.2`, ... if taken): kept, never deleted, but no
        longer listed, so the resumed run writes its own checkpoints there and `keep` never
        deletes `step` or a just-saved one in favour of the abandoned ones. Returns the
        new folder names."""
        newer = [s for s in self.all_steps() if s > step]
        moved = []
        if newer and jax.process_index() == 0:
            for s in newer:
                folder = epath.Path(self.directory)
                target, n = folder / f"{s}.superseded", 1
                while target.exists():
                    n += 1
                    target = folder / f"{s}.superseded.{n}"
                source = folder / str(s)
                if run_files.is_url(self.directory):
                    # A bucket moves object by object: uncommit it first, so a move cut
                    # short never leaves a listed, complete-looking step that lacks arrays.
                    (source / "commit_success.txt").unlink(missing_ok=True)
                source.rename(target)
                moved.append(target.name)
        if newer and jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("bigjax_set_aside_checkpoints")
        if newer:
            self._manager.reload()
        return moved

    def save(self, step: int, state, data_position: dict) -> None:
        """Starts writing checkpoint `step` (returns before the files are done)."""
        if step in self._manager.all_steps():
            return
        with self._reporting_write_errors(step):  # also a previous async save's failure
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_position)
                ),
                force=True,
            )

    @contextlib.contextmanager
    def _reporting_write_errors(self, step: int | None):
        """Turns an OSError of a (possibly earlier, asynchronous) save into one
        CheckpointWriteError naming the checkpoint that failed and the newest intact one."""
        try:
            yield
        except OSError as err:
            found = re.search(r"checkpoints/(\d+)", str(err.filename or ""))
            failed = int(found.group(1)) if found else step
            intact = [s for s in self._manager.all_steps() if s != failed]
            newest = (f"the newest complete one, {max(intact)}, is intact" if intact
                      else "no earlier checkpoint exists")
            raise CheckpointWriteError(
                f"Writing checkpoint {failed if failed is not None else ''} in "
                f"{self.directory} failed: {err.strerror or err}; {newest}. Free space (or "
                "fix the permissions) and rerun the same command to resume.") from err

    def _check_step(self, step: int) -> None:
        if step not in self._manager.all_steps():  # a clearer message than Orbax's
            raise FileNotFoundError(
                f"No complete checkpoint for step {step} in {self.directory}; "
                f"available: {self.all_steps()}."
            )

    def restore(self, step: int, abstract_state):
        """Checkpoint `step` onto the shardings of `abstract_state` (ShapeDtypeStructs).

        Returns `(state, data_position)`; the state may come from another mesh. Parts of
        the state that an older checkpoint lacks (empty `model_state` / `techniques` of
        runs saved before they existed) keep their (empty) abstract value.
        """
        self._check_step(step)
        path = run_files.join(self.directory, str(step), "state")
        target = abstract_state.replace(**restore_parts(path, _as_dict(abstract_state)))
        data = self._manager.restore(step, args=ocp.args.Composite(data=ocp.args.JsonRestore()))
        return target, data["data"]

    def restore_model(self, step: int, abstract_variables: dict) -> dict:
        """Only `params` and `model_state` of checkpoint `step` (never optimizer moments),
        onto the shardings of `abstract_variables` = `{"params": ..., **collections}`.
        Returns model variables `{"params": ..., **collections}`."""
        self._check_step(step)
        params = abstract_variables["params"]
        collections = {k: v for k, v in abstract_variables.items() if k != "params"}
        path = run_files.join(self.directory, str(step), "state")
        parts = restore_parts(path, {"params": params, "model_state": collections})
        return {"params": parts["params"], **parts["model_state"]}

    def restore_first_good(self, restore, step: int | None = None):
        """`(step, restore(step))` for the newest checkpoint (or `step`, then older ones)
        that restores: a checkpoint whose files are missing, truncated or hold another
        tree is reported in one log line and the previous complete one is tried. Nothing
        is deleted. Raises ValueError naming every step tried when none restores."""
        steps = sorted(self.all_steps(), reverse=True)
        if step is not None:
            self._check_step(step)
            steps = [s for s in steps if s <= step]
        failures = []
        for candidate in steps:
            try:
                with _quiet_unraisable():
                    result, reason = restore(candidate), None
            except Exception as err:  # Orbax and TensorStore raise many kinds
                _silence_leftovers()
                reason = _reason(err)
            if _all_processes_agree(reason is None):
                return candidate, result
            reason = reason or "another process could not read its shards"
            failures.append(f"step {candidate}: {reason}")
            log.warning("Checkpoint %d in %s cannot be restored (%s)%s", candidate,
                        self.directory, reason,
                        "; trying the previous one." if candidate != steps[-1] else ".")
        raise ValueError(f"No checkpoint in {self.directory} can be restored into this model "
                         f"({'; '.join(failures)}). If the config changed, use the original "
                         "values or a fresh --workdir.")

    def wait(self) -> None:
        """Blocks until pending saves are on disk."""
        with self._reporting_write_errors(None):
            self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves (a failure was reported by `wait` or `save` already, or
        is logged here: closing never masks the error being raised) and closes."""
        try:
            self._manager.wait_until_finished()
            self._manager.close()
        except OSError as err:
            log.warning("A checkpoint write failed: %s", err)


def _all_processes_agree(ok: bool) -> bool:
    """True when `ok` holds on every process (each reads only its own shards, so a damaged
    file can fail on some processes only; all must then fall back together)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray(ok, np.int32))))


def _reason(err: Exception) -> str:
    """One short line for a failed restore (no TensorStore spec dumps, no Orbax hints that
    do not apply)."""
    text = " ".join(str(err).split("See full TensorStore details")[0].split())
    shapes = re.search(r"Requested shape: (\(.*?\)) is not compatible with the stored "
                       r"shape: (\(.*?\))", text)
    if shapes:
        return (f"it holds another model: an array is {shapes.group(1)} here and "
                f"{shapes.group(2)} in the checkpoint")
    return text[:300] or type(err).__name__


# What Orbax's other reads of a checkpoint that already failed to restore report later,
# from its event-loop threads, TensorStore callbacks and coroutines collected at exit.
_LEFTOVERS = ("Event loop is closed", "Encountered error while reading array index")


def _is_leftover(value: BaseException | None) -> bool:
    return value is not None and any(text in str(value) for text in _LEFTOVERS)


def _silence_leftovers() -> None:
    """After a failed restore, Orbax's other reads of that checkpoint still finish and
    report their own errors ("Task exception was never retrieved", "Event loop is
    closed", "Exception ignored in <coroutine ...>"), some at interpreter exit; the
    failure is already reported once, so these are dropped for the rest of the process.
    Any other error still shows."""
    if getattr(sys.unraisablehook, "bigjax_filter", False):
        return
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    previous_thread, previous_sys, previous_unraisable = (
        threading.excepthook, sys.excepthook, sys.unraisablehook)

    def thread_hook(args):
        if not _is_leftover(args.exc_value):
            previous_thread(args)

    def sys_hook(kind, value, traceback):  # TensorStore's callbacks report via PyErr_Print
        if not _is_leftover(value):
            previous_sys(kind, value, traceback)

    def unraisable_hook(unraisable):
        if not _is_leftover(unraisable.exc_value):
            previous_unraisable(unraisable)

    unraisable_hook.bigjax_filter = True
    threading.excepthook, sys.excepthook, sys.unraisablehook = (
        thread_hook, sys_hook, unraisable_hook)


@contextlib.contextmanager
def _quiet_unraisable():
    """Drops the "Exception ignored in coroutine" reports of Orbax's other reads when one
    read of a damaged checkpoint has already failed (the failure is reported once)."""
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous


def _as_dict(state) -> dict:
    return {f: getattr(state, f) for f in state.__dataclass_fields__}


def saved_tree(path: str) -> dict:
    """The saved state's structure at `path` (`.../<step>/state`): nested dicts whose
    leaves have `.shape` and `.dtype`; no array is read."""
    return ocp.PyTreeCheckpointHandler().metadata(epath.Path(path)).tree


def restore_parts(path: str, parts: dict[str, Any]) -> dict[str, Any]:
    """Reads the top-level `parts` (name -> abstract tree of ShapeDtypeStructs with
    shardings) of the saved state at `path`, each device reading only its shards.

    A part the checkpoint lacks, or an empty one, is returned as given (it must then be
    an empty tree: a missing non-empty part is an error naming it).
    """
    saved = saved_tree(path)
    wanted = {k: v for k, v in parts.items() if jax.tree.leaves(v)}
    missing = [k for k in wanted if k not in saved]
    if missing:
        raise ValueError(f"The checkpoint at {path} has no {', '.join(missing)}; it was "
                         "written by another kind of run.")
    restore_args = jax.tree.map(lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding, dtype=x.dtype),
                                wanted)
    # The item's handler directly: a Checkpointer would look for step-level metadata here.
    restored = ocp.PyTreeCheckpointHandler().restore(epath.Path(path), args=ocp.args.PyTreeRestore(
        item=wanted, restore_args=restore_args, partial_restore=True)) if wanted else {}
    return {k: restored.get(k, v) for k, v in parts.items()}


def latest_step_in(workdir: str) -> int:
    """The newest complete checkpoint step of the run in `workdir` (error if none)."""
    checkpointer = Checkpointer(workdir, keep=None, async_save=False, read_only=True)
    try:
        step = checkpointer.latest_step()
    finally:
        checkpointer.close()
    if step is None:
        raise FileNotFoundError(f"No complete checkpoint in {checkpointer.directory}.")
    return step


def saved_shapes(workdir: str, step: int, part: str = "params"
                 ) -> dict[str, tuple[tuple[int, ...], Any]] | None:
    """`{"a/b/c": (shape, dtype)}` of one part (`params`, `model_state`, ...) of the state
    saved in checkpoint `step` (None if the checkpoint has no such part); reads no array."""
    tree = saved_tree(run_files.join(workdir, "checkpoints", str(step), "state"))
    if part not in tree:
        return None
    flat = jax.tree_util.tree_flatten_with_path(
        tree[part], is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {param_paths.path_name(p): (tuple(m.shape), m.dtype) for p, m in flat}


def read_state_to_host(workdir: str, step: int) -> dict:
    """The saved train state of checkpoint `step` as numpy arrays, on any number of devices.

    For tests and small tools: it reads every array onto this process's first device.
    """
    path = run_files.join(workdir, "checkpoints", str(step), "state")
    reader = ocp.StandardCheckpointer()
    metadata = reader.metadata(path).item_metadata
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          metadata)
    return jax.tree.map(np.asarray, reader.restore(path, target))
