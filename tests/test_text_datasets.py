"""Text classification sets from raw files (synthetic copies, and the real offline ones)."""

import io
import os
import tarfile

import numpy as np
import pytest

from bigjax import datasets


def _write_imdb(root):
    folder = root / "imdb"
    folder.mkdir()
    with tarfile.open(folder / "aclImdb_v1.tar.gz", "w:gz") as tar:
        for split, polarity, name, text in [
            ("train", "pos", "1_9.txt", "Great film.<br />Loved it"),
            ("train", "neg", "2_1.txt", "Dull."),
            ("test", "neg", "3_2.txt", "Bad"),
            ("train", "unsup", "4_0.txt", "no label"),
        ]:
            data = text.encode()
            info = tarfile.TarInfo(f"aclImdb/{split}/{polarity}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_imdb_from_the_archive(tmp_path):
    _write_imdb(tmp_path)
    train = datasets.load("imdb_reviews", "train", str(tmp_path))
    assert sorted(zip(train.features["text"], train.features["label"], strict=True)) == [
        ("Dull.", 0), ("Great film. Loved it", 1)]
    assert len(datasets.load("imdb_reviews", "test", str(tmp_path))) == 1


def test_imdb_is_read_once_then_from_its_parsed_copy_which_may_be_damaged(
        tmp_path, monkeypatch, caplog):
    from bigjax.datasets import imdb_archive

    monkeypatch.setenv("BIGJAX_CACHE_DIR", str(tmp_path / "cache"))
    _write_imdb(tmp_path)
    path = str(tmp_path / "imdb" / "aclImdb_v1.tar.gz")
    opened = []
    real_open = tarfile.open
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    imdb_archive._read_cached.cache_clear()
    expected = {"train": (["Great film. Loved it", "Dull."], [1, 0]), "test": (["Bad"], [0])}
    assert imdb_archive.read_splits(path) == expected and len(opened) == 1  # both splits
    assert len(datasets.load("imdb_reviews", "test", str(tmp_path))) == 1  # in-process copy
    imdb_archive._read_cached.cache_clear()  # as a new process: from the parsed copy
    assert imdb_archive.read_splits(path) == expected and len(opened) == 1
    (copy,) = (tmp_path / "cache" / "imdb").iterdir()
    copy.write_bytes(copy.read_bytes()[:100])  # damaged: read from the archive again
    imdb_archive._read_cached.cache_clear()
    assert imdb_archive.read_splits(path) == expected and len(opened) == 2
    assert "is damaged" in caplog.text
    with tarfile.open(path, "w:gz") as tar:  # a changed archive is read, not the old copy
        info = tarfile.TarInfo("aclImdb/test/pos/5_10.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"Fine"))
    os.utime(path, ns=(1, 1))
    imdb_archive._read_cached.cache_clear()
    assert imdb_archive.read_splits(path) == {"train": ([], []), "test": (["Fine"], [1])}
    imdb_archive._read_cached.cache_clear()


def test_sst2_and_ag_news_from_files(tmp_path):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "dev.tsv").write_text("label\tsentence\n1\ta fine film .\n0\tdull\n")
    dev = datasets.load("glue/sst2", "validation", str(tmp_path))
    assert dev.features["text"].tolist() == ["a fine film .", "dull"]
    assert dev.features["label"].tolist() == [1, 0]
    (tmp_path / "ag_news").mkdir()
    rows = "".join(f'{c},"Title {i}","Text {i}"\n' for i in range(40) for c in [1 + i % 4])
    (tmp_path / "ag_news" / "test.csv").write_text("label,title,description\n" + rows)
    train = datasets.load("ag_news_subset", "train", str(tmp_path))
    test = datasets.load("ag_news_subset", "test", str(tmp_path))
    assert len(train) == 32 and len(test) == 8
    assert np.bincount(test.features["label"]).tolist() == [2, 2, 2, 2]  # stratified, 0-based
    assert not set(train.features["text"]) & set(test.features["text"])
    assert train.features["text"][0].startswith("Title ")


def test_missing_text_file_fails_fast_naming_it(tmp_path):
    (tmp_path / "sst2").mkdir()
    with pytest.raises(FileNotFoundError, match="train.tsv is missing"):
        datasets.load("glue/sst2", "train", str(tmp_path))


def test_real_text_sets_offline(real_data_dir):
    for name in ("imdb", "sst2", "ag_news"):
        if not os.path.isdir(os.path.join(real_data_dir, name)):
            pytest.skip(f"{real_data_dir}/{name} absent")
    imdb = datasets.load("imdb_reviews", "test", real_data_dir)
    assert len(imdb) == 25000 and imdb.features["label"].mean() == 0.5
    assert "<br />" not in imdb.features["text"][0]
    assert len(datasets.load("glue/sst2", "train", real_data_dir)) == 67349
    assert len(datasets.load("glue/sst2", "validation", real_data_dir)) == 872
    ag_train = datasets.load("ag_news_subset", "train", real_data_dir)
    ag_test = datasets.load("ag_news_subset", "test", real_data_dir)
    assert (len(ag_train), len(ag_test)) == (6080, 1520)
    assert np.bincount(ag_test.features["label"]).tolist() == [380] * 4
