"""A tfds split read by index through `tfds.data_source`: the ArrayRecord files tfds
prepared, never loaded whole (what `config.data.on_disk` uses for a tfds name when no
offline copy of its files is configured)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np


class TfdsDataset:
    """`ArrayDataset`'s interface (`len`, `take`, `subset`) over a tfds data source.

    `columns` maps bigjax's column names to the tfds feature names and dtypes, e.g.
    `{"image": ("image", np.uint8), "label": ("label", np.int32)}`. `transforms`
    (optional) maps a column to a function applied to each example's value before the
    batch is stacked (e.g. resizing images of varied sizes to one).
    """

    def __init__(self, source: Sequence[Mapping], name: str, num_classes: int | None,
                 columns: Mapping[str, tuple[str, np.dtype]],
                 indices: np.ndarray | None = None,
                 transforms: Mapping[str, Callable] | None = None):
        self.source, self.name, self.num_classes = source, name, num_classes
        self.columns = dict(columns)
        self.transforms = dict(transforms or {})
        self._indices = None if indices is None else np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self.source) if self._indices is None else len(self._indices)

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The examples at `indices` ([k] ints) as `{column: [k, ...]}` arrays."""
        indices = np.asarray(indices, np.int64)
        if self._indices is not None:
            indices = self._indices[indices]
        examples = [self.source[int(i)] for i in indices]
        def value(example, ours, theirs, dtype):
            transform = self.transforms.get(ours)
            raw = example[theirs] if transform is None else transform(example[theirs])
            return np.asarray(raw, dtype)

        return {ours: np.stack([value(e, ours, theirs, dtype) for e in examples]) if examples
                else np.zeros((0,), dtype) for ours, (theirs, dtype) in self.columns.items()}

    def subset(self, indices: np.ndarray, name: str | None = None) -> TfdsDataset:
        base = np.asarray(indices, np.int64)
        return TfdsDataset(self.source, name or self.name, self.num_classes, self.columns,
                           base if self._indices is None else self._indices[base],
                           self.transforms)
