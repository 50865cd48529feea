"""A kept copy of derived numpy arrays (a parsed archive, a fixed data split) in one `.npz`
file, so that later runs on the machine skip the work that made them.

`write` replaces the file atomically (a temporary file renamed into place) and only warns
when it cannot: a copy that was not kept costs the next run time, nothing else. `read`
gives None for a missing file, and None with a warning for a damaged one (the caller then
redoes the work and writes it again).
"""

from __future__ import annotations

import logging
import os
import zipfile

import numpy as np

log = logging.getLogger("bigjax")


def write(path: str, arrays: dict[str, np.ndarray], what: str) -> None:
    """Saves `arrays` to `path` (`.npz`); `what` names the copy in a warning."""
    temporary = f"{path}.{os.getpid()}.tmp.npz"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.savez(temporary, **arrays)
        os.replace(temporary, path)
    except OSError as err:
        log.warning("Could not keep %s at %s (%s).", what, path, err)
        if os.path.exists(temporary):
            os.remove(temporary)


def read(path: str, what: str, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays `names` of the copy at `path`; None when it is absent or damaged."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as arrays:
            return {name: arrays[name] for name in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("%s at %s is damaged (%s); making it again.", what.capitalize(), path, err)
        return None
