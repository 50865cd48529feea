"""Translation data: Multi30k / tfds WMT sentence pairs, the joint byte-level BPE
tokenizer, and token rows with <s> / </s> / padding."""

from __future__ import annotations

import gzip
import itertools
import logging
import os
import socket

import ml_collections
import numpy as np
import pytest

from bigjax.datasets import translation, translation_data
from bigjax.length_buckets import token_lengths
from bigjax.pp import subword_tokenizer
from bigjax.pp.subword_tokenizer import SubwordTokenizer

from conftest import data_dir

# A tiny Multi30k: the first lines of the real files, a German line with umlauts and
# punctuation, a French line starting with a space (as 27 real train.fr lines do), and one
# long sentence to cut.
LONG_EN = " ".join(f"word{i}" for i in range(40)) + "."
LONG_DE = " ".join(f"Wort{i}" for i in range(40)) + "."
FAKE = {
    "en": ["Two young, White males are outside near many bushes.",
           "A man in an orange hat starring at something.",
           "A little girl climbing into a wooden playhouse.", LONG_EN],
    "de": ["Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
           "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.",
           "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.", LONG_DE],
    "fr": [" Un homme vêtu en noir joue une guitare électrique lors d'un concert.",
           "Un homme avec un chapeau orange regardant quelque chose.",
           "Une petite fille grimpe dans une maisonnette en bois.", "Phrase longue."],
}


def _write_gz(path, lines: list[str], newline_at_end: bool = True) -> None:
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    with gzip.open(path, "wb") as f:
        f.write(text.encode("utf-8"))


@pytest.fixture
def fake_dir(tmp_path, monkeypatch) -> str:
    """`tmp/multi30k/{train,val,test_2016_flickr}.{en,de,fr}.gz` of `FAKE`, as
    $BIGJAX_DATA_DIR."""
    folder = tmp_path / "data" / "multi30k"
    folder.mkdir(parents=True)
    for split in ("train", "val", "test_2016_flickr"):
        for language, lines in FAKE.items():
            _write_gz(folder / f"{split}.{language}.gz", lines)
    monkeypatch.setenv("BIGJAX_DATA_DIR", str(folder.parent))
    return str(folder.parent)


@pytest.fixture(scope="module")
def real_dir() -> str:
    """The offline data folder holding multi30k/; skips (with the reason) without one."""
    found = data_dir()
    if found is None or not os.path.isdir(os.path.join(found, "multi30k")):
        pytest.skip("Multi30k absent: set BIGJAX_DATA_DIR to a copy of shared/data (with "
                    "multi30k/)")
    return found


@pytest.fixture(scope="module")
def real_train(real_dir):
    return translation.load_pairs("multi30k", "train", "en", "de", real_dir)


@pytest.fixture(scope="module")
def real_tokenizer(real_train) -> SubwordTokenizer:
    """Byte-level BPE of 8,000 tokens on Multi30k train, English and German (~1 s)."""
    return subword_tokenizer.train_bpe(
        itertools.chain(real_train.features["source_text"],
                        real_train.features["target_text"]), 8000)


def _config(**translation_keys) -> ml_collections.ConfigDict:
    settings = dict(source="en", target="de", vocab_size=300, max_source_len=16,
                    max_target_len=16, tokenizer="bpe")
    settings.update(translation_keys)
    return ml_collections.ConfigDict({"data": {
        "name": "multi30k", "data_dir": None, "train_split": "train",
        "translation": settings}})


# --------------------------------------------------------------------- real Multi30k

