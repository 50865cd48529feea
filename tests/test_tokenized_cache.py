import numpy as np
import pytest
from ml_collections import ConfigDict

from bigjax.datasets import tokenized
from bigjax.datasets.array_dataset import ArrayDataset


def _data():
    texts = np.asarray(["A fine film.", "Dull, dull, dull!", "unbelievably good"], dtype=object)
    return ArrayDataset({"text": texts, "label": np.array([1, 0, 1], np.int32)}, 2, "toy")


def test_tokenize_then_load_from_cache(minilm, tmp_path, monkeypatch):
    monkeypatch.setenv("BIGJAX_CACHE_DIR", str(tmp_path))
    config = ConfigDict(dict(vocab="minilm", max_len=8, lowercase=True))
    first = tokenized.tokenize(_data(), config)
    ids = first.features["input_ids"]
    assert ids.shape == (3, 8) and ids.dtype == np.int32
    assert first.features["label"].tolist() == [1, 0, 1] and "text" not in first.features
    tokenizer = tokenized.make_tokenizer(config)
    assert tokenizer.decode(ids[0]) == "a fine film."

    def no_tokenizing(_):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(tokenized, "make_tokenizer", no_tokenizing)
    again = tokenized.tokenize(_data(), config)
    np.testing.assert_array_equal(again.features["input_ids"], ids)
    with pytest.raises(AssertionError, match="cache"):  # another max_len is another entry
        tokenized.tokenize(_data(), ConfigDict(dict(vocab="minilm", max_len=16)))
    with pytest.raises(AssertionError, match="cache"):  # so is another truncation
        tokenized.tokenize(_data(), ConfigDict(dict(vocab="minilm", max_len=8, head_tokens=2)))


def test_unknown_vocab_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="Vocab file"):
        tokenized.vocab_file(str(tmp_path / "nowhere"))
