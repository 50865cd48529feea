"""Orbax checkpoints under `workdir/checkpoints/<step>/`: the train state and the data position.

Saves are asynchronous (training continues while the files are written) and
only complete checkpoints are ever listed, so the newest one is always safe to
resume from. `keep` bounds how many are kept.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Saves `(state, data_position)` every `every_steps` steps and on demand."""

    def __init__(self, workdir: str, every_steps: int, keep: int = 3, async_save: bool = True):
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.every_steps = every_steps
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

    def due(self, step: int, steps_just_taken: int = 1) -> bool:
        """Whether an interval boundary fell within the last `steps_just_taken` steps."""
        return bool(self.every_steps) and step % self.every_steps < steps_just_taken

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
        if step not in self._manager.all_steps():
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


def abstract_like(state) -> object:
    """ShapeDtypeStructs (with shardings) describing `state`, as restore targets."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
    )
