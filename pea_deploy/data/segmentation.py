"""Semantic segmentation data that needs no download, and its metric.

`make_shapes` draws a seeded set of images with filled circles, squares and triangles on a noisy
two-colour gradient, and the per-pixel class masks (0 background, 1 circle, 2 square, 3 triangle;
later shapes cover earlier ones). It is small, real enough to train an encoder-decoder on, and
identical on every machine. `confusion_matrix` / `iou_per_class` give per-class IoU and mIoU with
an ignore index, as Cityscapes is scored.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

SHAPE_CLASSES = ["background", "circle", "square", "triangle"]
IGNORE_INDEX = 255


def _shape_mask(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    r = rng.uniform(0.08, 0.22) * size
    cy, cx = rng.uniform(r, size - r, 2)
    if kind == 1:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if kind == 2:
        return (np.abs(yy - cy) <= r * 0.85) & (np.abs(xx - cx) <= r * 0.85)
    # upward triangle: inside three half-planes
    top, base = cy - r, cy + r * 0.8
    half = (yy - top) / (base - top) * r
    return (yy >= top) & (yy <= base) & (np.abs(xx - cx) <= half)


def make_shapes(count: int, size: int = 64, seed: int = 0) -> tuple[Tensor, Tensor]:
    """`count` RGB uint8 images (N, 3, size, size) and int64 masks (N, size, size)."""
    if size % 8:
        raise ValueError(f"size must be divisible by 8 (ERFNet downsamples 3 times), got {size}")
    rng = np.random.default_rng(seed)
    images = np.empty((count, 3, size, size), np.uint8)
    masks = np.zeros((count, size, size), np.int64)
    ramp = np.linspace(0.0, 1.0, size)
    for i in range(count):
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        grad = ramp[None, :, None] if rng.random() < 0.5 else ramp[None, None, :]
        img = a[:, None, None] * (1 - grad) + b[:, None, None] * grad
        img = img + rng.normal(0, 12, (3, size, size))
        for _ in range(rng.integers(1, 4)):
            kind = int(rng.integers(1, 4))
            m = _shape_mask(kind, size, rng)
            img[:, m] = rng.uniform(0, 255, 3)[:, None]
            masks[i][m] = kind
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return torch.from_numpy(images), torch.from_numpy(masks)


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """(num_classes, num_classes) counts, rows = true class, columns = predicted; ignored pixels skipped."""
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    return torch.bincount(t * num_classes + p, minlength=num_classes ** 2).view(num_classes, num_classes)


def iou_per_class(confusion: Tensor) -> Tensor:
    """IoU = TP / (TP + FP + FN) per class; NaN for a class absent from both prediction and truth."""
    c = confusion.double()
    tp = c.diag()
    union = c.sum(0) + c.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def mean_iou(confusion: Tensor) -> float:
    """Mean IoU in % over the classes that occur (in truth or prediction)."""
    iou = iou_per_class(confusion)
    return 100.0 * float(iou[~iou.isnan()].mean()) if (~iou.isnan()).any() else 0.0
