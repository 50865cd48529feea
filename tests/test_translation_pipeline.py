"""Translation's pieces around the model, in-process: length-bucketed batches, trimmed
eval batches, the label-smoothed loss, the inverse square root schedule, the BLEU
evaluator and the config."""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import sacrebleu

from bigjax import input_pipeline, optim
from bigjax.datasets.array_dataset import ArrayDataset
from bigjax.evaluators.base import EvalSettings
from bigjax.evaluators.translations import TranslationsEvaluator
from bigjax.input_pipeline import TrainBatches
from bigjax.length_buckets import token_lengths
from bigjax.models.transformer import Transformer
from bigjax.sharding import make_mesh
from bigjax.tasks.translation import Translation

from conftest import REPO

BOUNDARIES = (8, 16, 24, 32)


def _pairs(n: int = 1000, seed: int = 0) -> ArrayDataset:
    """Token rows of random lengths (source 2-30 tokens in 32 columns, target 3-40 in 40,
    loosely tied to the source's) and their texts."""
    rng = np.random.default_rng(seed)
    source, target = np.zeros((n, 32), np.int32), np.zeros((n, 40), np.int32)
    for i in range(n):
        s = int(rng.integers(2, 31))
        t = int(np.clip(s + rng.integers(-3, 8), 3, 40))
        source[i, :s], target[i, :t] = rng.integers(3, 99, s), rng.integers(3, 99, t)
    texts = np.array([f"sentence {i}" for i in range(n)], dtype=object)
    return ArrayDataset({"source_ids": source, "target_ids": target, "source_text": texts,
                         "target_text": texts}, None, "pairs")


def _padding(batches) -> float:
    """The fraction of the token columns' cells that are padding."""
    cells = real = 0
    for batch in batches:
        for column in ("source_ids", "target_ids"):
            cells += batch[column].size
            real += int((batch[column] != 0).sum())
    return 1 - real / cells


def test_length_buckets_keep_every_example_once_and_cut_batches_to_few_widths():
    data = _pairs()
    batches = TrainBatches(data, 32, seed=3, length_buckets=BOUNDARIES)
    plain = TrainBatches(data, 32, seed=3)
    epoch = [batches[k] for k in range(batches.steps_per_epoch)]
    # Each example at most once per epoch, and all but the n % batch left-overs.
    seen = np.concatenate([batches.global_indices(k) for k in range(batches.steps_per_epoch)])
    assert len(seen) == len(set(seen.tolist())) == 1000 // 32 * 32
    widths = set()
    for k, batch in enumerate(epoch):
        assert "source_text" not in batch  # raw text stays on the host
        rows = batches.global_indices(k)
        for column in ("source_ids", "target_ids"):
            width = batch[column].shape[1]
            longest = token_lengths(data.features[column][rows]).max()
            assert width >= longest and (width in BOUNDARIES or width == 40)
            assert width == min(b for b in (*BOUNDARIES, 40) if b >= longest)
            widths.add((column, width))
        cut = batch["source_ids"].shape[1]  # cutting drops only padding
        np.testing.assert_array_equal(batch["source_ids"],
                                      data.features["source_ids"][rows][:, :cut])
    assert len(widths) <= 2 * (len(BOUNDARIES) + 1)
    # The point: far less padding than full-width batches of the plain order.
    bucketed = _padding(epoch)
    full = _padding(plain[k] for k in range(plain.steps_per_epoch))
    assert bucketed < 0.5 * full, (bucketed, full)
    # Deterministic and random-access: a fresh pipeline (a resumed run) gives batch k again;
    # the next epoch is another order.
    again = TrainBatches(data, 32, seed=3, length_buckets=BOUNDARIES)
    for k in (0, 7, 30, 31):
        for column in ("source_ids", "target_ids"):
            np.testing.assert_array_equal(again[k][column], batches[k][column])
    assert not np.array_equal(batches.global_indices(31), batches.global_indices(0))
    # Seeds differ.
    other = TrainBatches(data, 32, seed=4, length_buckets=BOUNDARIES)
    assert not np.array_equal(other.global_indices(0), batches.global_indices(0))