def test_real_multi30k_splits_have_their_sizes_and_are_aligned(real_dir):
    sizes = {"train": 29000, "validation": 1014, "test": 1000}
    for split, size in sizes.items():
        pairs = translation.load_pairs("multi30k", split, "en", "de", real_dir)
        assert len(pairs) == size and pairs.name == "multi30k"
        assert pairs.features["source_text"].dtype == object
    train = translation.load_pairs("multi30k", "train", "de", "fr", real_dir)
    assert train.features["source_text"][0] == FAKE["de"][0]  # the German line is the source
    assert train.features["target_text"][0] == (
        "Deux jeunes hommes blancs sont dehors près de buissons.")
    test = translation.load_pairs("multi30k", "test", "en", "de", real_dir)
    assert (test.features["source_text"][0], test.features["target_text"][0]) == (
        FAKE["en"][1], FAKE["de"][1])
    # Only the newline is stripped: 27 French training lines start with a space.
    fr = translation.load_pairs("multi30k", "train", "fr", "en", real_dir).features
    assert sum(t.startswith(" ") for t in fr["source_text"]) == 27
    assert not any("\n" in t for t in fr["source_text"])


def test_real_tokenizer_round_trips_every_validation_sentence(real_dir, real_tokenizer):
    tok = real_tokenizer
    assert tok.vocab_size == 8000
    val = translation.load_pairs("multi30k", "validation", "en", "de", real_dir)
    for column in ("source_text", "target_text"):
        texts = list(val.features[column])
        assert tok.decode_batch(tok.encode_batch(texts)) == texts  # all 1,014, exactly
    german = val.features["target_text"][0]
    assert "ä" in german and tok.decode(tok.encode(german)) == german
    # Through the token rows too (<s>, </s>, padding), for every row that was not cut.
    rows = translation_data.tokenize_pairs(val, tok, 64, 64).features
    assert tok.decode_batch(rows["source_ids"]) == list(val.features["source_text"])
    assert tok.decode_batch(rows["target_ids"]) == list(val.features["target_text"])
    # Sentences of the other direction and of French round-trip too (leading spaces kept).
    fr = translation.load_pairs("multi30k", "train", "fr", "en", real_dir).features
    texts = list(fr["source_text"])
    assert tok.decode_batch(tok.encode_batch(texts)) == texts


def test_real_train_split_token_lengths(real_train, real_tokenizer):
    rows = translation_data.tokenize_pairs(real_train, real_tokenizer, 64, 64).features
    en = token_lengths(rows["source_ids"]) - 1  # without </s>
    de = token_lengths(rows["target_ids"]) - 2  # without <s> and </s>
    assert 10 < en.mean() < 20 and 10 < de.mean() < 20
    assert en.max() <= 62 and de.max() <= 62  # 64 tokens cut no sentence of train


# --------------------------------------------------------------------- tokenizer

def test_tokenizer_has_fixed_special_ids_and_adds_none_when_encoding():
    tok = subword_tokenizer.train_bpe(FAKE["en"] + FAKE["de"], 300)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert 260 <= tok.vocab_size <= 300
    ids = tok.encode(FAKE["de"][0])
    assert ids.dtype == np.int32 and ids.min() >= 4  # no special token added
    for text in ["", " starts with a space", "two  spaces\tand a tab ", "Größe: 3€ — ok?!",
                 "a literal </s> and <s> and <pad>", "日本語のテキスト"]:
        assert tok.decode(tok.encode(text)) == text
    assert [len(i) for i in tok.encode_batch(["", "ab"])][0] == 0


def test_decode_stops_at_the_first_end_token_and_skips_special_ids():
    tok = subword_tokenizer.train_bpe(FAKE["en"], 300)
    a, b = tok.encode("A man"), tok.encode("in")  # each encoded with its " "
    row = [tok.bos_id, *a, tok.unk_id, tok.pad_id, *b, tok.eos_id, *a, tok.pad_id]
    assert tok.decode(row) == "A man in"
    assert tok.decode([*a, tok.vocab_size + 5]) == "A man"  # a padded vocabulary's rows
    assert tok.decode([tok.eos_id, *a]) == ""
    batch = np.zeros((2, 8), np.int32)
    batch[0, :len(a) + 2] = [tok.bos_id, *a, tok.eos_id]
    assert tok.decode_batch(batch) == ["A man", ""]


def test_too_small_vocabularies_are_refused():
    with pytest.raises(ValueError, match=r"vocab_size=259.*at least 260 tokens"):
        subword_tokenizer.train_bpe(FAKE["en"], 259)


