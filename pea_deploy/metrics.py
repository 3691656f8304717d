"""Scores shared by training and export parity: top-1 for classifiers, per-class IoU and mIoU for
segmentation (with an ignore index, as Cityscapes is scored)."""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE_INDEX = 255  # mask value of pixels that are not scored (Cityscapes' convention)
METRIC_LABELS = {"top1": "top-1", "miou": "mIoU", "map": "mAP@0.5:0.95", "map50": "mAP@0.5"}  # metric key -> how reports and logs name it


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


def iou_percent(confusion: Tensor) -> list[float | None]:
    """Per-class IoU in %, rounded for reports; None for a class absent from truth and prediction."""
    return [None if v != v else round(100.0 * float(v), 3) for v in iou_per_class(confusion)]


def mean_iou(confusion: Tensor) -> float:
    """Mean IoU in % over the classes that occur (in truth or prediction)."""
    iou = iou_per_class(confusion)
    return 100.0 * float(iou[~iou.isnan()].mean()) if (~iou.isnan()).any() else 0.0


def pixel_accuracy(confusion: Tensor) -> float:
    """Share of scored pixels classified right, in %."""
    total = int(confusion.sum())
    return 100.0 * int(confusion.diag().sum()) / total if total else 0.0
