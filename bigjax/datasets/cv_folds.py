"""K-fold cross-validation of a training split: disjoint folds that cover it.

With ``config.data.cv_folds = K`` and ``config.data.cv_fold = i``, the training split is
shuffled once (a fixed permutation, seeded by ``config.data.cv_seed``, the same for
every fold and every run) and cut into K contiguous folds whose sizes differ by at most
one example. Training reads the other K - 1 folds; the split named ``HOLDOUT`` reads
fold i (``scripts/sweep.py --cv_folds=K`` sets ``data.eval_split`` to it). Every
example of the split is held out by exactly one fold.
"""

from __future__ import annotations

import numpy as np

HOLDOUT = "cv_holdout"


def fold_rows(num_examples: int, folds: int, fold: int, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows) of fold ``fold`` of ``folds``, each sorted [k] ints.

    Raises ValueError for fewer than 2 folds, a fold out of range, or more folds than
    examples.
    """
    if folds < 2:
        raise ValueError(f"config.data.cv_folds={folds}: cross-validation needs at least 2 "
                         "folds.")
    if not 0 <= fold < folds:
        raise ValueError(f"config.data.cv_fold={fold} must be in [0, {folds}) for "
                         f"config.data.cv_folds={folds}.")
    if folds > num_examples:
        raise ValueError(f"config.data.cv_folds={folds} is more than the {num_examples} "
                         "examples of the training split.")
    order = np.random.default_rng(seed).permutation(num_examples)
    held = np.array_split(order, folds)[fold]
    mask = np.ones(num_examples, bool)
    mask[held] = False
    return np.flatnonzero(mask), np.sort(held)
