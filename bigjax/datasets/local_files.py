"""Finding a data set's raw files under BIGJAX_DATA_DIR, and failing fast when absent."""

from __future__ import annotations

import os
import socket

DATA_DIR_ENV = "BIGJAX_DATA_DIR"


def data_dir(configured: str | None = None) -> str | None:
    """`config.data.data_dir` if set, else `$BIGJAX_DATA_DIR`, else None."""
    return configured or os.environ.get(DATA_DIR_ENV) or None


def local_folder(name: str, files: list[str], configured: str | None) -> str | None:
    """The folder `DATA_DIR/name` when it holds every one of `files`.

    Returns None when there is no data dir or no `name/` folder in it (then
    tfds is used). Raises FileNotFoundError naming the first missing file when
    the folder exists but is incomplete.
    """
    root = data_dir(configured)
    if not root:
        return None
    folder = os.path.join(root, name)
    if not os.path.isdir(folder):
        return None
    for filename in files:
        path = os.path.join(folder, filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: {folder} must hold {', '.join(files)} to prepare {name} "
                f"offline (see ../shared/data/README.md), or remove the folder to use tfds."
            )
    return folder


def require_network(tfds_name: str, expected: str, timeout_s: float = 3.0) -> None:
    """Fails within seconds when tfds would have to download with no network.

    tfds retries downloads for minutes; this checks the download host first.
    """
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=timeout_s).close()
    except OSError as err:
        raise FileNotFoundError(
            f"tfds data set {tfds_name!r} is not prepared and there is no network to download "
            f"it. Put {expected} under ${DATA_DIR_ENV} (or config.data.data_dir) to prepare "
            f"it offline. ({err})"
        ) from None
