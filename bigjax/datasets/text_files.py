"""Text classification sets from the raw files of ../shared/data, or from tfds.

Each loader returns `ArrayDataset({"text": object [n] of str, "label": int32 [n]})`.
tfds names: `imdb_reviews` (train/test), `glue/sst2` (train/validation; the
offline copy's test split is labeled too), `ag_news_subset` (train/test; the
offline copy has only the 7,600-row test split, which is split 80/20,
stratified, with a fixed seed into `train` and `test`).
"""

from __future__ import annotations

import csv
import os
import tarfile

import numpy as np

from bigjax.datasets import local_files
from bigjax.datasets.array_dataset import ArrayDataset

AG_NEWS_CLASSES = ("World", "Sports", "Business", "Sci/Tech")
OFFLINE_AG_NEWS_TEST_FRACTION = 0.2
OFFLINE_SPLIT_SEED = 0


def _text_dataset(texts: list[str], labels, num_classes: int, name: str) -> ArrayDataset:
    return ArrayDataset({"text": np.asarray(texts, dtype=object),
                         "label": np.asarray(labels, np.int32)}, num_classes, name)


def load_imdb(split: str, data_dir: str | None) -> ArrayDataset:
    """IMDb movie reviews: 25k train / 25k test, label 1 = positive."""
    if split not in ("train", "test"):
        raise ValueError(f"imdb_reviews has splits 'train' and 'test', not {split!r}.")
    folder = local_files.local_folder("imdb", ["aclImdb_v1.tar.gz"], data_dir)
    if folder is None:
        return _from_tfds("imdb_reviews", split, "imdb/aclImdb_v1.tar.gz", ("text",), 2)
    texts, labels = [], []
    prefix = f"aclImdb/{split}/"
    with tarfile.open(os.path.join(folder, "aclImdb_v1.tar.gz"), "r:gz") as tar:
        for member in tar:
            name = member.name
            if not (member.isfile() and name.startswith(prefix) and name.endswith(".txt")):
                continue
            polarity = name[len(prefix):].split("/")[0]
            if polarity not in ("pos", "neg"):
                continue  # unsup/ reviews have no label
            text = tar.extractfile(member).read().decode("utf-8")
            texts.append(text.replace("<br />", " "))
            labels.append(1 if polarity == "pos" else 0)
    # The archive's member order is fixed, so the example order is too.
    return _text_dataset(texts, labels, 2, "imdb_reviews")


def load_sst2(split: str, data_dir: str | None) -> ArrayDataset:
    """SST-2 sentences: train 67,349, validation (dev) 872; label 1 = positive."""
    files = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
    if split not in files:
        raise ValueError(f"glue/sst2 has splits {sorted(files)}, not {split!r}.")
    folder = local_files.local_folder("sst2", [files[split]], data_dir)
    if folder is None:
        return _from_tfds("glue/sst2", split, f"sst2/{files[split]}", ("sentence",), 2)
    texts, labels = [], []
    with open(os.path.join(folder, files[split]), newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if len(header) != 2 or header[0] != "label":
            raise ValueError(f"{folder}/{files[split]}: expected a header label<TAB>sentence.")
        for row in reader:
            labels.append(int(row[0]))
            texts.append(row[1])
    return _text_dataset(texts, labels, 2, "glue/sst2")


def load_ag_news(split: str, data_dir: str | None) -> ArrayDataset:
    """AG News topics (4 classes, "title. description"); see the module docstring offline."""
    if split not in ("train", "test"):
        raise ValueError(f"ag_news_subset has splits 'train' and 'test', not {split!r}.")
    folder = local_files.local_folder("ag_news", ["test.csv"], data_dir)
    if folder is None:
        return _from_tfds("ag_news_subset", split, "ag_news/test.csv",
                          ("title", "description"), 4)
    texts, labels = [], []
    with open(os.path.join(folder, "test.csv"), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            texts.append(f"{row['title']}. {row['description']}".replace("\\", " "))
            labels.append(int(row["label"]) - 1)  # the CSV numbers classes 1..4
    from sklearn.model_selection import train_test_split

    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=OFFLINE_AG_NEWS_TEST_FRACTION,
        random_state=OFFLINE_SPLIT_SEED, stratify=labels)
    idx = np.sort(train_idx if split == "train" else test_idx)
    return _text_dataset([texts[i] for i in idx], np.asarray(labels)[idx], 4, "ag_news_subset")


def _from_tfds(name: str, split: str, offline_file: str, text_keys: tuple[str, ...],
               num_classes: int) -> ArrayDataset:
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, file_format="array_record")
    if not builder.is_prepared():
        local_files.require_network(name, offline_file)
        builder.download_and_prepare()
    source = builder.as_data_source(split=split)
    texts, labels = [], []
    for i in range(len(source)):
        example = source[i]
        parts = [_as_str(example[k]) for k in text_keys]
        texts.append(". ".join(parts))
        labels.append(int(example["label"]))
    return _text_dataset(texts, labels, num_classes, name)


def _as_str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
