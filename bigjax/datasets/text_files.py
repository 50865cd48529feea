"""Text classification sets from the raw files of ../shared/data, or from tfds.

Each loader returns `ArrayDataset({"text": object [n] of str, "label": int32 [n]})`.
tfds names: `imdb_reviews` (train/test), `glue/sst2` (train/validation; the
offline copy's test split is labeled too), `ag_news_subset` (train/test; the
offline copy has only the 7,600-row test split, which is split 80/20,
stratified, with a fixed seed into `train` and `test`).
"""

from __future__ import annotations

import csv

import numpy as np

from bigjax.datasets import imdb_archive, local_files, tfds_builders
from bigjax.datasets.array_dataset import ArrayDataset

AG_NEWS_CLASSES = ("World", "Sports", "Business", "Sci/Tech")
OFFLINE_AG_NEWS_TEST_FRACTION = 0.2
OFFLINE_SPLIT_SEED = 0
IMDB_SPLITS = ("train", "test")
SST2_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
AG_NEWS_SPLITS = ("train", "test")
AG_NEWS_COLUMNS = ("label", "title", "description")


def _text_dataset(texts: list[str], labels, num_classes: int, name: str) -> ArrayDataset:
    return ArrayDataset({"text": np.asarray(texts, dtype=object),
                         "label": np.asarray(labels, np.int32)}, num_classes, name)


def load_imdb(split: str, data_dir: str | None) -> ArrayDataset:
    """IMDb movie reviews: 25k train / 25k test, label 1 = positive."""
    local_files.check_split("imdb_reviews", split, IMDB_SPLITS)
    folder = local_files.local_folder("imdb", ["aclImdb_v1.tar.gz"], data_dir)
    if folder is None:
        return _from_tfds("imdb_reviews", split, "imdb/aclImdb_v1.tar.gz", ("text",), 2)
    path = f"{folder}/aclImdb_v1.tar.gz"
    with local_files.reading(path):
        texts, labels = imdb_archive.read_splits(path)[split]
    local_files.require_examples(len(labels), "imdb_reviews", split, path)
    return _text_dataset(texts, labels, 2, "imdb_reviews")


def load_sst2(split: str, data_dir: str | None) -> ArrayDataset:
    """SST-2 sentences: train 67,349, validation (dev) 872; label 1 = positive."""
    local_files.check_split("glue/sst2", split, list(SST2_FILES))
    folder = local_files.local_folder("sst2", [SST2_FILES[split]], data_dir)
    if folder is None:
        return _from_tfds("glue/sst2", split, f"sst2/{SST2_FILES[split]}", ("sentence",), 2)
    path = f"{folder}/{SST2_FILES[split]}"
    with local_files.reading(path):
        texts, labels = _read_sst2(path)
    local_files.require_examples(len(labels), "glue/sst2", split, path)
    return _text_dataset(texts, labels, 2, "glue/sst2")


def _read_sst2(path: str) -> tuple[list[str], list[int]]:
    """The rows of an SST-2 file: a header `label<TAB>sentence`, then one row per line."""
    texts, labels = [], []
    with local_files.open_text(path) as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or len(header) != 2 or header[0] != "label":
            found = "no lines" if header is None else f"first line {header!r}"
            raise ValueError(local_files.damaged_message(
                path, f"{found}, expected the header label<TAB>sentence"))
        for row in reader:
            if len(row) != 2:
                raise ValueError(local_files.damaged_message(
                    path, f"line {reader.line_num} has {len(row)} field(s), expected "
                          "label<TAB>sentence"))
            labels.append(_label(path, reader.line_num, row[0]))
            texts.append(row[1])
    return texts, labels


def load_ag_news(split: str, data_dir: str | None) -> ArrayDataset:
    """AG News topics (4 classes, "title. description"); see the module docstring offline."""
    local_files.check_split("ag_news_subset", split, AG_NEWS_SPLITS)
    folder = local_files.local_folder("ag_news", ["test.csv"], data_dir)
    if folder is None:
        return _from_tfds("ag_news_subset", split, "ag_news/test.csv",
                          ("title", "description"), 4)
    path = f"{folder}/test.csv"
    with local_files.reading(path):
        texts, labels = _read_ag_news(path)
    local_files.require_examples(len(labels), "ag_news_subset", split, path)
    from sklearn.model_selection import train_test_split

    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=OFFLINE_AG_NEWS_TEST_FRACTION,
        random_state=OFFLINE_SPLIT_SEED, stratify=labels)
    idx = np.sort(train_idx if split == "train" else test_idx)
    return _text_dataset([texts[i] for i in idx], np.asarray(labels)[idx], 4, "ag_news_subset")


def _read_ag_news(path: str) -> tuple[list[str], list[int]]:
    """Texts "title. description" and 0-based labels of an AG News CSV (classes 1..4)."""
    texts, labels = [], []
    with local_files.open_text(path) as f:
        reader = csv.DictReader(f, strict=True)  # strict: a cut-off quoted field raises
        if not set(AG_NEWS_COLUMNS) <= set(reader.fieldnames or ()):
            raise ValueError(local_files.damaged_message(
                path, f"header {reader.fieldnames!r}, expected {','.join(AG_NEWS_COLUMNS)}"))
        for row in reader:
            if None in row or None in row.values():
                found = sum(row[c] is not None for c in reader.fieldnames) + len(row.get(None, ()))
                raise ValueError(local_files.damaged_message(
                    path, f"line {reader.line_num} has {found} field(s) where the header has "
                          f"{len(reader.fieldnames)}"))
            texts.append(f"{row['title']}. {row['description']}".replace("\\", " "))
            labels.append(_label(path, reader.line_num, row["label"]) - 1)
    return texts, labels


def _label(path: str, line: int, value: str) -> int:
    """`value` as an int; a ValueError naming the file and line when it is not one."""
    try:
        return int(value)
    except ValueError:
        raise ValueError(local_files.damaged_message(
            path, f"line {line}: label {value!r} is not a whole number")) from None


def _from_tfds(name: str, split: str, offline_file: str, text_keys: tuple[str, ...],
               num_classes: int) -> ArrayDataset:
    source = tfds_builders.prepared_split(name, split, offline_file)[1]
    texts, labels = [], []
    for i in range(len(source)):
        example = source[i]
        parts = [_as_str(example[k]) for k in text_keys]
        texts.append(". ".join(parts))
        labels.append(int(example["label"]))
    return _text_dataset(texts, labels, num_classes, name)


def _as_str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
