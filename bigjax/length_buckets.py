"""Length bucketing: training batches of similar-length sequences, cut to few widths.

Token columns (`TOKEN_COLUMNS`: int [n, max_len], real tokens first, then 0s) waste most
of a step on padding when lengths vary (Multi30k: 15 tokens on average in rows of 64).
`LengthBuckets` reorders each epoch's examples so that a batch holds similar lengths, and
cuts each batch's token columns to the first bucket width that holds its longest row.

The order stays a pure function of (seed, epoch), so batches remain random-access and
resumable: the epoch's permutation is cut into windows of `window_batches` batches, each
window is sorted by length (ties keep the permutation's order), cut into batches, and
the batches of the epoch are shuffled by a second draw from (seed, epoch). Widths come
from the whole global batch, so every process cuts its rows alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TOKEN_COLUMNS = ("input_ids", "source_ids", "target_ids")
WINDOW_BATCHES = 64


def token_lengths(ids: np.ndarray) -> np.ndarray:
    """int32 [n]: the position of each row's last nonzero id + 1 (0 for all padding)."""
    nonzero = np.asarray(ids) != 0
    from_end = np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), nonzero.shape[1] - from_end, 0).astype(np.int32)


class LengthBuckets:
    """Bucketing of a data set's token columns.

    Args:
      features: the data set's columns (in memory); its `TOKEN_COLUMNS` are bucketed.
      boundaries: the widths a column may be cut to (ascending; a column is never cut
        below its longest row, nor widened past its full width).
      window_batches: batches per sorted window (more: less padding, less randomness).
    """

    def __init__(self, features: dict[str, np.ndarray], boundaries: Sequence[int],
                 window_batches: int = WINDOW_BATCHES):
        self.columns = [c for c in TOKEN_COLUMNS if c in features and features[c].ndim == 2]
        if not self.columns:
            raise ValueError("config.data.length_buckets needs token columns "
                             f"({', '.join(TOKEN_COLUMNS)}) in the data; unset it.")
        if not boundaries or list(boundaries) != sorted(set(boundaries)) or min(boundaries) < 1:
            raise ValueError(f"config.data.length_buckets={tuple(boundaries)} must be "
                             "increasing positive widths.")
        self.boundaries = np.asarray(boundaries, np.int64)
        self.window_batches = window_batches
        self.widths = {c: features[c].shape[1] for c in self.columns}
        self.lengths = {c: token_lengths(features[c]) for c in self.columns}
        self.key = np.max([self.lengths[c] for c in self.columns], axis=0)  # [n]

    def order(self, order: np.ndarray, batch_size: int, rng: np.random.Generator
              ) -> np.ndarray:
        """`order` (an epoch's permutation, a whole number of batches) sorted by length
        within windows, its batches shuffled by `rng`."""
        window = batch_size * self.window_batches
        pieces = [chunk[np.argsort(self.key[chunk], kind="stable")]
                  for chunk in np.split(order, range(window, len(order), window))]
        batches = np.concatenate(pieces).reshape(-1, batch_size)
        return batches[rng.permutation(len(batches))].reshape(-1)

    def width(self, column: str, longest: np.ndarray) -> np.ndarray:
        """The width `column` is cut to for batches whose longest row is `longest` [...]:
        the first boundary that holds it, at most the column's full width."""
        index = np.searchsorted(self.boundaries, longest)  # first boundary >= longest
        fits = self.boundaries[np.minimum(index, len(self.boundaries) - 1)]
        return np.where(index < len(self.boundaries),
                        np.minimum(fits, self.widths[column]), self.widths[column])

    def cut(self, batch: dict[str, np.ndarray], global_indices: np.ndarray
            ) -> dict[str, np.ndarray]:
        """`batch` (rows of the examples `global_indices` [global batch], or of several
        batches) with each token column cut to the first boundary holding the longest of
        those examples."""
        out = dict(batch)
        for column in self.columns:
            longest = self.lengths[column][global_indices].max()
            out[column] = batch[column][..., :int(self.width(column, longest))]
        return out

    def mean_widths(self, order: np.ndarray, batch_size: int) -> dict[str, float]:
        """Each token column's width averaged over the batches of `order` (an epoch's
        bucketed order): what a step computes on average, for FLOP counts."""
        batches = order[:len(order) // batch_size * batch_size].reshape(-1, batch_size)
        return {c: float(self.width(c, self.lengths[c][batches].max(axis=1)).mean())
                for c in self.columns}
