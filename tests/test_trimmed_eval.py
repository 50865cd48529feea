"""Token-data eval, shortest first with each batch cut to its longest row: every example
once, no real token cut, and the same metrics as evaluating every batch at max_len."""

import jax
import ml_collections
import numpy as np
import pytest
from flax import linen as nn

from bigjax import input_pipeline, sharding
from bigjax.datasets.array_dataset import ArrayDataset
from bigjax.evaluators.base import EvalSettings
from bigjax.evaluators.task_metrics import TaskMetricsEvaluator
from bigjax.models.bert import BertForSequenceClassification
from bigjax.tasks.classification import Classification

MAX_LEN, VOCAB = 32, 50


def _settings(batch_size, trim_multiple):
    return EvalSettings(name="", type="metrics", split="test", every_steps=None,
                        batch_size=batch_size, trim_multiple=trim_multiple)


def _token_data(n: int, seed: int = 0) -> ArrayDataset:
    """`n` rows of [CLS] words [SEP] then 0-padding, lengths 3..MAX_LEN, shuffled."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((n, MAX_LEN), np.int32)
    for i, length in enumerate(rng.integers(3, MAX_LEN + 1, n)):
        ids[i, :length] = np.r_[2, rng.integers(5, VOCAB, length - 2), 3]
    labels = (ids[:, 1] % 2).astype(np.int32)
    return ArrayDataset({"input_ids": ids, "label": labels, "row": np.arange(n)}, 2, "toy")


@pytest.mark.parametrize("n", [1, 13, 40])
def test_each_example_once_and_no_real_token_cut(n):
    data = _token_data(n)
    seen, widths = [], []
    for batch in input_pipeline.eval_batches(data, 8, trim_multiple=8):
        width = batch["input_ids"].shape[1]
        widths.append(width)
        assert width % 8 == 0 and width <= MAX_LEN
        rows = batch["row"][batch["mask"]]
        np.testing.assert_array_equal(batch["input_ids"][batch["mask"]],
                                      data.features["input_ids"][rows, :width])
        assert not data.features["input_ids"][rows, width:].any()  # only padding was cut
        seen.extend(rows.tolist())
    assert sorted(seen) == list(range(n))
    assert widths == sorted(widths)  # shortest first
    if n == 40:
        assert widths[0] < MAX_LEN  # something was actually trimmed


def test_without_trim_multiple_the_order_and_width_are_unchanged():
    data = _token_data(20)
    batches = list(input_pipeline.eval_batches(data, 8))
    assert all(b["input_ids"].shape[1] == MAX_LEN for b in batches)
    np.testing.assert_array_equal(np.concatenate([b["row"] for b in batches])[:20],
                                  np.arange(20))


def test_trimmed_eval_gives_the_same_metrics():
    data = _token_data(70, seed=1)
    model = BertForSequenceClassification(num_classes=2, variant="tiny", vocab_size=VOCAB,
                                          hidden=32, heads=2, mlp_dim=64, max_len=MAX_LEN)
    params = nn.unbox(model.init(jax.random.key(0), data.features["input_ids"][:2],
                                 train=False)["params"])
    mesh = sharding.make_mesh(ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1)))

    def preprocess(batch, rng, train):
        return {**batch, "inputs": batch["input_ids"]}

    def evaluate(trim_multiple):
        return TaskMetricsEvaluator(_settings(16, trim_multiple), model, Classification(2),
                                    preprocess, data, mesh, sharding.DEFAULT_RULES
                                    ).run({"params": params})

    full, trimmed = evaluate(None), evaluate(8)
    assert full["num_examples"] == trimmed["num_examples"] == 70
    np.testing.assert_array_equal(full["confusion_matrix"], trimmed["confusion_matrix"])
    np.testing.assert_allclose(trimmed["loss"], full["loss"], rtol=1e-5)


def test_processes_get_equal_widths_and_together_the_global_batch():
    data = _token_data(37, seed=2)
    whole = list(input_pipeline.eval_batches(data, 8, slice(0, 8), trim_multiple=8))
    first = list(input_pipeline.eval_batches(data, 8, slice(0, 4), trim_multiple=8))
    second = list(input_pipeline.eval_batches(data, 8, slice(4, 8), trim_multiple=8))
    assert len(whole) == len(first) == len(second)
    for w, a, b in zip(whole, first, second, strict=True):
        assert a["input_ids"].shape == b["input_ids"].shape
        np.testing.assert_array_equal(np.concatenate([a["input_ids"], b["input_ids"]]),
                                      w["input_ids"])


@pytest.mark.parametrize("bad", [0, -8, 8.0])
def test_bad_trim_multiple_is_refused_when_the_evaluator_is_built(bad):
    mesh = sharding.make_mesh(ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1)))
    with pytest.raises(ValueError, match="eval_trim_multiple must be a positive integer"):
        TaskMetricsEvaluator(_settings(8, bad), None, None, None, _token_data(10), mesh, ())
