"""Data sets by tfds name. Each loader returns an in-memory `ArrayDataset`."""

from __future__ import annotations

import logging
import numbers
from collections.abc import Callable

import numpy as np

from bigjax.datasets import digits, mnist, text_files
from bigjax.datasets.array_dataset import ArrayDataset

log = logging.getLogger("bigjax")
# `config.data.name` -> loader(split, data_dir); a new data set is one entry here.
LOADERS: dict[str, Callable[..., ArrayDataset]] = {
    "digits": lambda split, data_dir: digits.load(split),
    "mnist": mnist.load,
    "imdb_reviews": text_files.load_imdb,
    "glue/sst2": text_files.load_sst2,
    "ag_news_subset": text_files.load_ag_news,
}
EXAMPLES_KEYS = ("config.data.train_examples, config.data.eval_examples or an evaluator's "
                 "`examples`")


def load(name: str, split: str, data_dir: str | None = None,
         examples: int | None = None) -> ArrayDataset:
    """Loads split `split` of data set `name` (a tfds name, or "digits").

    `examples`: None for the whole split, else a fixed random subset of at most that many
    (the whole split when it has fewer; a count below 1 is refused). A split without
    examples is refused, naming the data set, split and where it was read from.
    """
    if name not in LOADERS:
        raise ValueError(f"Unknown data set {name!r}; known: {sorted(LOADERS)}.")
    check_examples(examples, name, split)
    data = LOADERS[name](split, data_dir)
    return subset_examples(data, examples, split)


def check_examples(examples: int | None, name: str, split: str) -> None:
    """ValueError unless `examples` is None or a whole number ≥ 1."""
    if examples is None:
        return
    if isinstance(examples, bool) or not isinstance(examples, numbers.Integral) or examples < 1:
        raise ValueError(
            f"Asked for {examples!r} examples of split {split!r} of data set {name!r}: set "
            f"{EXAMPLES_KEYS} to a whole number of at least 1, or None for the whole split."
        )


def subset_examples(data: ArrayDataset, examples: int | None, split: str) -> ArrayDataset:
    """A fixed random subset of `examples` examples of `data` (all when None or ≥ its size)."""
    check_examples(examples, data.name, split)
    if examples is None:
        return data
    if examples >= len(data):
        if examples > len(data):
            log.info("Split %r of %s has %d examples, fewer than the %d asked for; using all.",
                     split, data.name, len(data), examples)
        return data
    keep = np.sort(np.random.default_rng(0).permutation(len(data))[:examples])
    return data.subset(keep)
