"""Language-model data: tokenizers, corpora, token files read as windows."""

from __future__ import annotations

import pickle

import ml_collections
import numpy as np
import pytest

from bigjax import config_keys
from bigjax.datasets import lm_data, text_corpora, token_stream
from bigjax.pp import lm_tokenizer

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


def test_char_tokenizer_round_trips_and_marks_unseen_characters():
    tok = lm_tokenizer.train_char([TEXT])
    assert tok.is_char and tok.vocab_size == len(set(TEXT)) + 2  # + <unk> + end of text
    ids = tok.encode(TEXT * 30)  # longer than one piece of the pre-tokenizer
    assert len(ids) == len(TEXT) * 30 and tok.decode(ids) == TEXT * 30
    assert tok.decode(tok.encode("Fi~")) == "Fi" + lm_tokenizer.UNK
    assert tok.decode([tok.eot_id]) == lm_tokenizer.EOT
    assert tok.token_bytes()[tok.eot_id] == 0 and tok.token_bytes()[tok.encode("F")[0]] == 1


def test_byte_level_bpe_round_trips_any_text_and_counts_its_bytes():
    tok = lm_tokenizer.train_bpe([TEXT * 20], vocab_size=300)
    assert not tok.is_char and tok.vocab_size <= 300
    for text in (TEXT, "naïve café — ünïcode ✓\n", "zzz unseen words"):
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert tok.token_bytes()[ids].sum() == len(text.encode("utf-8"))
    assert len(tok.encode(TEXT)) < len(TEXT) / 2  # merges learned from the text
    again = lm_tokenizer.LMTokenizer.from_json(tok.to_json())
    assert again.encode(TEXT).tolist() == tok.encode(TEXT).tolist()
    with pytest.raises(ValueError, match="at least 257"):
        lm_tokenizer.train_bpe([TEXT], vocab_size=100)


def _folder_config(path, **lm) -> ml_collections.ConfigDict:
    return config_keys.resolve(dict(
        data=dict(name="text_folder", path=str(path), eval_split="validation",
                  prepared_dir=str(path / "prepared"),
                  lm=dict(tokenizer="char", context=8, **lm)),
        pp=dict(kind="lm"), model=dict(name="gpt"), task="causal_lm", total_steps=1))


def _write_corpus(path) -> list[str]:
    docs = [f"doc {i}: " + "abcdefghij"[: 3 + i] * (i + 1) for i in range(6)]
    for i, doc in enumerate(docs[:4]):
        (path / "train" / "part").mkdir(parents=True, exist_ok=True)
        (path / "train" / "part" / f"{i:02d}.txt").write_text(doc)
    (path / "validation.txt").write_text(docs[4] + docs[5])
    return docs


def test_text_folder_is_tokenized_once_into_a_flat_stream_with_document_ends(tmp_path):
    docs = _write_corpus(tmp_path)
    config = _folder_config(tmp_path)
    tok = lm_data.make_tokenizer(config)
    train = lm_data.load_split(config, "train", tok)
    expected = np.concatenate([np.append(tok.encode(d), tok.eot_id) for d in docs[:4]])
    assert train.num_tokens == len(expected)
    # Disjoint training windows of context + 1 tokens (stride = context by default).
    windows = train.take(np.arange(len(train)))["input_ids"]
    assert windows.shape == (len(train), 9) and len(train) == (len(expected) - 9) // 8 + 1
    for i, window in enumerate(windows):
        np.testing.assert_array_equal(window, expected[8 * i: 8 * i + 9])
    every_offset = lm_data.load_split(_folder_config(tmp_path, train_stride=1), "train", tok)
    assert len(every_offset) == len(expected) - 8
    # A second load reads the prepared file; a change of the text prepares it again.
    folder = train.folder
    assert lm_data.load_split(config, "train", tok).folder == folder
    (tmp_path / "train" / "part" / "00.txt").write_text("changed text")
    assert lm_data.load_split(config, "train", tok).folder != folder
    # Workers get a copy that reopens the file.
    copy = pickle.loads(pickle.dumps(every_offset))
    np.testing.assert_array_equal(copy.take(np.arange(3))["input_ids"],
                                  every_offset.take(np.arange(3))["input_ids"])


@pytest.mark.parametrize("tokens", [9, 17, 20, 24, 25])
def test_eval_windows_count_every_token_but_the_first_exactly_once(tmp_path, tokens):
    folder = str(tmp_path)
    with open(token_stream.token_path(folder, "validation"), "wb") as f:
        f.write(np.arange(tokens, dtype=np.uint16).tobytes())
    with open(token_stream.info_path(folder, "validation"), "w") as f:
        f.write(f'{{"format": "{token_stream.FORMAT}", "tokens": {tokens}, "dtype": "uint16"}}')
    windows = token_stream.TokenWindows(folder, "validation", context=8, for_eval=True)
    batch = windows.take(np.arange(len(windows)))
    targets = batch["input_ids"][:, 1:]
    counted = targets[batch["weights"] > 0]
    assert sorted(counted.tolist()) == list(range(1, tokens))
    # Every window predicts each target from the tokens right before it.
    np.testing.assert_array_equal(targets, batch["input_ids"][:, :-1] + 1)
    subset = windows.subset(np.array([len(windows) - 1]))
    np.testing.assert_array_equal(subset.take(np.array([0]))["weights"], batch["weights"][-1:])