def test_tokenizer_saves_and_loads_the_same(tmp_path):
    tok = subword_tokenizer.train_bpe(FAKE["en"] + FAKE["de"], 300)
    tok.save(str(tmp_path / "new" / "folder"))
    again = SubwordTokenizer.load(str(tmp_path / "new" / "folder"))
    assert again.to_json() == tok.to_json() and again.vocab_size == tok.vocab_size
    for text in FAKE["de"]:
        assert again.encode(text).tolist() == tok.encode(text).tolist()
    assert again.decode(tok.encode("</s>")) == "</s>"  # text, also after loading
    with pytest.raises(FileNotFoundError, match=r"tokenizer.json does not exist.*'bpe'"):
        SubwordTokenizer.load(str(tmp_path))


def test_tokenizers_with_other_special_ids_are_refused(tmp_path):
    from bigjax.pp import lm_tokenizer

    other = lm_tokenizer.train_bpe(FAKE["en"], 300).to_json()  # <|endoftext|> = 0
    with pytest.raises(ValueError, match=r"<pad>=absent.*needs <pad>=0, <s>=1, </s>=2"):
        SubwordTokenizer.from_json(other)
    (tmp_path / "tokenizer.json").write_text(other)
    with pytest.raises(ValueError, match=r"tokenizer.json: The tokenizer's special tokens"):
        SubwordTokenizer.load(str(tmp_path))


# --------------------------------------------------------------------- token rows

def test_pad_rows_keeps_begin_and_end_tokens_when_cutting():
    rows, cut = translation_data.pad_rows([np.array([5]), np.array([5, 6, 7])], 4, [1], [2])
    assert rows.tolist() == [[1, 5, 2, 0], [1, 5, 6, 2]] and cut == 1
    rows, cut = translation_data.pad_rows([np.array([], np.int32), np.arange(4, 9)], 3, [], [2])
    assert rows.tolist() == [[2, 0, 0], [4, 5, 2]] and cut == 1 and rows.dtype == np.int32


def test_lengths_counts_the_tokens_before_the_padding():
    ids = np.array([[1, 5, 2, 0, 0], [2, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 4, 4, 4, 2]])
    assert token_lengths(ids).tolist() == [3, 1, 0, 5]
    assert token_lengths(ids).dtype == np.int32


def test_token_rows_end_with_eos_also_when_cut(fake_dir, caplog):
    pairs = translation.load_pairs("multi30k", "train", "en", "de")
    tok = subword_tokenizer.train_bpe(itertools.chain(FAKE["en"], FAKE["de"]), 300)
    with caplog.at_level(logging.INFO, logger="bigjax"):
        rows = translation_data.tokenize_pairs(pairs, tok, 48, 48).features
    # This tiny vocabulary spends 43, 30, 38, 97 tokens on the English sentences and
    # 52, 42, 42, 97 on the German: rows of 48 hold 47 source / 46 target tokens.
    assert "cut 1 of 4 source sentences to max_source_len=48" in caplog.text
    assert "2 target sentences to max_target_len=48" in caplog.text
    source, target = rows["source_ids"], rows["target_ids"]
    assert source.shape == (4, 48) and target.shape == (4, 48)
    assert source.dtype == target.dtype == np.int32
    assert list(rows["source_text"]) == FAKE["en"] and list(rows["target_text"]) == FAKE["de"]
    src_len, tgt_len = token_lengths(source), token_lengths(target)
    for i in range(4):
        assert source[i, src_len[i] - 1] == tok.eos_id and (source[i, src_len[i]:] == 0).all()
        assert target[i, 0] == tok.bos_id and target[i, tgt_len[i] - 1] == tok.eos_id
        assert (target[i, tgt_len[i]:] == 0).all()
        assert tok.eos_id not in source[i, :src_len[i] - 1]
    # Cut rows are full and still end with </s> (and the target starts with <s>).
    assert src_len.tolist() == [44, 31, 39, 48] and tgt_len.tolist() == [48, 44, 44, 48]
    assert source[3, -1] == target[0, -1] == target[3, -1] == tok.eos_id
    assert tok.decode(source[3]) == tok.decode(tok.encode(LONG_EN)[:47])
    assert tok.decode(target[0]) == tok.decode(tok.encode(FAKE["de"][0])[:46])
    # Uncut rows hold the whole sentence.
    assert tok.decode(source[2]) == FAKE["en"][2] and tok.decode(target[1]) == FAKE["de"][1]
    with pytest.raises(ValueError, match="max_target_len=2"):
        translation_data.tokenize_pairs(pairs, tok, 12, 2)


