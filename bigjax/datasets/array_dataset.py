"""An in-memory data set: named numpy arrays with a shared leading example axis."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np


class Examples(Protocol):
    """What the input pipeline reads: `ArrayDataset` (in memory) or
    `record_files.RecordDataset` (on disk, read by index)."""

    name: str
    num_classes: int | None

    def __len__(self) -> int: ...

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...

    def subset(self, indices: np.ndarray, name: str | None = None) -> Examples: ...


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """Examples as columns: `features[name]` is `[num_examples, ...]`.

    Image data sets hold `image: uint8 [n, height, width, channels]` and
    `label: int32 [n]`; text data sets hold token ids or raw strings.
    """

    features: dict[str, np.ndarray]
    num_classes: int | None = None
    name: str = ""

    def __post_init__(self):
        lengths = {k: len(v) for k, v in self.features.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"Data set {self.name!r}: columns differ in length: {lengths}.")
        labels = self.features.get("label")
        if labels is not None and self.num_classes is not None and len(labels):
            bad = np.flatnonzero((labels < 0) | (labels >= self.num_classes))
            if bad.size:
                i = int(bad[0])
                raise ValueError(
                    f"Data set {self.name!r}: label {int(labels[i])} at example {i} is outside "
                    f"[0, {self.num_classes}); {bad.size} labels are out of range. Check the "
                    "data files or set the right number of classes."
                )

    def __len__(self) -> int:
        return len(next(iter(self.features.values())))

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The examples at `indices` ([k] ints) as a dict of `[k, ...]` arrays."""
        return {k: v[indices] for k, v in self.features.items()}

    def subset(self, indices: np.ndarray, name: str | None = None) -> ArrayDataset:
        """A new data set of the examples at `indices`."""
        return ArrayDataset(self.take(indices), self.num_classes, name or self.name)