def test_each_process_cuts_its_rows_to_the_global_batch_width():
    data = _pairs()
    halves = [TrainBatches(data, 32, seed=3, rows=rows, length_buckets=BOUNDARIES)
              for rows in (slice(0, 16), slice(16, 32))]
    whole = TrainBatches(data, 32, seed=3, length_buckets=BOUNDARIES)
    for k in range(10):
        parts = [h[k] for h in halves]
        for column in ("source_ids", "target_ids"):
            assert parts[0][column].shape == parts[1][column].shape  # one program everywhere
            np.testing.assert_array_equal(np.concatenate([p[column] for p in parts]),
                                          whole[k][column])


def test_chunks_of_several_steps_share_one_width():
    batches = TrainBatches(_pairs(), 32, seed=3, length_buckets=BOUNDARIES)
    chunk = batches.chunk(4, 3)
    widest = max(batches[k]["source_ids"].shape[1] for k in (4, 5, 6))
    assert chunk["source_ids"].shape == (3, 32, widest)
    for j in range(3):
        got = chunk["source_ids"][j][:, :batches[4 + j]["source_ids"].shape[1]]
        np.testing.assert_array_equal(got, batches[4 + j]["source_ids"])


def test_length_buckets_refuse_data_without_token_columns_and_bad_widths():
    images = ArrayDataset({"image": np.zeros((64, 4, 4, 1), np.uint8),
                           "label": np.zeros(64, np.int32)}, 2, "images")
    with pytest.raises(ValueError, match="needs token columns"):
        TrainBatches(images, 16, seed=0, length_buckets=(8,))
    with pytest.raises(ValueError, match="increasing"):
        TrainBatches(_pairs(), 16, seed=0, length_buckets=(16, 8))


def test_trimmed_eval_batches_cut_source_and_target_columns_shortest_first():
    data = _pairs(100)
    batches = list(input_pipeline.eval_batches(data, 16, trim_multiple=8, with_index=True))
    seen = np.concatenate([b["index"][b["mask"]] for b in batches])
    assert sorted(seen.tolist()) == list(range(100))  # every example once
    source_lengths = token_lengths(data.features["source_ids"])
    assert (np.diff(source_lengths[seen]) >= 0).all()  # shortest source first
    for b in batches:
        assert "source_text" not in b
        for column in ("source_ids", "target_ids"):
            longest = token_lengths(data.features[column][b["index"][b["mask"]]]).max()
            assert b[column].shape[1] == -(-longest // 8) * 8
            np.testing.assert_array_equal(
                b[column], data.features[column][b["index"]][:, :b[column].shape[1]])


def test_label_smoothing_spreads_over_the_real_vocabulary_only():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(2, 5, 11)), jnp.float32)
    targets = jnp.asarray(rng.integers(0, 11, (2, 5)), jnp.int32)
    weights = jnp.asarray(rng.integers(0, 2, (2, 5)), jnp.float32).at[0, 0].set(1.0)
    batch = {"targets": targets, "weights": weights}
    loss, metrics = Translation(11, 0.1).loss(logits, batch)
    smoothed = optax.smooth_labels(jax.nn.one_hot(targets, 11), 0.1)
    expected = (optax.softmax_cross_entropy(logits, smoothed) * weights).sum() / weights.sum()
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    np.testing.assert_allclose(metrics["nll"], (nll * weights).sum() / weights.sum(), rtol=1e-6)
    # A vocabulary padded with never-chosen columns: the same loss (no mass on padding).
    padded = jnp.concatenate([logits, jnp.full((2, 5, 5), -1e9)], axis=-1)
    np.testing.assert_allclose(Translation(11, 0.1).loss(padded, batch)[0], loss, rtol=1e-6)
    # Without smoothing the loss is the plain cross-entropy; eval reports it unsmoothed.
    np.testing.assert_allclose(Translation(11, 0.0).loss(logits, batch)[0], metrics["nll"],
                               rtol=1e-6)
    sums = Translation(11, 0.1).eval_sums(logits, {**batch, "mask": jnp.array([True, False])})
    assert float(sums["count"]) == float(weights[0].sum())
    with pytest.raises(ValueError, match="label_smoothing"):
        Translation(11, 1.0)


def test_config_label_smoothing_reaches_the_task():
    from bigjax import tasks

    class Tokenizer:
        vocab_size = 11

    config = ml_collections.ConfigDict(dict(task="translation", label_smoothing=0.2))
    task = tasks.get(config, Tokenizer())
    assert (task.label_smoothing, task.vocab_size) == (0.2, 11)


