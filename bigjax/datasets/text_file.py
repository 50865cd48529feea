"""Your own texts: one CSV or JSONL file per split, each row a text and its label.

    PATH/train.csv      text,label          config.data.name = "text_file"
    PATH/test.csv       "Great film",pos    config.data.path = PATH
    (or PATH/train.jsonl: {"text": "Great film", "label": "pos"} per line)

The folder may be local or in a bucket (`gs://...`). Every `*.csv` / `*.jsonl` in it is
a split. Labels may be class names or whole numbers. Class names get the indices of their
sorted order over every split file in PATH (the same label in every split); whole
numbers are used as they are (classes 0..max). The texts are then tokenized like any
text data set (config.data.tokenizer) into the tokenized-data cache.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
from etils import epath

from bigjax import run_files
from bigjax.datasets import local_files
from bigjax.datasets.array_dataset import ArrayDataset

NAME = "text_file"
SUFFIXES = (".csv", ".jsonl")
COLUMNS = ("text", "label")


def _split_files(path: str) -> dict[str, str]:
    """`{split: file}` of the CSV/JSONL files in folder `path` (local or a bucket)."""
    folder = epath.Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"config.data.path={path} is not a folder: point it at a folder holding one "
            "<split>.csv or <split>.jsonl file per split.")
    files = {}
    for file in sorted(p.name for p in folder.iterdir()):
        stem, suffix = os.path.splitext(file)
        if suffix in SUFFIXES and not stem.startswith("."):
            if stem in files:
                raise ValueError(f"{path} holds both {os.path.basename(files[stem])} and "
                                 f"{file}: keep one file per split.")
            files[stem] = run_files.join(path, file)
    return files


def _read_rows(file: str) -> tuple[list[str], list[str]]:
    """Texts and raw labels of one CSV (header text,label) or JSONL file."""
    texts, labels = [], []
    # utf-8-sig: spreadsheet programs start their CSVs with a byte-order mark.
    with local_files.reading(file), local_files.open_text(file, "utf-8-sig") as f:
        if file.endswith(".csv"):
            reader = csv.DictReader(f, strict=True)
            if not set(COLUMNS) <= set(reader.fieldnames or ()):
                raise ValueError(f"{file} has the columns {reader.fieldnames}; it needs a "
                                 "header line with the columns text and label.")
            for row in reader:
                if row["text"] is None or row["label"] is None:
                    raise ValueError(f"{file} line {reader.line_num} has fewer fields than "
                                     "its header.")
                texts.append(row["text"])
                labels.append(row["label"].strip())
        else:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    texts.append(str(row["text"]))
                    labels.append(str(row["label"]).strip())
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"{file} line {number} is not a JSON object with "
                                     '"text" and "label".') from None
    return texts, labels


def _label_ids(raw: list[str], all_labels: list[str]) -> tuple[np.ndarray, int, list[str]]:
    """Labels as ints, the number of classes and the class names."""
    if all(label.lstrip("-").isdigit() for label in all_labels):
        values = [int(label) for label in all_labels]
        if min(values) < 0:
            raise ValueError(f"Label {min(values)} is negative: numeric labels are classes "
                             "0, 1, 2, ...")
        count = max(values) + 1
        return np.asarray([int(x) for x in raw], np.int32), count, [str(i) for i in range(count)]
    names = sorted(set(all_labels))
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([index[x] for x in raw], np.int32), len(names), names


def load(split: str, path: str | None) -> ArrayDataset:
    """`text: object [n]` and `label: int32 [n]` of `path/<split>.csv|jsonl`."""
    if not path:
        raise ValueError('config.data.name="text_file" needs config.data.path: a folder '
                         "holding <split>.csv or <split>.jsonl files.")
    path = run_files.resolve(path)
    files = _split_files(path)
    if split not in files:
        raise ValueError(f"{path} has no {split}.csv or {split}.jsonl; its splits are "
                         f"{', '.join(map(repr, files)) or 'none'}. Set "
                         "config.data.train_split / eval_split to one of them.")
    rows = {s: _read_rows(f) for s, f in files.items()}
    texts, raw = rows[split]
    local_files.require_examples(len(texts), NAME, split, files[split])
    labels, num_classes, _ = _label_ids(raw, [x for _, r in rows.values() for x in r])
    return ArrayDataset({"text": np.asarray(texts, dtype=object), "label": labels},
                        num_classes, NAME)
