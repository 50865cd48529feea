"""The confusion matrix of a classification eval as a PNG (matplotlib): rows the true
class, columns the predicted one, each row normalised to fractions of its class, with
the counts written in the cells when there are at most 20 classes."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_png(confusion: np.ndarray, class_names: Sequence[str] | None = None,
                  title: str = "") -> bytes:
    """PNG bytes of `confusion: [classes, classes]` counts (rows: true class)."""
    confusion = np.asarray(confusion, np.float64)
    n = len(confusion)
    names = list(class_names) if class_names is not None and len(class_names) == n else [
        str(i) for i in range(n)]
    rows = confusion.sum(axis=1, keepdims=True)
    fractions = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    size = min(4 + 0.45 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= 20:
        ax.set_xticks(range(n), names, rotation=45, ha="right")
        ax.set_yticks(range(n), names)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{int(confusion[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if fractions[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    ax.set_title(f"{title}  accuracy {accuracy:.4f}".strip())
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
