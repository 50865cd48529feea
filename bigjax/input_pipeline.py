"""Deterministic, resumable batches for training and padded, masked batches for eval.

The training order is a pure function of (seed, batch index): every epoch is
a fresh permutation of the examples drawn from (seed, epoch), cut into
`steps_per_epoch` global batches, and each process gathers only its own rows
of every global batch; grain reads the batches ahead. Resuming at
batch `k` therefore replays exactly the batches an uninterrupted run would
have seen, whatever the number of processes. The checkpoint stores that
position (`DataPosition`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator

import grain
import jax
import numpy as np

from bigjax.datasets.array_dataset import ArrayDataset, Examples
from bigjax.length_buckets import TOKEN_COLUMNS, LengthBuckets, token_lengths

# `(batch, rngs) -> batch`: host-side preprocessing, `rngs[i]` for example i.
HostTransform = Callable[[dict[str, np.ndarray], list[np.random.Generator]],
                         dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class DataPosition:
    """Where the training iterator stands: the index of the next global batch."""

    next_batch: int
    seed: int
    global_batch_size: int
    num_examples: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _process_rows(global_size: int) -> slice:
    """This process's rows of a global batch of `global_size` examples, when each process
    holds an equal, contiguous block (pass `sharding.process_rows(mesh, ...)` otherwise)."""
    count, index = jax.process_count(), jax.process_index()
    if global_size % count:
        raise ValueError(
            f"Batch size {global_size} is not divisible by the {count} processes; choose a "
            f"multiple of {count}."
        )
    per_process = global_size // count
    return slice(index * per_process, (index + 1) * per_process)


class TrainBatches:
    """Random-access global training batches; `[k]` is this process's part of batch k.

    Each batch is a dict of numpy arrays `[global_batch_size / process_count, ...]`.
    Epoch `e` is `steps_per_epoch` batches cut from its own permutation (see
    `global_indices`); batch k belongs to epoch `k // steps_per_epoch`.
    """

    def __init__(self, data: Examples, global_batch_size: int, seed: int,
                 rows: slice | None = None, host_transform: HostTransform | None = None,
                 length_buckets: tuple[int, ...] | None = None):
        """`host_transform(batch, rngs) -> batch`: host-side preprocessing of each batch
        (e.g. `pp.host_crop.HostCrop`), `rngs[i]` seeded by (seed, batch index, global
        row) for example i. `length_buckets`: widths for batches of similar lengths
        (`length_buckets.LengthBuckets`; None: data order, full widths)."""
        if len(data) < global_batch_size:
            raise ValueError(
                f"Data set {data.name!r} has {len(data)} examples, fewer than the batch size "
                f"{global_batch_size}; lower config.batch_size."
            )
        self.data = data
        self.global_batch_size = global_batch_size
        self.seed = seed
        self._rows = rows or _process_rows(global_batch_size)
        self.host_transform = host_transform
        self._epoch_cache: tuple[int, np.ndarray] | None = None
        self.buckets = None
        if length_buckets:
            if not isinstance(data, ArrayDataset):
                raise ValueError("config.data.length_buckets needs the data in memory; unset "
                                 "config.data.on_disk or the buckets.")
            self.buckets = LengthBuckets(data.features, length_buckets)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.data) // self.global_batch_size

    def _epoch_order(self, epoch: int) -> np.ndarray:
        """The example order of `epoch`: a permutation drawn from (seed, epoch)."""
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.data))
            if self.buckets is not None:  # batches of similar lengths, in random order
                order = self.buckets.order(order[:self.steps_per_epoch * self.global_batch_size],
                                           self.global_batch_size,
                                           np.random.default_rng([self.seed, epoch, 1]))
            self._epoch_cache = (epoch, order)
        return self._epoch_cache[1]

    def global_indices(self, batch_index: int) -> np.ndarray:
        """Example indices `[global_batch_size]` of global batch `batch_index`.

        An epoch is `steps_per_epoch` batches of its own permutation; the last
        `n % global_batch_size` examples of each permutation are left out, so no
        batch holds an example twice.
        """
        epoch, k = divmod(batch_index, self.steps_per_epoch)
        size = self.global_batch_size
        return self._epoch_order(epoch)[k * size:(k + 1) * size]

    def __getitem__(self, batch_index: int) -> dict[str, np.ndarray]:
        indices = self.global_indices(batch_index)
        return self._transformed(batch_index, self._cut(self.data.take(indices[self._rows]),
                                                        indices))

    def mean_widths(self) -> dict[str, float]:
        """With length buckets: each token column's mean width over the first epoch's
        batches (else empty: every batch is full width)."""
        if self.buckets is None:
            return {}
        return self.buckets.mean_widths(self._epoch_order(0), self.global_batch_size)

    def _cut(self, batch: dict[str, np.ndarray], global_indices: np.ndarray
             ) -> dict[str, np.ndarray]:
        """`batch` without its text columns, its token columns cut to their bucket width
        (when bucketing) by the longest of `global_indices`."""
        batch = device_columns(batch)
        return batch if self.buckets is None else self.buckets.cut(batch, global_indices)

    def _transformed(self, batch_index: int, batch: dict[str, np.ndarray]
                     ) -> dict[str, np.ndarray]:
        """`batch` after the host transform (if any), with one generator per example."""
        if self.host_transform is None:
            return batch
        rows = np.arange(self.global_batch_size)[self._rows]
        rngs = [np.random.default_rng([self.seed, batch_index, int(r)]) for r in rows]
        return self.host_transform(batch, rngs)

    def chunk(self, first: int, count: int) -> dict[str, np.ndarray]:
        """Batches `first, ..., first + count - 1` stacked, `[count, rows, ...]`: one gather
        of all their rows (what a train-step call of `count` steps takes)."""
        indices = [self.global_indices(first + j) for j in range(count)]
        rows = np.concatenate([i[self._rows] for i in indices])
        flat = self._cut(self.data.take(rows), np.concatenate(indices))
        stacked = {k: v.reshape(count, -1, *v.shape[1:]) for k, v in flat.items()}
        if self.host_transform is None:
            return stacked
        batches = [self._transformed(first + j, {k: v[j] for k, v in stacked.items()})
                   for j in range(count)]
        return {k: np.stack([b[k] for b in batches]) for k in batches[0]}

    def iterate(self, start: int, stop: int, prefetch: int = 2, per_call: int = 1,
                workers: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Batches `start, ..., stop - 1`, read ahead; with `per_call` > 1,
        `(stop - start) / per_call` chunks of `per_call` stacked batches (`chunk`), so the
        train loop gathers and places each call's data once.

        `workers` = 0: read (and host-transformed) on one background thread. `workers` > 0:
        by that many grain worker processes, each producing every `workers`-th batch;
        grain interleaves them back in order, so the batches are the same either way.
        """
        if per_call == 1:
            ds = grain.MapDataset.range(start, stop).map(self.__getitem__)
        else:
            ds = grain.MapDataset.range(start, stop, per_call).map(
                functools.partial(_chunk_at, self, per_call))
        options = grain.ReadOptions(num_threads=1, prefetch_buffer_size=prefetch)
        iter_ds = ds.to_iter_dataset(options)
        if workers:
            from absl import flags

            if not flags.FLAGS.is_parsed():  # grain reads its absl flags (their defaults)
                flags.FLAGS.mark_as_parsed()
            iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(
                num_workers=workers, per_worker_buffer_size=prefetch)).map(_own_arrays)
        return iter(iter_ds)

    def position(self, next_batch: int) -> DataPosition:
        return DataPosition(next_batch, self.seed, self.global_batch_size, len(self.data))

    def check_position(self, saved: dict) -> int:
        """Validates a checkpoint's saved position against this pipeline; returns the batch."""
        current = self.position(int(saved["next_batch"])).to_json()
        changed = {k: (saved[k], current[k]) for k in current if k != "next_batch"
                   and saved.get(k) != current[k]}
        if changed:
            raise ValueError(
                "The checkpoint was written with a different data order "
                f"(saved vs now: {changed}); resuming would not replay the same batches. "
                "Use the original config values or a fresh --workdir."
            )
        return int(saved["next_batch"])