def test_make_tokenizer_trains_saves_and_keeps_the_workdirs_own(fake_dir, tmp_path, caplog):
    config = _config()
    with caplog.at_level(logging.INFO, logger="bigjax"):
        tok = translation_data.make_tokenizer(config)
    assert "Trained a byte-level BPE tokenizer" in caplog.text and "en and de" in caplog.text
    # Trained on both languages: German words are single tokens (joint vocabulary).
    assert len(tok.encode(" Männer")) < len(" Männer".encode())
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    translation_data.save_tokenizer(tok, workdir)
    other = subword_tokenizer.train_bpe(FAKE["fr"], 280)
    translation_data.save_tokenizer(other, workdir)  # the workdir keeps its own
    resumed = translation_data.make_tokenizer(_config(vocab_size=500), workdir)
    assert resumed.to_json() == tok.to_json()
    from_folder = translation_data.make_tokenizer(_config(tokenizer=workdir))
    assert from_folder.to_json() == tok.to_json()
    split = translation_data.load_split(config, "validation", tok)
    assert split.features["source_ids"].shape == (4, 16)
    assert split.features["target_ids"].shape == (4, 16)


def test_processes_must_train_the_same_tokenizer(fake_dir, monkeypatch):
    import jax
    from jax.experimental import multihost_utils

    checked = []
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(multihost_utils, "assert_equal",
                        lambda value, message: checked.append((value, message)))
    translation_data.make_tokenizer(_config())
    (digest, message), = checked
    assert digest.dtype == np.int32 and digest.shape == (2,) and "different tokenizers" in message


# --------------------------------------------------------------------- bad inputs

def test_unknown_splits_languages_and_names_are_refused(fake_dir):
    with pytest.raises(ValueError, match=r"no split 'dev'.*'train', 'validation', 'test'"):
        translation.load_pairs("multi30k", "dev", "en", "de")
    with pytest.raises(ValueError, match=r"no language 'cs' \(the target\).*'en', 'de', 'fr'"):
        translation.load_pairs("multi30k", "train", "en", "cs")
    with pytest.raises(ValueError, match=r"both 'en'"):
        translation.load_pairs("multi30k", "train", "en", "en")
    with pytest.raises(ValueError, match=r"'iwslt' is not a translation data set"):
        translation.load_pairs("iwslt", "train", "en", "de")


def test_missing_multi30k_files_name_the_file_and_the_data_dir(fake_dir, tmp_path,
                                                               monkeypatch):
    os.remove(os.path.join(fake_dir, "multi30k", "val.de.gz"))
    with pytest.raises(FileNotFoundError, match=r"val.de.gz is missing.*BIGJAX_DATA_DIR="):
        translation.load_pairs("multi30k", "validation", "en", "de")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no multi30k/ folder.*no tfds builder"):
        translation.load_pairs("multi30k", "train", "en", "de", str(empty))
    monkeypatch.setenv("BIGJAX_DATA_DIR", str(empty))
    with pytest.raises(FileNotFoundError, match=r"\$BIGJAX_DATA_DIR=.*multi30k/train.en.gz"):
        translation.load_pairs("multi30k", "train", "en", "de")
    monkeypatch.delenv("BIGJAX_DATA_DIR")
    with pytest.raises(FileNotFoundError, match=r"Neither config.data.data_dir nor "
                                                r"\$BIGJAX_DATA_DIR is set"):
        translation.load_pairs("multi30k", "train", "en", "de")


