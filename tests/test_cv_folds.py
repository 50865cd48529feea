"""K-fold cross-validation: disjoint folds that cover the training split, read by the
experiment as the training data (all folds but one) and the "cv_holdout" split."""

import numpy as np
import pytest
from sklearn.model_selection import KFold

from bigjax import config_cli, experiment
from bigjax.datasets import cv_folds

from conftest import REPO


@pytest.mark.parametrize("n, k", [(10, 2), (11, 3), (1797, 5), (7, 7)])
def test_folds_are_disjoint_cover_the_data_and_differ_by_at_most_one(n, k):
    held = [cv_folds.fold_rows(n, k, i, seed=3) for i in range(k)]
    for train, out in held:
        assert np.intersect1d(train, out).size == 0
        np.testing.assert_array_equal(np.union1d(train, out), np.arange(n))
    all_held = np.concatenate([out for _, out in held])
    np.testing.assert_array_equal(np.sort(all_held), np.arange(n))  # each row exactly once
    sizes = [len(out) for _, out in held]
    assert max(sizes) - min(sizes) <= 1
    # The same sizes as scikit-learn's KFold cuts (contiguous folds of a shuffled order).
    assert sorted(sizes) == sorted(len(t) for _, t in KFold(k).split(np.zeros(n)))


def test_the_folds_do_not_depend_on_the_fold_asked_for():
    a = [cv_folds.fold_rows(50, 5, i)[1] for i in range(5)]
    b = [cv_folds.fold_rows(50, 5, i)[1] for i in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(cv_folds.fold_rows(50, 5, 0, seed=0)[1],
                              cv_folds.fold_rows(50, 5, 0, seed=1)[1])


@pytest.mark.parametrize("folds, fold, n, message", [
    (1, 0, 10, "at least 2"), (3, 3, 10, "must be in"), (11, 0, 10, "more than")])
def test_bad_fold_settings_are_refused(folds, fold, n, message):
    with pytest.raises(ValueError, match=message):
        cv_folds.fold_rows(n, folds, fold)


def test_the_experiment_trains_on_the_other_folds_and_holds_one_out():
    config = config_cli.load_config_file(f"{REPO}/configs/digits_cnn.py:runlocal")
    whole = experiment.load_split(config, "train")
    images = whole.take(np.arange(len(whole)))["image"].reshape(len(whole), -1)
    seen = []
    for fold in range(3):
        cv = config_cli.apply_overrides(config, [("data.cv_folds", "3"),
                                                 ("data.cv_fold", str(fold))])
        train = experiment.load_split(cv, "train")
        held = experiment.load_split(cv, cv_folds.HOLDOUT)
        assert len(train) + len(held) == len(whole)
        held_images = held.take(np.arange(len(held)))["image"].reshape(len(held), -1)
        train_images = train.take(np.arange(len(train)))["image"].reshape(len(train), -1)
        rows = {r.tobytes() for r in held_images}
        assert not rows & {r.tobytes() for r in train_images}
        seen.extend(r.tobytes() for r in held_images)
        # the test split is untouched by cross-validation
        assert len(experiment.load_split(cv, "test")) == len(experiment.load_split(config, "test"))
    assert sorted(seen) == sorted(r.tobytes() for r in images)


def test_the_holdout_split_needs_cv_folds():
    config = config_cli.load_config_file(f"{REPO}/configs/digits_cnn.py:runlocal")
    with pytest.raises(ValueError, match="set config.data.cv_folds"):
        experiment.load_split(config, cv_folds.HOLDOUT)


def test_subsets_are_taken_after_the_folds_are_cut():
    """train_examples / eval_examples subset a fold's rows; they never change which rows
    the folds hold (cutting folds of a subset would leak rows between folds)."""
    config = config_cli.load_config_file(f"{REPO}/configs/digits_cnn.py:runlocal")
    cv = [("data.cv_folds", "3"), ("data.cv_fold", "1")]
    cv_config = config_cli.apply_overrides(config, cv)
    held = experiment.load_split(cv_config, cv_folds.HOLDOUT)
    # (what build_experiment and the evaluators pass for data.train_examples / eval_examples)
    held_small = experiment.load_split(cv_config, cv_folds.HOLDOUT, examples=50)
    train_small = experiment.load_split(cv_config, "train", examples=100)
    assert len(held_small) == 50 and len(train_small) == 100

    def rows(data):
        images = data.take(np.arange(len(data)))["image"]
        return {r.tobytes() for r in images.reshape(len(data), -1)}

    assert rows(held_small) <= rows(held)  # a subset of the same fold
    assert not rows(train_small) & rows(held)