def device_columns(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`batch` without its columns of Python objects (raw text that evaluators read on the
    host, e.g. translation references): only arrays travel to the devices."""
    return {k: v for k, v in batch.items() if v.dtype != object}


def _own_arrays(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`batch` copied out of the shared memory a worker process handed it over in, so that
    grain can release that memory at once."""
    return {k: np.array(v) for k, v in batch.items()}


def _chunk_at(batches: TrainBatches, per_call: int, first: int) -> dict[str, np.ndarray]:
    """`batches.chunk(first, per_call)` as a picklable function (for worker processes)."""
    return batches.chunk(first, per_call)


def check_trim_multiple(trim_multiple) -> None:
    """`config.eval_trim_multiple` is None or a positive int, else a ValueError."""
    if trim_multiple is not None and (not isinstance(trim_multiple, int) or trim_multiple < 1):
        raise ValueError(f"config.eval_trim_multiple must be a positive integer or None, got "
                         f"{trim_multiple!r}.")


def eval_batches(data: Examples, global_batch_size: int, rows: slice | None = None,
                 trim_multiple: int | None = None,
                 with_index: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """Every example exactly once, in batches padded to `global_batch_size`.

    Each batch has a `mask: bool [rows]` column, False on padding rows (and with
    `with_index` an `index: int32 [rows]` column, each row's example index); this
    process yields its rows of each global batch.

    Token data (`TOKEN_COLUMNS`: `input_ids`, or `source_ids` and `target_ids`, each
    `[n, max_len]` padded with trailing 0s) with `trim_multiple = m`: the examples come
    shortest first (by the first of those columns), and each batch's token columns are
    cut to their longest row rounded up to a multiple of m (`[rows, L]`, L <= max_len),
    so the model skips most columns that are padding in every row. At most
    `ceil(max_len / m)` widths per column, one compile each. Columns of Python objects
    (raw text) are left out. The width
    comes from the whole global batch, so every process gets the same shapes.
    Otherwise the examples come in data order. (The order decides which examples
    share a batch, so eval randomness drawn per batch, like MLM masks, changes.)
    """
    check_trim_multiple(trim_multiple)
    rows = rows or _process_rows(global_batch_size)
    n = len(data)
    # Token ids are in memory (on-disk record sets hold images): lengths need all of them.
    columns = [c for c in TOKEN_COLUMNS if isinstance(data, ArrayDataset)
               and c in data.features and data.features[c].ndim == 2]
    trim = trim_multiple is not None and bool(columns) and n > 0
    if trim:
        lengths = {c: np.maximum(token_lengths(data.features[c]), 1) for c in columns}
        order = np.argsort(lengths[columns[0]], kind="stable")
    for start in range(0, n, global_batch_size):
        positions = np.arange(start, start + global_batch_size)
        mask = positions < n
        indices = np.where(mask, positions, 0)
        if trim:
            indices = order[indices]
        batch = device_columns(data.take(indices[rows]))
        batch["mask"] = mask[rows]
        if with_index:  # each row's example index in `data` (the order may be by length)
            batch["index"] = indices[rows].astype(np.int32)
        if trim:
            for column in columns:
                longest = int(lengths[column][indices[mask]].max())
                width = -(-longest // trim_multiple) * trim_multiple
                batch[column] = batch[column][:, :width]
        yield batch
