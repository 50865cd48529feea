"""Orbax checkpoints under `workdir/checkpoints/<step>/`: the train state and the data position.

Saves are asynchronous (training continues while the files are written) and
only complete checkpoints are ever listed, so the newest one is always safe to
resume from. `keep` bounds how many are kept.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
    """Saves `(state, data_position)` when asked; lists and restores complete checkpoints."""

    def __init__(self, workdir: str, keep: int | None = 3, async_save: bool = True):
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "data")
        )

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state, data_position: dict) -> None:
        """Starts writing checkpoint `step` (returns before the files are done)."""
        if step in self._manager.all_steps():
            return
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_position)
            ),
            force=True,
        )

    def restore(self, step: int, abstract_state):
        """Checkpoint `step` onto the shardings of `abstract_state` (ShapeDtypeStructs).

        Returns `(state, data_position)`; the state may come from another mesh.
        """
        if step not in self._manager.all_steps():  # a clearer message than Orbax's
            raise FileNotFoundError(
                f"No complete checkpoint for step {step} in {self.directory}; "
                f"available: {self.all_steps()}."
            )
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], restored["data"]

    def wait(self) -> None:
        """Blocks until pending saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def read_params_to_host(workdir: str) -> dict:
    """The params of the newest complete checkpoint of `workdir`, as numpy arrays.

    Reads whatever mesh wrote it (onto this process's first local device).
    """
    checkpointer = Checkpointer(workdir, keep=None, async_save=False)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise FileNotFoundError(f"No complete checkpoint in {checkpointer.directory}.")
        return read_state_to_host(workdir, step)["params"]
    finally:
        checkpointer.close()


def read_state_to_host(workdir: str, step: int) -> dict:
    """The saved train state of checkpoint `step` as numpy arrays, on any number of devices."""
    path = os.path.join(os.path.abspath(workdir), "checkpoints", str(step), "state")
    reader = ocp.StandardCheckpointer()
    metadata = reader.metadata(path).item_metadata
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          metadata)
    return jax.tree.map(np.asarray, reader.restore(path, target))
