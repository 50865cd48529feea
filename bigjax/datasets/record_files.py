"""Data sets prepared on disk once and read by index: ArrayRecord files.

A prepared split is two files in a folder:
- `<split>.array_record`: one record per example, the raw bytes of its numeric columns
  one after the other (every example has the same columns, dtypes and shapes, so a batch
  of records decodes as one numpy buffer: no per-example parsing, no pickle), written
  with group size 1 so that any example is read without its neighbours;
- `<split>.json`: the number of examples, the columns in record order (dtype and
  per-example shape), the number of classes and the class names.

`RecordDataset` reads examples by index (`take`), so a process holds only the batches
it is working on, whatever the size of the split; it has `ArrayDataset`'s interface
(`len`, `take`, `subset`, `num_classes`, `name`) and the input pipeline treats both alike.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterable

import jax
import numpy as np
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

from bigjax import run_files

# One example per chunk: random access reads (and decompresses) exactly one example.
WRITER_OPTIONS = "group_size:1"
# Random access: no read-ahead. One `read(indices)` call per batch is ~5x faster here
# than grain's ArrayRecordDataSource, which reads record by record on a thread pool.
READER_OPTIONS = "readahead_buffer_size:0"
# The record layout, stored in `<split>.json`: files of another layout are prepared again.
FORMAT = "bigjax-columns-1"


def records_path(folder: str, split: str) -> str:
    return os.path.join(folder, f"{split}.array_record")


def info_path(folder: str, split: str) -> str:
    return os.path.join(folder, f"{split}.json")


def is_prepared(folder: str, split: str) -> bool:
    """Whether `folder` holds a complete prepared `split` of this `FORMAT` (the info file
    is written last)."""
    if not (os.path.isfile(info_path(folder, split)) and
            os.path.isfile(records_path(folder, split))):
        return False
    with open(info_path(folder, split)) as f:
        return json.load(f).get("format") == FORMAT


def _writer_id() -> str:
    """Unique to this process on this host (a shared disk may be written from several)."""
    return f"{socket.gethostname()}.{os.getpid()}"


def check_local(path: str, key: str) -> str:
    """`path` made absolute; a bucket URL is refused (ArrayRecord files are read with
    local file reads)."""
    if run_files.is_url(path):
        raise ValueError(f"{key}={path} is a URL: prepared ArrayRecord files (and the raw "
                         "files of your own data sets) must be on a local or mounted disk of "
                         "each host. Copy them there, or leave it unset for the default.")
    return os.path.abspath(os.path.expanduser(path))


def prepare_once(folder: str, split: str, prepare: Callable[[], None],
                 is_ready: Callable[[str, str], bool] | None = None) -> None:
    """Runs `prepare()` (which writes split `split` into `folder`) unless it is there
    (`is_ready(folder, split)`, default: `is_prepared`, the ArrayRecord files).

    Process 0 prepares first while the others wait; a process that still cannot see the
    files (its own disk) then prepares its own copy. If process 0 fails, the others
    reach the same point and fail the same way (they try to prepare too) instead of
    waiting forever.
    """
    is_ready = is_ready or is_prepared
    failure = None
    if jax.process_index() == 0 and not is_ready(folder, split):
        try:
            prepare()
        except Exception as err:  # re-raised below, after the others are released
            failure = err
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"bigjax_prepare_{folder}_{split}")
    if failure is not None:
        raise failure
    if not is_ready(folder, split):
        prepare()


def write(folder: str, split: str, examples: Iterable[dict[str, np.ndarray]], name: str,
          num_classes: int | None = None, class_names: list[str] | None = None) -> int:
    """Writes `examples` (dicts of numpy arrays, the same keys, dtypes and shapes in every
    one) as prepared split `split` of data set `name` in `folder`; returns their number.

    The records go to a temporary file renamed into place, and the info file comes
    last: an interrupted preparation leaves nothing that `is_prepared` accepts.
    """
    os.makedirs(folder, exist_ok=True)
    tmp = f"{records_path(folder, split)}.{_writer_id()}.tmp"  # processes and hosts may race
    writer = ArrayRecordWriter(tmp, WRITER_OPTIONS)
    columns: dict[str, tuple[str, list[int]]] | None = None
    count = 0
    try:
        for example in examples:
            arrays = {k: np.asarray(v) for k, v in example.items()}
            found = {k: (a.dtype.str, list(a.shape)) for k, a in arrays.items()}
            if columns is None:
                objects = [k for k, a in arrays.items() if a.dtype.hasobject]
                if objects:
                    raise ValueError(f"Column(s) {objects} of {name!r} hold Python objects "
                                     "(e.g. strings): records hold numeric arrays only.")
                columns = found
            elif found != columns:
                raise ValueError(f"Example {count} of {name!r} ({split}) has columns {found}, "
                                 f"the first one {columns}: every example must have the same "
                                 "columns, dtypes and shapes.")
            # In the first example's column order, whatever order this dict has.
            writer.write(b"".join(np.ascontiguousarray(arrays[k]).tobytes() for k in columns))
            count += 1
        if count == 0:
            raise ValueError(f"Split {split!r} of {name!r} has no examples to prepare.")
    except BaseException:
        writer.close()
        os.remove(tmp)  # nothing half-written stays behind
        raise
    writer.close()
    os.replace(tmp, records_path(folder, split))
    info = {"format": FORMAT, "name": name, "split": split, "num_examples": count,
            "columns": columns, "num_classes": num_classes, "class_names": class_names}
    run_files.write_text(info_path(folder, split), json.dumps(info))
    return count


class RecordDataset:
    """Split `split` of the prepared data set in `folder`, read example by example.

    `take(indices)` returns `{column: [k, ...]}` like `ArrayDataset.take`; `indices`
    (optional) restricts the data set to those examples of the file, in that order.
    """

    def __init__(self, folder: str, split: str, indices: np.ndarray | None = None):
        if not os.path.isfile(info_path(folder, split)) or \
                not os.path.isfile(records_path(folder, split)):
            raise FileNotFoundError(
                f"{folder} holds no prepared split {split!r} ({split}.array_record and "
                f"{split}.json): prepare it first (record_files.write), or point "
                "config.data.path at the folder that holds them.")
        with open(info_path(folder, split)) as f:
            self.info = json.load(f)
        if self.info.get("format") != FORMAT:
            raise ValueError(
                f"{info_path(folder, split)} describes records of format "
                f"{self.info.get('format', 'unnamed')!r}, this bigjax reads {FORMAT!r}: "
                "prepare the data set again.")
        self.folder, self.split = folder, split
        self.name = self.info["name"]
        self.num_classes = self.info["num_classes"]
        self.class_names = self.info.get("class_names")
        self._indices = None if indices is None else np.asarray(indices, np.int64)
        self._reader = None
        found = self._open().num_records()
        if found != self.info["num_examples"]:
            raise ValueError(
                f"{records_path(folder, split)} holds {found} records, its {split}.json "
                f"says {self.info['num_examples']}: the folder is damaged; delete it and "
                "prepare the data set again.")

    def _open(self) -> ArrayRecordReader:
        """The file's reader, opened on first use in each process."""
        if self._reader is None:
            self._reader = ArrayRecordReader(records_path(self.folder, self.split),
                                             READER_OPTIONS, file_reader_buffer_size=32768)
        return self._reader

    def __getstate__(self) -> dict:  # for grain worker processes: they open their own
        return {**self.__dict__, "_reader": None}

    def __len__(self) -> int:
        return self.info["num_examples"] if self._indices is None else len(self._indices)

    def columns(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """`{column: (dtype, per-example shape)}`."""
        return {k: (np.dtype(d), tuple(s)) for k, (d, s) in self.info["columns"].items()}

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The examples at `indices` ([k] ints) as `{column: [k, ...]}` arrays."""
        indices = np.asarray(indices, np.int64)
        if self._indices is not None:
            indices = self._indices[indices]
        records = self._open().read([int(i) for i in indices]) if len(indices) else []
        columns = self.columns()
        sizes = [dtype.itemsize * int(np.prod(shape)) for dtype, shape in columns.values()]
        raw = np.frombuffer(b"".join(records), np.uint8).reshape(len(indices), sum(sizes))
        out, offset = {}, 0
        for (name, (dtype, shape)), size in zip(columns.items(), sizes, strict=True):
            column = np.ascontiguousarray(raw[:, offset:offset + size])
            out[name] = column.view(dtype).reshape(len(indices), *shape)
            offset += size
        return out

    def subset(self, indices: np.ndarray, name: str | None = None) -> RecordDataset:
        """The examples at `indices`, still on disk."""
        base = np.asarray(indices, np.int64)
        view = RecordDataset.__new__(RecordDataset)
        view.__dict__.update(self.__dict__)
        view._indices = base if self._indices is None else self._indices[base]
        view.name = name or self.name
        return view
