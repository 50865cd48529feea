import numpy as np
import pytest

from bigjax import input_pipeline
from bigjax.datasets.array_dataset import ArrayDataset


def _data(n=50):
    return ArrayDataset({"image": np.arange(n, dtype=np.uint8)[:, None],
                         "label": np.arange(n, dtype=np.int32) % 3}, 3, "toy")


def test_order_is_deterministic_and_seed_dependent():
    a = input_pipeline.TrainBatches(_data(), 8, seed=1)
    b = input_pipeline.TrainBatches(_data(), 8, seed=1)
    c = input_pipeline.TrainBatches(_data(), 8, seed=2)
    for k in range(20):
        np.testing.assert_array_equal(a[k]["image"], b[k]["image"])
    assert any((a[k]["image"] != c[k]["image"]).any() for k in range(5))


def test_each_epoch_is_a_fresh_permutation():
    data = _data(48)
    batches = input_pipeline.TrainBatches(data, 8, seed=0)
    epochs = [np.concatenate([batches.global_indices(e * 6 + k) for k in range(6)])
              for e in range(3)]
    for order in epochs:
        np.testing.assert_array_equal(np.sort(order), np.arange(48))
    assert (epochs[0] != epochs[1]).any()


@pytest.mark.parametrize("n,batch", [(10, 4), (50, 8), (37, 5)])
def test_no_batch_repeats_an_example_and_epochs_cover_distinct_examples(n, batch):
    batches = input_pipeline.TrainBatches(_data(n), batch, seed=0)
    spe = batches.steps_per_epoch
    for epoch in range(4):
        seen = np.concatenate([batches.global_indices(epoch * spe + k) for k in range(spe)])
        assert len(set(seen.tolist())) == spe * batch  # nothing twice within an epoch


def test_resuming_mid_stream_replays_the_same_batches():
    batches = input_pipeline.TrainBatches(_data(), 8, seed=3)
    full = [b["image"] for b in batches.iterate(0, 15)]
    resumed = [b["image"] for b in batches.iterate(9, 15)]
    for x, y in zip(full[9:], resumed, strict=True):
        np.testing.assert_array_equal(x, y)


def test_chunks_stack_the_batches_of_one_call():
    batches = input_pipeline.TrainBatches(_data(), 8, seed=3)
    single = list(batches.iterate(3, 15))
    chunks = list(batches.iterate(3, 15, per_call=4))
    assert len(chunks) == 3 and chunks[0]["image"].shape == (4, 8, 1)
    for key in ("image", "label"):
        np.testing.assert_array_equal(np.concatenate([c[key] for c in chunks]),
                                      np.stack([b[key] for b in single]))


def test_processes_split_each_global_batch(monkeypatch):
    data = _data()
    whole = input_pipeline.TrainBatches(data, 8, seed=0)[4]["image"]
    parts = []
    for index in range(2):
        monkeypatch.setattr(input_pipeline.jax, "process_count", lambda: 2)
        monkeypatch.setattr(input_pipeline.jax, "process_index", lambda i=index: i)
        parts.append(input_pipeline.TrainBatches(data, 8, seed=0)[4]["image"])
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_position_mismatch_is_refused():
    batches = input_pipeline.TrainBatches(_data(), 8, seed=0)
    saved = batches.position(7).to_json()
    assert batches.check_position(saved) == 7
    with pytest.raises(ValueError, match="different data order"):
        input_pipeline.TrainBatches(_data(), 16, seed=0).check_position(saved)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 37])
def test_eval_batches_cover_each_example_once(n):
    data = _data(n)
    seen = []
    for batch in input_pipeline.eval_batches(data, 8):
        assert len(batch["mask"]) == 8
        seen.extend(batch["image"][batch["mask"], 0].tolist())
    assert sorted(seen) == list(range(n))


def test_batch_larger_than_data_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than the batch size"):
        input_pipeline.TrainBatches(_data(5), 8, seed=0)
