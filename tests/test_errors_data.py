"""Bad data inputs fail with one clear message: which folder or file, what is wrong, what
to do (a ValueError or FileNotFoundError, which `bigjax.main` prints as one `error:` line)."""

import gzip
import io
import os
import re
import shutil
import tarfile

import numpy as np
import pytest
from ml_collections import ConfigDict

from bigjax import datasets, user_cache
from bigjax.datasets import local_files, mnist, tokenized
from bigjax.datasets.array_dataset import ArrayDataset

from conftest import run_cli

DAMAGED = r" is damaged \(.*\): it looks truncated or corrupt\. Re-download it"


def _write_idx(path, array) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _synthetic_mnist(root) -> None:
    """`root/mnist/` with 6 train and 3 test images."""
    (root / "mnist").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for images, labels, n in [(*mnist.IDX_FILES["train"], 6), (*mnist.IDX_FILES["test"], 3)]:
        _write_idx(root / "mnist" / images, rng.integers(0, 256, (n, 28, 28)))
        _write_idx(root / "mnist" / labels, rng.integers(0, 10, (n,)))


def _damaged_path(path: str) -> str:
    return re.escape(path) + DAMAGED


# --- config.data.data_dir ------------------------------------------------------------------

def test_an_explicit_data_dir_without_the_sets_folder_names_it_and_never_falls_back(
        tmp_path, monkeypatch):
    env_dir = tmp_path / "env"
    _synthetic_mnist(env_dir)  # a complete copy the explicit folder must not fall back to
    monkeypatch.setenv(local_files.DATA_DIR_ENV, str(env_dir))
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        datasets.load("mnist", "train", str(explicit))
    message = str(err.value)
    assert f"config.data.data_dir={explicit} has no mnist/ folder" in message
    assert f"looked for {explicit / 'mnist'}" in message
    assert "mnist/train-images-idx3-ubyte.gz" in message and "mnist/t10k-labels" in message
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'nowhere'} does not ex")):
        datasets.load("glue/sst2", "validation", str(tmp_path / "nowhere"))
    # The data set's own folder given: the message says to give its parent.
    with pytest.raises(FileNotFoundError, match="set config.data.data_dir to its parent folder"):
        datasets.load("mnist", "test", str(env_dir / "mnist"))
    # Unset: $BIGJAX_DATA_DIR is used, and one without the set's folder means tfds (as documented).
    assert len(datasets.load("mnist", "train")) == 6
    monkeypatch.setenv(local_files.DATA_DIR_ENV, str(explicit))
    assert local_files.local_folder("mnist", mnist.ALL_FILES, None) is None


