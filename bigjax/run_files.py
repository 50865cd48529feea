"""A run's folder and the files bigjax writes there, on a local disk or in a bucket.

Every path goes through `etils.epath` (what Orbax and tensorflow-datasets use), so a
workdir may be a local folder or a URL such as `gs://bucket/run` (Cloud Storage needs
the `.[gcs]` extra: `gcsfs` for the files, TensorStore for the checkpoint arrays,
`google-cloud-storage` for TensorBoard). Object stores have neither renames that are
atomic nor appends: a whole-object upload is atomic, so small files are written in one
piece there, and through a temporary file and a rename on a local disk.
"""

from __future__ import annotations

import os
import re

import fsspec
from etils import epath

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# fsspec caches folder listings per process; in a bucket, another process (a host of the
# same run, Orbax's TensorStore writes, `evaluate` beside `train`) adds files behind its
# back, and a cached listing would hide them (a checkpoint "not found"). Always list anew.
for _protocol in ("gs", "gcs", "s3"):
    fsspec.config.conf.setdefault(_protocol, {}).setdefault("use_listings_cache", False)


def is_url(path: str | os.PathLike) -> bool:
    """Whether `path` names a remote location (`gs://...`, `s3://...`), not a local one."""
    return bool(_URL.match(os.fspath(path)))


def resolve(path: str | os.PathLike) -> str:
    """A local path made absolute (with `~` expanded); a URL unchanged."""
    path = os.fspath(path)
    return path if is_url(path) else os.path.abspath(os.path.expanduser(path))


def join(path: str | os.PathLike, *parts: str) -> str:
    """`path/part/...` as a string (a URL stays a URL)."""
    return os.fspath(epath.Path(resolve(path)).joinpath(*parts))


def check(workdir: str) -> None:
    """Raises ValueError when `workdir` cannot be a run's folder (it is a file, or a file
    stands where one of its parents should be)."""
    target = epath.Path(resolve(workdir))
    path = target
    while not path.exists() and path.parent != path:
        path = path.parent
    if path.exists() and not path.is_dir():
        what = "is a file" if path == target else f"is under a file ({path})"
        raise ValueError(f"--workdir={workdir} {what}: pass a folder (a new one, or one a run "
                         "trained into).")


def make(workdir: str) -> None:
    """Creates `workdir` (and its parents); an OS or storage refusal becomes one clear
    ValueError."""
    try:
        epath.Path(resolve(workdir)).mkdir(parents=True, exist_ok=True)
        if not is_url(workdir) and not os.access(resolve(workdir), os.W_OK | os.X_OK):
            raise PermissionError(f"no write permission on {workdir}")
    except OSError as err:
        raise ValueError(f"--workdir={workdir} cannot be written ({err.strerror or err}): "
                         "pick a folder you can write to.") from None


def remove(workdir: str) -> None:
    """Deletes `workdir` and everything in it, ignoring what is already gone."""
    path = epath.Path(resolve(workdir))
    try:
        if path.exists():
            path.rmtree()
    except OSError:
        pass


def write_text(path: str, text: str) -> None:
    """Writes `text` to `path` so that readers see the old file or the new one, never
    half of one: a temporary file renamed over it on a local disk, one upload in a bucket."""
    if is_url(path):
        epath.Path(path).write_text(text)
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class LineLog:
    """A text file that grows by whole lines (`metrics.jsonl`, `config_history.jsonl`).

    Locally lines are appended and flushed one by one. An object store cannot append:
    there the lines written so far are kept and the whole object is uploaded again after
    each `append` (one atomic upload; the files are small: one line per logged step).
    """

    def __init__(self, path: str):
        self.path = path
        self._remote = is_url(path)
        if self._remote:
            file = epath.Path(path)
            self._text = file.read_text() if file.exists() else ""
            if self._text and not self._text.endswith("\n"):
                self._text += "\n"
        else:
            self._file = open(path, "a")

    def append(self, line: str) -> None:
        """Adds `line` (without its newline) to the end of the file, durably."""
        if self._remote:
            self._text += line + "\n"
            epath.Path(self.path).write_text(self._text)
        else:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        if not self._remote:
            self._file.close()
