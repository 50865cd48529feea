"""Your own data: an image folder and CSV/JSONL texts, prepared offline and trained on."""

import csv
import json
import os
import tarfile

import numpy as np
import pytest

from bigjax import datasets
from bigjax.datasets import image_folder, record_files, text_file

from conftest import last_json_line, run_cli

CLASSES = ("circle", "square", "stripe")  # sorted: labels 0, 1, 2


def _pattern(label: int, rng: np.random.Generator) -> np.ndarray:
    """An 8x8 RGB image whose bright row (2, 4 or 6) and colour tell its class."""
    image = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8)
    image[2 + 2 * label, :, label] = 255
    return image


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """`train/` (20 per class) and `test/` (6 per class) PNGs of three classes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, count in (("train", 20), ("test", 6)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(_pattern(label, rng)).save(folder / f"{i:03d}.png")
    return root


def test_image_folder_prepares_records_with_the_same_pixels(image_dir, tmp_path):
    from PIL import Image

    data = datasets.load("image_folder", "train", path=str(image_dir),
                         prepared_dir=str(tmp_path))
    assert isinstance(data, record_files.RecordDataset)
    assert len(data) == 60 and data.num_classes == 3 and data.class_names == list(CLASSES)
    batch = data.take(np.array([0, 25, 59]))
    assert batch["image"].shape == (3, 8, 8, 3) and batch["image"].dtype == np.uint8
    np.testing.assert_array_equal(batch["label"], [0, 1, 2])
    np.testing.assert_array_equal(
        batch["image"][1], np.asarray(Image.open(image_dir / "train" / "square" / "005.png")))
    # A tar of the same folder gives the same examples.
    archive = tmp_path / "images.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(image_dir, arcname=".")
    from_tar = datasets.load("image_folder", "train", path=str(archive),
                             prepared_dir=str(tmp_path / "from_tar"))
    np.testing.assert_array_equal(from_tar.take(np.arange(60))["image"],
                                  data.take(np.arange(60))["image"])


def test_a_tar_is_listed_once_until_it_changes(image_dir, tmp_path, monkeypatch):
    archive, prepared = tmp_path / "images.tar", str(tmp_path / "prepared")
    with tarfile.open(archive, "w") as tar:
        tar.add(image_dir, arcname=".")
    listed = []
    real_listing = image_folder._listing
    monkeypatch.setattr(image_folder, "_listing", lambda p: listed.append(p) or real_listing(p))
    train = image_folder.load("train", str(archive), prepared)
    assert len(listed) == 1  # one listing gives the summary and the preparation
    test = image_folder.load("test", str(archive), prepared)  # prepares: listed once more
    again = image_folder.load("train", str(archive), prepared)  # prepared: not listed
    assert len(listed) == 2 and (len(train), len(test), len(again)) == (60, 18, 60)
    with pytest.raises(ValueError, match="splits are 'test', 'train'"):
        image_folder.load("validation", str(archive), prepared)  # checked on the summary
    assert len(listed) == 2
    # A changed tar (a new class of 20 train images) is listed again and prepared anew.
    with tarfile.open(archive, "a") as tar:
        tar.add(image_dir / "train" / "circle", arcname="./train/zigzag")
    grown = image_folder.load("train", str(archive), prepared)
    assert len(listed) == 3 and len(grown) == 80 and grown.num_classes == 4


def test_image_folder_errors_say_what_to_do(image_dir, tmp_path):
    with pytest.raises(ValueError, match="needs config.data.path"):
        image_folder.load("train", None, str(tmp_path))
    with pytest.raises(ValueError, match="splits are 'test', 'train'"):
        image_folder.load("validation", str(image_dir), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="neither a folder nor a .tar"):
        image_folder.load("train", str(tmp_path / "absent"), str(tmp_path))
    from PIL import Image

    odd = tmp_path / "odd"
    for i, size in enumerate((8, 8, 9)):
        (odd / "train" / "a").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (size, size)).save(odd / "train" / "a" / f"{i}.png")
    with pytest.raises(ValueError, match=r"2.png is \(9, 9, 3\).*0.png is \(8, 8, 3\)"):
        image_folder.load("train", str(odd), str(tmp_path / "prepared"))
    assert not list((tmp_path / "prepared").glob("*/*/train.*"))  # nothing half-prepared


@pytest.mark.slow
def test_image_folder_trains_end_to_end(image_dir, tmp_path):
    proc = run_cli("main", "--config=configs/image_folder_cnn.py:runlocal",
                   f"--workdir={tmp_path / 'run'}", f"--config.data.path={image_dir}",
                   f"--config.data.prepared_dir={tmp_path / 'prepared'}",
                   "--config.data.input_shape=(8,8,3)", "--config.model.num_classes=3",
                   "--config.total_steps=40", "--config.optim.learning_rate=3e-3")
    final = last_json_line(proc.stdout)
    assert final["num_examples"] == 18
    assert final["accuracy"] > 0.6  # chance is 1/3: the classes were learned from the files
    assert {p.name for p in (tmp_path / "prepared" / "image_folder").glob("*/*.json")} == \
        {"train.json", "test.json"}


def _write_texts(folder, split, rows, fmt):
    folder.mkdir(exist_ok=True)
    if fmt == "csv":
        with open(folder / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    else:
        with open(folder / f"{split}.jsonl", "w") as f:
            for text, label in rows:
                f.write(json.dumps({"text": text, "label": label}) + "\n")


def _reviews(n, seed):
    rng = np.random.default_rng(seed)
    good, bad = ["great", "lovely", "superb", "fine"], ["awful", "boring", "poor", "bad"]
    rows = []
    for i in range(n):
        label = ["neg", "pos"][i % 2]
        words = rng.choice(good if label == "pos" else bad, 3)
        rows.append((f"a {' '.join(words)} film, truly {words[0]}", label))
    return rows


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_file_reads_texts_and_labels(tmp_path, fmt):
    _write_texts(tmp_path, "train", [("one", "b"), ("two, with a comma", "a")], fmt)
    _write_texts(tmp_path, "test", [("three", "c")], fmt)
    train = datasets.load("text_file", "train", path=str(tmp_path))
    assert list(train.features["text"]) == ["one", "two, with a comma"]
    np.testing.assert_array_equal(train.features["label"], [1, 0])  # sorted over all splits
    test = datasets.load("text_file", "test", path=str(tmp_path))
    assert test.num_classes == 3 and list(test.features["label"]) == [2]


def test_text_file_numeric_labels_and_errors(tmp_path):
    _write_texts(tmp_path, "train", [("x", "2"), ("y", "0")], "csv")
    data = text_file.load("train", str(tmp_path))
    assert data.num_classes == 3 and list(data.features["label"]) == [2, 0]
    with open(tmp_path / "bad.csv", "w") as f:
        f.write("sentence,target\nhello,1\n")
    with pytest.raises(ValueError, match="columns text and label"):
        text_file.load("bad", str(tmp_path))
    with pytest.raises(ValueError, match="no validation.csv or validation.jsonl"):
        text_file.load("validation", str(tmp_path))


@pytest.mark.slow
def test_text_csv_trains_end_to_end(tmp_path):
    folder = tmp_path / "reviews"
    _write_texts(folder, "train", _reviews(96, 0), "csv")
    _write_texts(folder, "test", _reviews(32, 1), "csv")
    proc = run_cli("main", "--config=configs/text_file_bert.py:tiny,runlocal",
                   f"--workdir={tmp_path / 'run'}", f"--config.data.path={folder}")
    final = last_json_line(proc.stdout)
    assert final["num_examples"] == 32 and 0.0 <= final["accuracy"] <= 1.0
    # The texts of the files were what got tokenized and trained on.
    assert "Tokenized 96 texts of text_file" in proc.stderr
    assert os.path.exists(tmp_path / "run" / "checkpoints")