def test_cli_explicit_data_dir_without_the_sets_folder_is_one_error_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    proc = run_cli("main", "--config=configs/mnist_mlp.py:runlocal", f"--workdir={tmp_path}/w",
                   f"--config.data.data_dir={data}", check=False, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"{data} has no mnist/ folder" in errors[0], proc.stderr[-2000:]


# --- damaged files -------------------------------------------------------------------------

def _damage(blob: bytes, kind: str) -> bytes:
    if kind == "truncated":
        return blob[:len(blob) // 2]
    if kind == "corrupt":  # one byte flipped inside the compressed stream
        return blob[:1000] + bytes([blob[1000] ^ 0xFF]) + blob[1001:]
    if kind == "not_gzip":
        return b"<html>404 Not Found</html>\n"
    return b""  # empty


@pytest.mark.parametrize("kind", ["truncated", "corrupt", "not_gzip", "empty"])
def test_a_damaged_mnist_gz_is_named(real_data_dir, tmp_path, kind):
    source = os.path.join(real_data_dir, "mnist", "t10k-images-idx3-ubyte.gz")
    if not os.path.isfile(source):
        pytest.skip(f"{source} absent")
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in mnist.ALL_FILES:  # only the test split's files are read
        (folder / name).write_bytes(b"")
    shutil.copy(os.path.join(real_data_dir, "mnist", "t10k-labels-idx1-ubyte.gz"), folder)
    with open(source, "rb") as f:
        (folder / "t10k-images-idx3-ubyte.gz").write_bytes(_damage(f.read(), kind))
    with pytest.raises(ValueError, match=_damaged_path(str(folder / "t10k-images-idx3-ubyte.gz"))):
        datasets.load("mnist", "test", str(tmp_path))


def _imdb_tar(members: list[tuple[str, str]]) -> bytes:
    """An uncompressed tar of `aclImdb/<path>` text members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, text in members:
            info = tarfile.TarInfo(f"aclImdb/{path}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


REVIEWS = [("train/pos/1_9.txt", "Great film."), ("train/neg/2_1.txt", "Dull."),
           ("train/pos/3_8.txt", "Loved it " * 400)]


def test_a_truncated_imdb_archive_is_named(tmp_path):
    (tmp_path / "imdb").mkdir()
    path = tmp_path / "imdb" / "aclImdb_v1.tar.gz"
    blob = gzip.compress(_imdb_tar(REVIEWS))
    path.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(ValueError, match=_damaged_path(str(path))):
        datasets.load("imdb_reviews", "train", str(tmp_path))


def test_an_imdb_archive_with_a_garbled_header_is_refused_not_cut_short(tmp_path):
    raw = bytearray(_imdb_tar(REVIEWS))
    raw[1024:1034] = b"\xff" * 10  # the second member's header (the first's text fits 512 bytes)
    (tmp_path / "imdb").mkdir()
    path = tmp_path / "imdb" / "aclImdb_v1.tar.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match=_damaged_path(str(path))):
        datasets.load("imdb_reviews", "train", str(tmp_path))


AG_HEADER = "label,title,description\n"
AG_ROWS = "".join(f'{1 + i % 4},"Title {i}","Text, {i}"\n' for i in range(40))


@pytest.mark.parametrize("folder,name,split,content,detail", [
    ("sst2", "dev.tsv", "validation", "label\tsentence\n1\tgood\n0", "line 3 has 1 field"),
    ("sst2", "dev.tsv", "validation", "label\tsentence\npositive\tgood\n", "label 'positive'"),
    ("sst2", "dev.tsv", "validation", "", "no lines"),
    ("ag_news", "test.csv", "train", AG_HEADER + AG_ROWS[:-9], "unexpected end of data"),
    ("ag_news", "test.csv", "train", AG_HEADER + AG_ROWS + '1,"Title"\n', "has 2 field(s)"),
    ("ag_news", "test.csv", "train", b"\xff\xfe" + AG_ROWS.encode(), "UnicodeDecodeError"),
], ids=["sst2-short-row", "sst2-bad-label", "sst2-empty", "ag_news-cut-in-a-quote",
        "ag_news-short-row", "ag_news-not-utf8"])
def test_a_damaged_text_file_is_named(tmp_path, folder, name, split, content, detail):
    (tmp_path / folder).mkdir()
    path = tmp_path / folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    tfds_name = {"sst2": "glue/sst2", "ag_news": "ag_news_subset"}[folder]
    with pytest.raises(ValueError, match=_damaged_path(str(path))) as err:
        datasets.load(tfds_name, split, str(tmp_path))
    assert detail in str(err.value)


def test_a_damaged_tokenized_cache_is_rebuilt(minilm, tmp_path, monkeypatch):
    monkeypatch.setenv(user_cache.CACHE_ENV, str(tmp_path))
    config = ConfigDict(dict(vocab="minilm", max_len=8, lowercase=True))
    texts = np.asarray(["A fine film.", "Dull, dull!", "unbelievably good"], dtype=object)
    data = ArrayDataset({"text": texts, "label": np.array([1, 0, 1], np.int32)}, 2, "toy")
    first = tokenized.tokenize(data, config).features["input_ids"]
    (cached,) = (tmp_path / "tokenized").glob("*.npz")
    cached.write_bytes(cached.read_bytes()[:100])  # truncated
    again = tokenized.tokenize(data, config).features["input_ids"]
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(np.load(cached)["input_ids"], first)  # rewritten whole


# --- splits and example counts -------------------------------------------------------------

def test_an_empty_split_names_the_data_set_split_and_file(tmp_path):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "dev.tsv").write_text("label\tsentence\n")
    with pytest.raises(ValueError, match=re.escape(
            f"Split 'validation' of data set 'glue/sst2' has no examples (read from "
            f"{tmp_path / 'sst2' / 'dev.tsv'})")):
        datasets.load("glue/sst2", "validation", str(tmp_path))
    (tmp_path / "imdb").mkdir()
    (tmp_path / "imdb" / "aclImdb_v1.tar.gz").write_bytes(gzip.compress(_imdb_tar(REVIEWS)))
    with pytest.raises(ValueError, match="Split 'test' of data set 'imdb_reviews' has no exam"):
        datasets.load("imdb_reviews", "test", str(tmp_path))


@pytest.mark.parametrize("examples", [0, -5, 2.5, True])
def test_a_count_of_examples_below_one_is_refused(examples):
    with pytest.raises(ValueError, match=re.escape(
            f"Asked for {examples!r} examples of split 'train' of data set 'digits': set "
            "config.data.train_examples")):
        datasets.load("digits", "train", examples=examples)


def test_examples_take_a_fixed_subset_and_at_most_the_whole_split():
    whole = datasets.load("digits", "train")
    some = datasets.load("digits", "train", examples=100)
    keep = np.sort(np.random.default_rng(0).permutation(len(whole))[:100])
    np.testing.assert_array_equal(some.features["image"], whole.features["image"][keep])
    more = datasets.load("digits", "train", examples=10**6)
    assert len(more) == len(whole)


@pytest.mark.parametrize("name,known", [
    ("digits", "'train', 'test'"), ("mnist", "'train', 'test'"),
    ("imdb_reviews", "'train', 'test'"), ("glue/sst2", "'train', 'validation', 'test'"),
    ("ag_news_subset", "'train', 'test'")])
def test_an_unknown_split_lists_the_known_ones(tmp_path, name, known):
    with pytest.raises(ValueError, match=re.escape(
            f"Data set {name!r} has no split 'dev'; its splits are {known}. Set "
            "config.data.train_split / config.data.eval_split")):
        datasets.load(name, "dev", str(tmp_path))


def test_the_network_check_gives_up_when_the_name_lookup_hangs(monkeypatch):
    """`require_network` fails within its timeout even when resolving the download host
    never answers (a socket's timeout covers the connection only, not the lookup)."""
    import socket
    import threading
    import time

    released = threading.Event()

    def hanging_lookup(*args, **kwargs):
        released.wait(30)
        raise OSError("the lookup ended late")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_lookup)
    start = time.monotonic()
    try:
        with pytest.raises(FileNotFoundError, match=r"'mnist' is not prepared.*no answer from the "
                                                    r"name lookup of storage\.googleapis\.com "
                                                    r"within 0\.2 s"):
            local_files.require_network("mnist", "mnist/", timeout_s=0.2)
    finally:
        released.set()  # lets the abandoned attempt end
    assert time.monotonic() - start < 5