def test_the_tokenizer_is_reloaded_from_the_workdir(tmp_path):
    _write_corpus(tmp_path)
    config = _folder_config(tmp_path)
    trained = lm_data.make_tokenizer(config)
    workdir = tmp_path / "run"
    workdir.mkdir()
    lm_data.save_tokenizer(trained, str(workdir))
    # The corpus changes after the run started: the run keeps its own tokenizer.
    (tmp_path / "train" / "part" / "00.txt").write_text("XYZ new letters")
    assert lm_data.make_tokenizer(config).vocab_size != trained.vocab_size
    reloaded = lm_data.make_tokenizer(config, str(workdir))
    assert reloaded.to_json() == trained.to_json()
    lm_data.save_tokenizer(lm_data.make_tokenizer(config), str(workdir))  # never overwritten
    assert lm_data.make_tokenizer(config, str(workdir)).to_json() == trained.to_json()


def test_bad_corpora_are_refused_clearly(tmp_path):
    config = _folder_config(tmp_path)
    with pytest.raises(FileNotFoundError, match="No text for split 'train'"):
        lm_data.make_tokenizer(config)
    (tmp_path / "train.txt").write_text("tiny")
    tok = lm_data.make_tokenizer(config)
    with pytest.raises(ValueError, match="fewer than one window"):
        lm_data.load_split(config, "train", tok)
    with pytest.raises(ValueError, match="needs config.data.path"):
        text_corpora.load("text_folder", "train")
    with pytest.raises(ValueError, match="language-modelling corpus"):
        from bigjax import datasets

        datasets.load("tiny_shakespeare", "train")


def test_tiny_shakespeare_splits_as_tfds_does(real_data_dir):
    lengths = {s: len(next(text_corpora.load("tiny_shakespeare", s, real_data_dir)
                           .documents())) for s in ("train", "validation", "test")}
    assert lengths == {"train": 1003854, "validation": 55770, "test": 55770}
    both = text_corpora.load("tiny_shakespeare", "validation+test", real_data_dir)
    assert sum(len(d) for d in both.documents()) == 111540  # nanoGPT's validation text


def test_a_pretrained_tokenizer_folder_is_used_as_it_is(tmp_path):
    _write_corpus(tmp_path)
    pretrained = lm_tokenizer.train_bpe([TEXT * 5], vocab_size=280)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tokenizer.json").write_text(pretrained.to_json())
    config = _folder_config(tmp_path)
    config.data.lm.tokenizer = str(tmp_path / "model")
    tok = lm_data.make_tokenizer(config)
    assert tok.to_json() == pretrained.to_json() and tok.eot_id == pretrained.eot_id
    # A tokenizer whose end of text is another token, named by tokenizer_config.json.
    llama_like = lm_tokenizer.Tokenizer.from_str(pretrained.to_json())
    llama_like.add_special_tokens(["</s>"])
    other = tmp_path / "llama"
    other.mkdir()
    (other / "tokenizer.json").write_text(llama_like.to_str().replace("<|endoftext|>", "<s>"))
    (other / "tokenizer_config.json").write_text('{"eos_token": "</s>"}')
    loaded = lm_tokenizer.load_pretrained(str(other))
    assert loaded.decode([loaded.eot_id]) == "</s>"
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        lm_tokenizer.load_pretrained(str(tmp_path))


def test_a_workdir_keeps_the_end_of_text_token_of_its_tokenizer(tmp_path):
    """A tokenizer whose end of text is not <|endoftext|> (e.g. Llama's) is read back from
    the workdir with the same one."""
    base = lm_tokenizer.train_bpe([TEXT * 5], vocab_size=280)
    tok = lm_tokenizer.Tokenizer.from_str(base.to_json().replace("<|endoftext|>", "</s>"))
    llama_like = lm_tokenizer.LMTokenizer(tok, "</s>")
    workdir = tmp_path / "run"
    workdir.mkdir()
    lm_data.save_tokenizer(llama_like, str(workdir))
    _write_corpus(tmp_path)
    again = lm_data.make_tokenizer(_folder_config(tmp_path), str(workdir))
    assert again.eot == "</s>" and again.eot_id == llama_like.eot_id


def test_sentencepiece_tokens_count_the_space_they_stand_for():
    from tokenizers import Tokenizer, decoders, models

    vocab = {"<unk>": 0, "<|endoftext|>": 1, "\u2581the": 2, "\u2581": 3, "é": 4, "<0x0A>": 5}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.decoder = decoders.Metaspace()
    sizes = lm_tokenizer.LMTokenizer(tok).token_bytes()
    assert sizes.tolist() == [0, 0, 4, 1, 2, 1]


def test_a_damaged_info_file_is_prepared_again(tmp_path):
    _write_corpus(tmp_path)
    config = _folder_config(tmp_path)
    tok = lm_data.make_tokenizer(config)
    first = lm_data.load_split(config, "train", tok)
    with open(token_stream.info_path(first.folder, "train"), "w") as f:
        f.write('{"format": ')  # cut off, as by a kill while writing
    assert not token_stream.is_prepared(first.folder, "train")
    again = lm_data.load_split(config, "train", tok)
    assert again.num_tokens == first.num_tokens


def test_language_model_parts_must_go_together(tmp_path):
    from bigjax.experiment import build_model_parts

    _write_corpus(tmp_path)
    config = _folder_config(tmp_path)
    config.model = ml_collections.ConfigDict(dict(name="bert_mlm", variant="tiny"))
    config = config_keys.resolve(config)
    with pytest.raises(ValueError, match="lacks a causal model"):
        build_model_parts(config)
