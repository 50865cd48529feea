import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from bigjax.tasks.classification import Classification, classification_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learn_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    num_classes, n = 5, 203
    labels = rng.integers(0, num_classes, n)
    logits = rng.normal(size=(n, num_classes))
    logits[:, 4] -= 100  # class 4 is never predicted: precision must count it as 0
    task = Classification(num_classes)
    batch = {"label": jnp.asarray(labels), "mask": jnp.ones(n, bool)}
    got = task.summarize(task.eval_sums(jnp.asarray(logits), batch))
    pred = logits.argmax(-1)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred))
    kw = dict(average="macro", zero_division=0, labels=range(num_classes))
    assert got["precision"] == pytest.approx(skm.precision_score(labels, pred, **kw))
    assert got["recall"] == pytest.approx(skm.recall_score(labels, pred, **kw))
    assert got["f1"] == pytest.approx(skm.f1_score(labels, pred, **kw))
    assert got["confusion_matrix"] == skm.confusion_matrix(
        labels, pred, labels=range(num_classes)).tolist()
    expected_loss = np.mean(np.log(np.exp(logits).sum(-1)) - logits[np.arange(n), labels])
    assert got["loss"] == pytest.approx(expected_loss, rel=1e-5)


def test_masked_rows_are_not_counted():
    task = Classification(3)
    logits = jnp.eye(3)[jnp.array([0, 1, 2, 0])] * 5
    batch = {"label": jnp.array([0, 1, 2, 1]), "mask": jnp.array([True, True, True, False])}
    got = task.summarize(task.eval_sums(logits, batch))
    assert got["num_examples"] == 3 and got["accuracy"] == 1.0


def test_perfect_confusion_gives_ones():
    got = classification_metrics(np.diag([3, 4, 5]), loss=0.1)
    assert got["precision"] == got["recall"] == got["f1"] == got["accuracy"] == 1.0