def test_inverse_square_root_schedule():
    config = ml_collections.ConfigDict(dict(learning_rate=1e-3, schedule="warmup_rsqrt",
                                            warmup_steps=100))
    schedule = optim.make_schedule(config, 1000)
    np.testing.assert_allclose([schedule(s) for s in (0, 50, 100, 400, 900)],
                               [0.0, 5e-4, 1e-3, 5e-4, 1e-3 / 3], rtol=1e-6)
    config.warmup_steps = 0
    with pytest.raises(ValueError, match="warmup_steps"):
        optim.make_schedule(config, 1000)


class _Tokenizer:
    bos_id, eos_id = 1, 2


def _evaluator(tmp_path, references: list[str]) -> TranslationsEvaluator:
    n = len(references)
    texts = np.array(references, dtype=object)
    data = ArrayDataset({"source_ids": np.ones((n, 6), np.int32),
                         "target_ids": np.ones((n, 8), np.int32),
                         "source_text": texts, "target_text": texts}, None, "refs")
    settings = EvalSettings(name="test", type="translations", split="test", every_steps=None,
                            batch_size=4, workdir=str(tmp_path), options={"num_samples": 2})
    model = Transformer(vocab_size=20, hidden=16, heads=2, mlp_dim=32, encoder_layers=1,
                        decoder_layers=1, max_len=16)
    return TranslationsEvaluator(settings, model, None, None, data, make_mesh({}), (),
                                 tokenizer=_Tokenizer())


REFERENCES = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.",
              "Eine Frau liest ein Buch auf einer Bank.", "Kinder laufen über eine Wiese."]


def test_bleu_of_the_references_is_100_and_equals_sacrebleu(tmp_path, monkeypatch):
    evaluator = _evaluator(tmp_path, REFERENCES)
    monkeypatch.setattr(evaluator, "translate",
                        lambda params: (np.zeros(4, np.float32), list(REFERENCES)))
    result = evaluator.run({"params": None}, step=7)
    assert result["bleu"] == pytest.approx(100.0)
    assert result["num_sentences"] == 4 and len(result["samples"]) == 2
    hypotheses = ["Ein Mann fährt ein Rad.", "Zwei Hunde spielen.",
                  "Eine Frau liest ein Buch.", "Kinder rennen über eine grüne Wiese."]
    monkeypatch.setattr(evaluator, "translate",
                        lambda params: (np.zeros(4, np.float32), list(hypotheses)))
    result = evaluator.run({"params": None}, step=8)
    assert result["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(hypotheses, [REFERENCES]).score, abs=1e-9)
    assert 0 < result["bleu"] < 100
    assert result["bleu_signature"][0].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    written = (tmp_path / "translations" / "test_step_8.txt").read_text().splitlines()
    assert written == hypotheses
    assert (tmp_path / "translations" / "test_step_8_samples.txt").read_text().startswith(
        f"BLEU {result['bleu']:.2f}")


def test_translations_evaluator_needs_an_encoder_decoder(tmp_path):
    settings = EvalSettings(name="t", type="translations", split="test", every_steps=None,
                            batch_size=4)
    with pytest.raises(ValueError, match="needs an encoder-decoder"):
        TranslationsEvaluator(settings, object(), None, None, _pairs(8), make_mesh({}), (),
                              tokenizer=None)


def test_predict_asks_for_sentences_before_loading_anything():
    import argparse

    from bigjax import predict

    config = ml_collections.ConfigDict(dict(data=dict(translation=dict(max_source_len=8))))
    args = argparse.Namespace(prompts=[], input_file=None, beam_size=4, alpha=0.6, step=None)
    with pytest.raises(ValueError, match="Give sentences to translate"):
        predict.predict(config, "/nonexistent/workdir", args)
    with pytest.raises(ValueError, match="--beam_size must be >= 1"):
        predict.predict(config, "/nonexistent/workdir",
                        argparse.Namespace(**{**vars(args), "prompts": ["x"], "beam_size": 0}))


def test_config_variants():
    sys.path.insert(0, os.path.join(REPO, "configs"))
    try:
        import multi30k_transformer
    finally:
        sys.path.pop(0)
    en_de = multi30k_transformer.get_config()
    de_en = multi30k_transformer.get_config("de_en")
    assert (en_de.data.translation.source, en_de.data.translation.target) == ("en", "de")
    assert (de_en.data.translation.source, de_en.data.translation.target) == ("de", "en")
    with pytest.raises(ValueError, match="Unknown config variant"):
        multi30k_transformer.get_config("fr_en")
