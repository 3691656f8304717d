"""The detector's training loss: classification BCE plus a CIoU box loss against the targets of the
task-aligned assigner (detection/assigner.py). Loss = 7.5 * mean(1 - CIoU) + 0.5 * BCE, both
normalised by the sum of the targets (YOLOv8's gains, without its distribution focal loss). All of
it runs on the outputs' device, over the batch at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .assigner import assign
from .boxes import ciou
from .decode import decode
from .targets import padded_targets

BOX_GAIN, CLS_GAIN = 7.5, 0.5


def detection_loss(outputs, targets: Tensor | list[dict], strides: list[int]) -> tuple[Tensor, dict]:
    """(loss, {"box": ..., "cls": ...}) of the per-level maps `outputs` against `targets`: packed
    (B, MAX, 5) rows of [class, x1, y1, x2, y2] in input pixels (detection/targets.py), or one dict
    per image ("boxes" (M, 4) x1 y1 x2 y2, "labels" (M,))."""
    boxes, logits, points = decode(outputs, strides)
    gt_boxes, gt_labels = padded_targets(targets, logits.device)
    fg, tb, ts = assign(logits.detach().float().sigmoid(), boxes.detach().float(), points, gt_boxes, gt_labels)
    total = ts.sum().clamp(min=1.0)
    cls = F.binary_cross_entropy_with_logits(logits.float(), ts, reduction="sum") / total
    if fg.any():
        weight = ts.sum(-1)[fg]
        box = ((1.0 - ciou(boxes[fg].float(), tb[fg])) * weight).sum() / total
    else:
        box = boxes.sum() * 0.0
    return BOX_GAIN * box + CLS_GAIN * cls, {"box": float(box.detach()), "cls": float(cls.detach())}
