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
import socket
import time

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
    top = _bucket(workdir) if is_url(workdir) else None  # never above the bucket
    while not _exists(path, workdir) and path.parent != path and os.fspath(path) != top:
        path = path.parent
    if _exists(path, workdir) and not path.is_dir():
        what = "is a file" if path == target else f"is under a file ({path})"
        raise ValueError(f"--workdir={workdir} {what}: pass a folder (a new one, or one a run "
                         "trained into).")


def _bucket(url: str) -> str:
    """`gs://bucket` of `gs://bucket/a/b`."""
    scheme, rest = os.fspath(url).split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _exists(path: epath.Path, workdir: str) -> bool:
    """`path.exists()`, with the missing client of a bucket URL named as what to install."""
    try:
        return path.exists()
    except ImportError as err:
        raise ValueError(f"--workdir={workdir} needs the client of its storage ({err}): "
                         "pip install 'bigjax[gcs]' (gs://).") from None


def make(workdir: str) -> None:
    """Creates `workdir` (and its parents) and checks that it can be written (in a bucket:
    by writing and deleting a probe object, so a wrong bucket or missing credentials fail
    here, not at the first checkpoint); a refusal becomes one clear ValueError."""
    try:
        path = epath.Path(resolve(workdir))
        path.mkdir(parents=True, exist_ok=True)
        if is_url(workdir):
            probe = path / f".bigjax_write_probe.{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        elif not os.access(resolve(workdir), os.W_OK | os.X_OK):
            raise PermissionError(f"no write permission on {workdir}")
    except ImportError as err:
        raise ValueError(f"--workdir={workdir} needs the client of its storage ({err}): "
                         "pip install 'bigjax[gcs]' (gs://).") from None
    except Exception as err:  # OSError locally; clients of buckets raise their own kinds
        reason = getattr(err, "strerror", None) or err
        raise ValueError(f"--workdir={workdir} cannot be written ({reason}): pick a folder "
                         "you can write to (for a bucket: check its name and your "
                         "credentials).") from None


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
    tmp = f"{path}.{socket.gethostname()}.{os.getpid()}.tmp"  # writers may race
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class LineLog:
    """A text file that grows by whole lines (`metrics.jsonl`, `config_history.jsonl`).

    Locally lines are appended and flushed one by one. An object store cannot append:
    there the lines written so far are kept, and the whole object is uploaded again (one
    atomic upload) at most every `upload_every_s` seconds, on `flush()` (the train loop
    flushes before each checkpoint, so every row up to a checkpoint is kept) and on
    `close()`. Cloud Storage allows about one write per second to one object.
    """

    def __init__(self, path: str, upload_every_s: float = 30.0):
        self.path = path
        self.upload_every_s = upload_every_s
        self._remote = is_url(path)
        self._uploaded_at: float | None = None  # time.monotonic() of the last upload
        self._pending = False
        if self._remote:
            file = epath.Path(path)
            self._text = file.read_text() if file.exists() else ""
            if self._text and not self._text.endswith("\n"):
                self._text += "\n"
        else:
            self._file = open(path, "a")

    def append(self, line: str) -> None:
        """Adds `line` (without its newline) to the end of the file: at once locally, with
        the next upload in a bucket."""
        if self._remote:
            self._text += line + "\n"
            self._pending = True
            if self._uploaded_at is None or \
                    time.monotonic() - self._uploaded_at >= self.upload_every_s:
                self.flush()
        else:
            self._file.write(line + "\n")
            self._file.flush()

    def flush(self) -> None:
        """Makes every appended line durable (in a bucket: uploads them if any is new)."""
        if self._remote and self._pending:
            epath.Path(self.path).write_text(self._text)
            self._uploaded_at, self._pending = time.monotonic(), False

    def close(self) -> None:
        if self._remote:
            self.flush()
        else:
            self._file.close()
