"""Classification: cross-entropy loss, accuracy, macro P/R/F1 from a confusion matrix."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

TOP_K = 5  # top-k accuracy is reported with more classes than this


class Classification:
    """The model output is `logits: [batch, num_classes]`; the batch holds `label: [batch]`."""

    def __init__(self, num_classes: int, label_smoothing: float = 0.0):
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def model_kwargs(self, batch: dict) -> dict:
        """Extra keyword arguments for `model.apply`: none."""
        return {}

    def loss(self, logits: jnp.ndarray, batch: dict) -> tuple[jnp.ndarray, dict]:
        """Mean cross-entropy over the batch, and the batch accuracy. With `mix_weight`
        (mixup / CutMix, `pp/image_mixing.py`) the target is `λ one_hot(label) + (1 - λ)
        one_hot(mix_label)`; the accuracy counts the own label."""
        labels = jax.nn.one_hot(batch["label"], self.num_classes)
        if "mix_weight" in batch:
            weight = batch["mix_weight"][:, None]
            labels = weight * labels + (1 - weight) * jax.nn.one_hot(batch["mix_label"],
                                                                     self.num_classes)
        if self.label_smoothing:
            labels = optax.smooth_labels(labels, self.label_smoothing)
        loss = optax.softmax_cross_entropy(logits, labels).mean()
        accuracy = (logits.argmax(-1) == batch["label"]).mean()
        return loss, {"accuracy": accuracy}

    def eval_sums(self, logits: jnp.ndarray, batch: dict) -> dict:
        """Sums over the unmasked examples: loss, count, the confusion matrix, and with
        more than TOP_K classes the examples whose label is among the TOP_K likeliest.

        `confusion[i, j]` counts examples of true class i predicted as j.
        """
        mask = batch["mask"].astype(jnp.float32)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        true = jax.nn.one_hot(batch["label"], self.num_classes) * mask[:, None]
        pred = jax.nn.one_hot(logits.argmax(-1), self.num_classes)
        sums = {
            "loss_sum": (losses * mask).sum(),
            "count": mask.sum(),
            "confusion": true.T @ pred,
        }
        if self.num_classes > TOP_K:
            # In the top k: fewer than k classes score above the label's logit.
            label_logit = jnp.take_along_axis(logits, batch["label"][:, None], axis=-1)
            above = (logits > label_logit).sum(-1)
            sums["top_k_correct"] = ((above < TOP_K) * mask).sum()
        return sums

    def summarize(self, sums: dict) -> dict:
        """Eval metrics from summed `eval_sums`: loss, accuracy, macro precision/recall/F1,
        per-class accuracy, and top-5 accuracy with more than 5 classes."""
        metrics = classification_metrics(np.asarray(sums["confusion"]),
                                         float(sums["loss_sum"]) / float(sums["count"]))
        if "top_k_correct" in sums:
            metrics[f"top{TOP_K}_accuracy"] = float(sums["top_k_correct"]) / float(sums["count"])
        return metrics

    def eval_outputs(self, logits: jnp.ndarray, batch: dict) -> dict:
        """Per example: `label`, `prediction` (argmax) and `probabilities` [num_classes]."""
        return {"label": batch["label"], "prediction": logits.argmax(-1),
                "probabilities": jax.nn.softmax(logits.astype(jnp.float32), axis=-1)}

    def summarize_outputs(self, outputs: dict) -> dict:
        """Metrics that do not add up over batches, from every example's outputs:
        ROC AUC (binary; macro one-vs-rest for more classes, over the classes present),
        accuracy, and the number of examples."""
        from sklearn.metrics import roc_auc_score

        labels, probs = np.asarray(outputs["label"]), np.asarray(outputs["probabilities"])
        present = np.unique(labels)
        if len(present) < 2:
            auc = float("nan")  # undefined with a single class
        elif self.num_classes == 2:
            auc = float(roc_auc_score(labels, probs[:, 1]))
        else:
            auc = float(np.mean([roc_auc_score(labels == c, probs[:, c]) for c in present]))
        return {"auc": auc, "accuracy": float((outputs["prediction"] == labels).mean()),
                "num_examples": int(len(labels))}


def classification_metrics(confusion: np.ndarray, loss: float) -> dict:
    """Metrics from a `[num_classes, num_classes]` confusion matrix (rows: true class).

    Precision, recall and F1 are macro averages; a class that is never
    predicted (or never present) scores 0 there, as scikit-learn does.
    `per_class_accuracy[i]` is class i's recall (None for a class with no examples).
    """
    confusion = confusion.astype(np.float64)
    tp = np.diag(confusion)
    predicted = confusion.sum(0)
    actual = confusion.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "loss": loss,
        "accuracy": float(tp.sum() / confusion.sum()),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "num_examples": int(round(confusion.sum())),
        "per_class_accuracy": [float(r) if a > 0 else None for r, a in zip(recall, actual,
                                                                             strict=True)],
        "confusion_matrix": np.rint(confusion).astype(int).tolist(),
    }
