"""Data sets by tfds name. Each loader returns an in-memory `ArrayDataset`."""

from __future__ import annotations

from collections.abc import Callable

from bigjax.datasets import digits, mnist, text_files
from bigjax.datasets.array_dataset import ArrayDataset

_LOADERS: dict[str, Callable[..., ArrayDataset]] = {
    "digits": lambda split, data_dir: digits.load(split),
    "mnist": mnist.load,
    "imdb_reviews": text_files.load_imdb,
    "glue/sst2": text_files.load_sst2,
    "ag_news_subset": text_files.load_ag_news,
}


def load(name: str, split: str, data_dir: str | None = None) -> ArrayDataset:
    """Loads split `split` of data set `name` (a tfds name, or "digits")."""
    if name not in _LOADERS:
        raise ValueError(f"Unknown data set {name!r}; known: {sorted(_LOADERS)}.")
    return _LOADERS[name](split, data_dir)