def test_mismatched_damaged_and_empty_files_are_refused(fake_dir):
    folder = os.path.join(fake_dir, "multi30k")
    _write_gz(os.path.join(folder, "train.de.gz"), FAKE["de"][:3])
    with pytest.raises(ValueError, match=r"train.en.gz has 4 lines and .*train.de.gz 3"):
        translation.load_pairs("multi30k", "train", "en", "de")
    # A file without a newline at its end keeps its last line.
    _write_gz(os.path.join(folder, "train.de.gz"), FAKE["de"], newline_at_end=False)
    last = translation.load_pairs("multi30k", "train", "en", "de").features["target_text"][-1]
    assert last == LONG_DE
    path = os.path.join(folder, "val.en.gz")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"val.en.gz is damaged \(EOFError"):
        translation.load_pairs("multi30k", "validation", "en", "de")
    with gzip.open(os.path.join(folder, "val.de.gz"), "wb") as f:
        f.write(b"\xff\xfe not utf-8\n")
    with pytest.raises(ValueError, match=r"val.de.gz is damaged \(UnicodeDecodeError"):
        translation.load_pairs("multi30k", "validation", "de", "fr")
    for language in ("en", "fr"):
        _write_gz(os.path.join(folder, f"test_2016_flickr.{language}.gz"), [],
                  newline_at_end=False)
    with pytest.raises(ValueError, match=r"Split 'test' of data set 'multi30k' has no "
                                         "examples"):
        translation.load_pairs("multi30k", "test", "fr", "en")


# --------------------------------------------------------------------- tfds WMT

def test_translation_names():
    for name in ("multi30k", "wmt14_translate/de-en", "wmt19_translate/zh-en"):
        assert translation.is_translation_name(name)
    for name in ("mnist", "wmt14_translate", "wmt14_translate/de-en/extra", "imdb_reviews"):
        assert not translation.is_translation_name(name)
    assert "multi30k" in translation.NAMES


def test_wmt_pairs_are_read_through_tfds_data_source(monkeypatch):
    """tfds's mock data (no download, no TensorFlow) stands in for WMT14 de-en."""
    pytest.importorskip("tensorflow_datasets")
    from bigjax.datasets import local_files, tfds_builders

    tfds = tfds_builders.import_tfds()  # with the wmt*_translate builders registered
    monkeypatch.setattr(local_files, "require_network", lambda *args: None)
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        examples = tfds.data_source("wmt14_translate/de-en", split="validation")
        pairs = translation.load_pairs("wmt14_translate/de-en", "validation", "en", "de")
        assert len(pairs) == 6 and pairs.name == "wmt14_translate/de-en"
        assert list(pairs.features["source_text"]) == [examples[i]["en"] for i in range(6)]
        assert list(pairs.features["target_text"]) == [examples[i]["de"] for i in range(6)]
        reverse = translation.load_pairs("wmt14_translate/de-en", "train", "de", "en")
        assert isinstance(reverse.features["source_text"][0], str)
    with pytest.raises(ValueError, match=r"no language 'fr' \(the source\).*'de', 'en'"):
        translation.load_pairs("wmt14_translate/de-en", "train", "fr", "en")
    with pytest.raises(ValueError, match=r"no split 'val'"):
        translation.load_pairs("wmt14_translate/de-en", "val", "de", "en")
    with pytest.raises(ValueError, match=r"no language pair 'de-fr'; its pairs are cs-en"):
        translation.load_pairs("wmt14_translate/de-fr", "train", "de", "fr")
    with pytest.raises(ValueError, match=r"tfds has no data set 'wmt99_translate'"):
        translation.load_pairs("wmt99_translate/de-en", "train", "de", "en")
    assert translation.as_str(b"Gr\xc3\xb6\xc3\x9fe") == "Größe"


def test_unprepared_wmt_fails_fast_without_a_network(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def no_network(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: False)
    with pytest.raises(FileNotFoundError, match=r"'wmt14_translate/de-en' is not prepared "
                                                r".*no network.*Network is unreachable"):
        translation.load_pairs("wmt14_translate/de-en", "train", "de", "en")
