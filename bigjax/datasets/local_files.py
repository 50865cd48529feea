"""Finding a data set's raw files, and failing fast, naming the file, when one is absent
or damaged.

Where the files are looked for:
- `config.data.data_dir` when set: the data set's folder must be there (`DIR/mnist/...`);
  when it is not, loading fails naming the folder and the files expected, never falling
  back to another source;
- else `$BIGJAX_DATA_DIR`: its folder for the data set when there is one, else tfds;
- else tfds.

Folders may be local or bucket URLs (`gs://bucket/data`): every path goes through
`etils.epath`, and files are opened with `open_binary` / `open_text`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import logging
import os
import socket
import tarfile
import threading
import zlib
from collections.abc import Iterator, Sequence
from typing import IO

from etils import epath

from bigjax import run_files

log = logging.getLogger("bigjax")
DATA_DIR_ENV = "BIGJAX_DATA_DIR"
LAYOUT_DOC = "../shared/data/README.md"
SPLIT_KEYS = "config.data.train_split / config.data.eval_split (or an evaluator's `split`)"
# What parsing a truncated or corrupt file raises (gzip, zlib, tar, text decoding, csv).
DAMAGE_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError, UnicodeDecodeError,
                 csv.Error)


def data_dir(configured: str | None = None) -> str | None:
    """`config.data.data_dir` if set, else `$BIGJAX_DATA_DIR`, else None."""
    found = configured or os.environ.get(DATA_DIR_ENV) or None
    return run_files.resolve(found) if found else None


def local_folder(name: str, files: Sequence[str], configured: str | None) -> str | None:
    """The folder `DATA_DIR/name` when it holds every one of `files`, else None (use tfds).

    With `configured` (an explicit `config.data.data_dir`) the folder must exist:
    FileNotFoundError names the folder looked in and the files expected. With only
    `$BIGJAX_DATA_DIR`, a missing `name/` folder means tfds (logged). Either way a
    folder that exists but lacks a file raises FileNotFoundError naming the file.
    """
    if configured:
        folder = _configured_folder(name, files, configured)
        fallback = f"or leave config.data.data_dir unset to use ${DATA_DIR_ENV} or tfds"
    else:
        root = os.environ.get(DATA_DIR_ENV)
        if not root:
            return None
        folder = run_files.join(root, name)
        if not epath.Path(folder).is_dir():
            log.info("$%s=%s has no %s/ folder; using tfds for it.", DATA_DIR_ENV, root, name)
            return None
        fallback = "or remove the folder to use tfds"
    _check_files(folder, name, files, fallback)
    return folder


def _configured_folder(name: str, files: Sequence[str], configured: str) -> str:
    """`configured/name`; FileNotFoundError saying what is missing and what to do."""
    root = run_files.resolve(configured)
    folder = run_files.join(root, name)
    if epath.Path(folder).is_dir():
        return folder
    expected = ", ".join(f"{name}/{f}" for f in files)
    root_exists = epath.Path(root).is_dir()
    if not root_exists:
        problem = f"config.data.data_dir={root} does not exist"
    else:
        problem = f"config.data.data_dir={root} has no {name}/ folder (looked for {folder})"
    hint = ""
    if root_exists and all(epath.Path(root, f).is_file() for f in files):
        hint = f" {root} holds the files itself: set config.data.data_dir to its parent folder."
    raise FileNotFoundError(
        f"{problem}. It must hold {expected} (the layout of {LAYOUT_DOC}), or leave "
        f"config.data.data_dir unset to use ${DATA_DIR_ENV} or tfds.{hint}"
    )


def _check_files(folder: str, name: str, files: Sequence[str], fallback: str) -> None:
    """FileNotFoundError naming the first of `files` missing from `folder`."""
    for filename in files:
        path = run_files.join(folder, filename)
        if not epath.Path(path).is_file():
            raise FileNotFoundError(
                f"{path} is missing: {folder} must hold {', '.join(files)} to prepare {name} "
                f"offline (see {LAYOUT_DOC}), {fallback}."
            )


def damaged_message(path: str, detail: str) -> str:
    """The message for a local data file that cannot be parsed: names it, says what to do."""
    return (
        f"{path} is damaged ({detail}): it looks truncated or corrupt. Re-download it or copy "
        "it again (`sha256sum -c SHA256SUMS` in the offline data folder checks its copies)."
    )


def open_binary(path: str) -> IO[bytes]:
    """`path` (local or in a bucket) opened for reading bytes."""
    return epath.Path(path).open("rb")


def open_text(path: str, encoding: str = "utf-8") -> IO[str]:
    """`path` opened for reading text, newlines untranslated (what `csv` needs)."""
    return io.TextIOWrapper(open_binary(path), encoding=encoding, newline="")


@contextlib.contextmanager
def reading(path: str) -> Iterator[None]:
    """Turns what parsing a damaged (truncated, corrupt) or unreadable `path` raises into
    one ValueError naming the file; other errors pass through."""
    try:
        yield
    except DAMAGE_ERRORS as err:
        raise ValueError(damaged_message(path, f"{_error_name(err)}: {err}")) from err
    except PermissionError as err:
        raise ValueError(f"{path} cannot be read ({err.strerror}): fix its permissions or "
                         "copy it somewhere readable.") from err


def _error_name(err: BaseException) -> str:
    """`EOFError`, `zlib.error`, `gzip.BadGzipFile`, `csv.Error`, ..."""
    module = type(err).__module__.lstrip("_")
    return type(err).__name__ if module == "builtins" else f"{module}.{type(err).__name__}"


def check_split(dataset: str, split: str, known: Sequence[str]) -> None:
    """ValueError listing the known splits when `split` is not one of them."""
    if split not in known:
        raise ValueError(
            f"Data set {dataset!r} has no split {split!r}; its splits are "
            f"{', '.join(map(repr, known))}. Set {SPLIT_KEYS} to one of them."
        )


def require_examples(count: int, dataset: str, split: str, source: str) -> None:
    """ValueError naming the data set, split and `source` when `count` is 0."""
    if count == 0:
        raise ValueError(
            f"Split {split!r} of data set {dataset!r} has no examples (read from {source}). "
            "A damaged or truncated file can do this: re-download or copy it again, or set "
            f"{SPLIT_KEYS} to a split that has examples."
        )


def require_network(tfds_name: str, expected: str, timeout_s: float = 3.0) -> None:
    """Fails within seconds when tfds would have to download with no network.

    tfds retries downloads for minutes; this checks the download host first, within
    `timeout_s` name lookup included (a resolver that never answers would otherwise hold
    `socket.create_connection`, whose timeout covers the connection only, for longer).
    """
    try:
        _connect_within("storage.googleapis.com", 443, timeout_s)
    except OSError as err:
        env = os.environ.get(DATA_DIR_ENV)
        where = f"${DATA_DIR_ENV} (now {env})" if env else f"${DATA_DIR_ENV} (unset now)"
        raise FileNotFoundError(
            f"tfds data set {tfds_name!r} is not prepared and there is no network to download "
            f"it. Put {expected} under {where} or config.data.data_dir to prepare it "
            f"offline. ({err})"
        ) from None


def _connect_within(host: str, port: int, timeout_s: float) -> None:
    """Connects to `host:port` and closes the connection; OSError when that fails. The name
    lookup runs on a daemon thread (left to end alone) that gets `timeout_s`; then each
    address it gave is tried in turn with `timeout_s` each, as `socket.create_connection`
    does (an IPv6 address that never answers still leaves the IPv4 one its try)."""
    found: list = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as err:
            found.append(err)

    attempt = threading.Thread(target=lookup, daemon=True, name="bigjax-network-check")
    attempt.start()
    attempt.join(timeout_s)
    if not found:
        raise OSError(f"no answer from the name lookup of {host} within {timeout_s:g} s")
    if isinstance(found[0], OSError):
        raise found[0]
    error = OSError(f"{host} has no address")
    for family, kind, proto, _, address in found[0]:
        try:
            with socket.socket(family, kind, proto) as connection:
                connection.settimeout(timeout_s)
                connection.connect(address)
            return
        except OSError as err:
            error = err
    raise error
