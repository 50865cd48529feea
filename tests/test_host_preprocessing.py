"""Host-side preprocessing (random-resized crop) and grain worker processes: the batches
are a pure function of (seed, batch index), whatever the number of workers."""

import os

import numpy as np
import pytest

from bigjax import datasets
from bigjax.input_pipeline import TrainBatches
from bigjax.pp import host_crop
from bigjax.pp.host_crop import HostCrop


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", "train")


class CropAndNameTheProcess(HostCrop):
    """The crop, plus the id of the process that ran it (a `pid` column)."""

    def __call__(self, batch, rngs):
        out = super().__call__(batch, rngs)
        return {**out, "pid": np.full(len(rngs), os.getpid())}


def _batches(data, workers, per_call=1, start=3, stop=15, seed=0):
    batches = TrainBatches(data, 64, seed, host_transform=CropAndNameTheProcess((0.3, 1.0)))
    return list(batches.iterate(start, stop, per_call=per_call, workers=workers))


@pytest.mark.slow
def test_zero_one_and_two_workers_give_identical_cropped_batches(digits):
    reference = _batches(digits, workers=0)
    assert {int(b["pid"][0]) for b in reference} == {os.getpid()}  # a thread of this process
    for workers in (1, 2):
        got = _batches(digits, workers=workers)
        assert len(got) == len(reference) == 12
        pids = {int(b["pid"][0]) for b in got}
        assert len(pids) == workers and os.getpid() not in pids  # really other processes
        for a, b in zip(reference, got, strict=True):
            assert a.keys() == b.keys()
            for key in a:
                if key != "pid":
                    np.testing.assert_array_equal(a[key], b[key])
    # Chunks of several steps per call hold the same batches.
    chunks = _batches(digits, workers=2, per_call=4)
    assert len({int(c["pid"][0, 0]) for c in chunks}) == 2
    assert chunks[0]["image"].shape == (4, 64, 8, 8, 1)
    np.testing.assert_array_equal(np.concatenate([c["image"] for c in chunks]),
                                  np.stack([b["image"] for b in reference]))


def test_crops_take_effect_and_replay_on_resume(digits):
    plain = TrainBatches(digits, 64, 0)
    cropped = TrainBatches(digits, 64, 0, host_transform=HostCrop((0.3, 1.0)))
    assert not np.array_equal(plain[5]["image"], cropped[5]["image"])  # the crop changes pixels
    np.testing.assert_array_equal(plain[5]["label"], cropped[5]["label"])
    # Resuming at batch 5 (a fresh object, as in a new process) gives the same pixels.
    again = TrainBatches(digits, 64, 0, host_transform=HostCrop((0.3, 1.0)))
    np.testing.assert_array_equal(again[5]["image"], cropped[5]["image"])
    other_seed = TrainBatches(digits, 64, 1, host_transform=HostCrop((0.3, 1.0)))
    assert not np.array_equal(other_seed[5]["image"], cropped[5]["image"])


def test_each_example_is_cropped_by_its_own_generator():
    """Example i of a batch depends only on (seed, batch, global row i): the same pixels
    when another process computes it (a different slice of the batch's rows)."""
    data = datasets.load("digits", "train")
    whole = TrainBatches(data, 64, 0, host_transform=HostCrop((0.3, 1.0)))
    second_half = TrainBatches(data, 64, 0, rows=slice(32, 64),
                               host_transform=HostCrop((0.3, 1.0)))
    np.testing.assert_array_equal(whole[7]["image"][32:], second_half[7]["image"])


def test_crop_box_stays_inside_and_covers_the_asked_area():
    rng = np.random.default_rng(0)
    areas = []
    for _ in range(500):
        top, left, h, w = host_crop.crop_box(32, 48, rng, scale=(0.2, 0.6))
        assert 0 <= top and top + h <= 32 and 0 <= left and left + w <= 48
        areas.append(h * w / (32 * 48))
    assert 0.17 < min(areas) and max(areas) < 0.65  # rounding aside, within the scale
    image = np.arange(2 * 6 * 6 * 3, dtype=np.uint8).reshape(2, 6, 6, 3)
    whole = host_crop.random_resized_crop(image, [np.random.default_rng(1)] * 2, (1.0, 1.0),
                                          ratio=(1.0, 1.0))
    np.testing.assert_array_equal(whole, image)  # the whole image, resized to itself


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="0 < min <= max <= 1"):
        HostCrop((0.5, 1.5))
    with pytest.raises(ValueError, match="no `image` column"):
        HostCrop((0.5, 1.0))({"input_ids": np.zeros((2, 4), np.int32)}, [])
