"""Data sets by tfds name, or your own files. Loaders return an in-memory `ArrayDataset`;
with `on_disk` (and always for an image folder) a split is prepared once into ArrayRecord
files and read by index (`record_files.RecordDataset`, the same interface)."""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import os
from collections.abc import Callable

import numpy as np

from bigjax.datasets import (
    digits,
    image_folder,
    image_sets,
    local_files,
    mnist,
    record_files,
    text_corpora,
    text_file,
    text_files,
    translation,
)
from bigjax.datasets.array_dataset import ArrayDataset, Examples
from bigjax.datasets.tfds_source import TfdsDataset
from bigjax.user_cache import cache_dir

log = logging.getLogger("bigjax")
# `config.data.name` -> loader(split, data_dir); a new data set is one entry here.
LOADERS: dict[str, Callable[..., ArrayDataset]] = {
    "digits": lambda split, data_dir: digits.load(split),
    "mnist": mnist.load,
    "imdb_reviews": text_files.load_imdb,
    "glue/sst2": text_files.load_sst2,
    "ag_news_subset": text_files.load_ag_news,
}
# Your own files at `config.data.path`: name -> loader(split, path, prepared_dir).
OWN_DATA: dict[str, Callable[..., ArrayDataset | record_files.RecordDataset]] = {
    "image_folder": image_folder.load,
    "text_file": lambda split, path, prepared_dir: text_file.load(split, path),
    # A folder of splits already prepared as ArrayRecord files (`record_files.write`).
    "records": lambda split, path, prepared_dir: _records(split, path),
}
# Image classification sets by tfds name, read by index (an offline copy prepared into
# ArrayRecord files, else tfds's own): name -> loader(name, split, data_dir, prepared_dir,
# image_size).
IMAGE_SETS = image_sets.NAMES
# Language-modelling corpora (with `config.data.lm`; read by `lm_data`, not `load`).
CORPORA = text_corpora.NAMES
# Sentence pairs (with `config.data.translation`; read by `translation_data`).
PAIRS = translation.NAMES
NAMES = (*LOADERS, *OWN_DATA, *IMAGE_SETS, *CORPORA, *PAIRS)
# With `on_disk`: tfds names read by index from tfds's own ArrayRecord files
# (`tfds.data_source`) when no offline copy is configured: loader(split, data_dir) ->
# TfdsDataset, or None to prepare the offline files into bigjax's ArrayRecord files.
TFDS_SOURCES: dict[str, Callable[..., TfdsDataset | None]] = {"mnist": mnist.data_source}
EXAMPLES_KEYS = ("config.data.train_examples, config.data.eval_examples or an evaluator's "
                 "`examples`")


def load(name: str, split: str, data_dir: str | None = None, examples: int | None = None,
         *, path: str | None = None, on_disk: bool = False,
         prepared_dir: str | None = None, image_size: int | None = None
         ) -> ArrayDataset | record_files.RecordDataset | TfdsDataset:
    """Loads split `split` of data set `name` (a tfds name, "digits", or one of `OWN_DATA`
    read from `path`).

    `examples`: None for the whole split, else a fixed random subset of at most that many
    (the whole split when it has fewer; a count below 1 is refused). A split without
    examples is refused, naming the data set, split and where it was read from.
    `on_disk`: prepare the split once into ArrayRecord files under `prepared_dir`
    (default `$BIGJAX_CACHE_DIR/prepared`) and read it by index from there (image sets
    such as cifar10 always are). `image_size`: the side images of varied sizes are
    resized and centre-cropped to (`datasets/image_sets.py`).
    """
    if name not in NAMES:
        raise ValueError(f"Unknown data set {name!r}; known: {sorted(NAMES)}.")
    if name in CORPORA:
        raise ValueError(f"{name!r} is a language-modelling corpus: set config.data.lm "
                         "(its tokenizer and context) to read it.")
    if name in PAIRS:
        raise ValueError(f"{name!r} holds sentence pairs: set config.data.translation (its "
                         "languages and tokenizer) to read it.")
    check_examples(examples, name, split)
    prepared_dir = record_files.check_local(prepared_dir or os.path.join(cache_dir(), "prepared"),
                                            "config.data.prepared_dir")
    if name in OWN_DATA:
        data = OWN_DATA[name](split, path, prepared_dir)
    elif name in IMAGE_SETS:
        data = image_sets.load(name, split, data_dir, prepared_dir, image_size)
    elif on_disk:
        source = TFDS_SOURCES[name](split, data_dir) if name in TFDS_SOURCES else None
        data = source if source is not None else _prepared(name, split, data_dir, prepared_dir)
    else:
        data = LOADERS[name](split, data_dir)
    return subset_examples(data, examples, split)


def _records(split: str, path: str | None) -> record_files.RecordDataset:
    """Split `split` of the folder of prepared ArrayRecord files at `path`."""
    if not path:
        raise ValueError('config.data.name="records" needs config.data.path: the folder '
                         "holding <split>.array_record and <split>.json.")
    return record_files.RecordDataset(record_files.check_local(path, "config.data.path"), split)


def _prepared(name: str, split: str, data_dir: str | None,
              prepared_dir: str) -> record_files.RecordDataset:
    """Split `split` of `name` as ArrayRecord files, written on first use
    (`record_files.prepare_once`). Preparing reads the split into memory once, in one
    process; training then reads it by index. The folder is keyed by (name, split,
    data dir): delete it after changing the raw files."""
    source = {"name": name, "split": split, "data_dir": local_files.data_dir(data_dir)}
    key = hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:20]
    folder = os.path.join(prepared_dir, name.replace("/", "__"), key)

    def prepare() -> None:
        data = LOADERS[name](split, data_dir)
        if "text" in data.features:
            raise ValueError(f"config.data.on_disk prepares image data sets; {name!r} is text "
                             "(tokenized into the in-memory token cache): set "
                             "config.data.on_disk=False.")
        columns = data.features
        count = record_files.write(folder, split, ({k: v[i] for k, v in columns.items()}
                                                   for i in range(len(data))),
                                   data.name, data.num_classes)
        log.info("Prepared %d examples of %s (%s) as ArrayRecord files in %s.", count, name,
                 split, folder)

    record_files.prepare_once(folder, split, prepare)
    return record_files.RecordDataset(folder, split)


def check_examples(examples: int | None, name: str, split: str) -> None:
    """ValueError unless `examples` is None or a whole number ≥ 1."""
    if examples is None:
        return
    if isinstance(examples, bool) or not isinstance(examples, numbers.Integral) or examples < 1:
        raise ValueError(
            f"Asked for {examples!r} examples of split {split!r} of data set {name!r}: set "
            f"{EXAMPLES_KEYS} to a whole number of at least 1, or None for the whole split."
        )


def subset_examples(data: Examples, examples: int | None, split: str) -> Examples:
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
