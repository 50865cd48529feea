"""Patch whitening: a conv kernel that decorrelates the pixels of every k x k patch.

With C the covariance of the flattened `k*k*c` patches of the training images, and
`C = V diag(lam) V^T`, the filters are `V / sqrt(lam + eps)` and their negatives
(`2*k*k*c` output channels, so a following ReLU/GELU keeps both signs). Each output
channel of the conv then has unit variance over the data, and the channels are
uncorrelated: the first layer starts where training would otherwise have to take it
(airbench's initialisation; Coates & Ng's ZCA-style patch features).
"""

from __future__ import annotations

import numpy as np


def patches(images: np.ndarray, k: int) -> np.ndarray:
    """Every k x k patch (stride 1, VALID) of `images: [n, h, w, c]` flattened in the
    conv kernel's order: `[n * (h-k+1) * (w-k+1), k * k * c]` (rows (dy, dx, channel))."""
    n, h, w, c = images.shape
    cols = [images[:, dy:h - k + 1 + dy, dx:w - k + 1 + dx, :]
            for dy in range(k) for dx in range(k)]
    return np.stack(cols, axis=3).reshape(-1, k * k * c)


def whitening_kernel(images: np.ndarray, k: int, eps: float) -> np.ndarray:
    """The `[k, k, c, 2*k*k*c]` whitening kernel of `images: [n, h, w, c]` (float)."""
    c = images.shape[-1]
    flat = patches(images, k)
    flat = flat - flat.mean(axis=0)
    covariance = flat.T @ flat / len(flat)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    filters = eigenvectors / np.sqrt(eigenvalues + eps)  # column j: one filter
    filters = np.concatenate([filters, -filters], axis=1)
    return filters.reshape(k, k, c, 2 * k * k * c).astype(np.float32)
