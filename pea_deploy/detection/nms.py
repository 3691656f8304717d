"""Class-aware non-maximum suppression in plain torch (torchvision does not run here), on the boxes'
device and without a loop over the boxes.

Greedy NMS keeps box i (in score order) when no *kept* earlier box overlaps it by more than the
threshold. That is a fixed point: keep = not any(over[j, i] and keep[j] for j < i), with over the
strictly upper triangle of (IoU > threshold). Iterating it from "keep all" settles at least one more
box per round (box i depends only on boxes before it, so after r rounds the first r are exact), and
the fixed point is unique, so it ends at exactly the greedy result: after as many rounds as the
longest chain of suppressions (a few on real detections), each round one pass over the matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_iou


def greedy_keep(over: Tensor) -> Tensor:
    """(N,) bool: the greedy keep mask for `over` (N, N) bool, over[j, i] true when box j comes
    before box i and would suppress it (only j < i may be set)."""
    keep = torch.ones(over.shape[0], dtype=torch.bool, device=over.device)
    rows = over.float()  # a mat-vec counts each box's kept suppressors; exact, counts << 2^24
    for _ in range(over.shape[0] + 1):  # the bound is never reached: at most one round per box
        new = (keep.float() @ rows) == 0
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, classes: Tensor | None = None) -> Tensor:
    """Indices of the boxes kept, highest score first (ties in index order): greedily, each box
    suppresses the lower-scored boxes that overlap it by more than `iou_threshold` (and, with
    `classes`, are of its class)."""
    order = scores.argsort(descending=True, stable=True)
    boxes = boxes[order]
    over = (box_iou(boxes, boxes) > iou_threshold).triu(1)
    if classes is not None:
        c = classes[order]
        over &= c[:, None] == c[None, :]
    return order[greedy_keep(over)]


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each class only: boxes of different classes never suppress each other."""
    return nms(boxes, scores, iou_threshold, classes)
