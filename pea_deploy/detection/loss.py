"""The detector's training loss: a task-aligned assigner (Feng et al., TOOD 2021, as the YOLOv8 family
uses it) and classification BCE plus a CIoU box loss.

Assignment, per image: a cell is a candidate for a ground-truth box when its centre lies inside the
box; its alignment with that box is score^0.5 * IoU^6 (the predicted probability of the box's class
and the IoU of the predicted box, both detached); each box takes its 10 best-aligned candidates; a
cell claimed by two boxes goes to the one it overlaps most. The class target of an assigned cell is
its alignment, rescaled so that each box's best cell gets that cell's IoU: a soft target that rises
as localisation improves. Loss = 7.5 * mean(1 - CIoU) + 0.5 * BCE, both normalised by the sum of the
targets (YOLOv8's gains, without its distribution focal loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .boxes import box_iou, ciou
from .decode import decode

TOP_K, ALPHA, BETA = 10, 0.5, 6.0
BOX_GAIN, CLS_GAIN = 7.5, 0.5


@torch.no_grad()
def assign(scores: Tensor, boxes: Tensor, points: Tensor, gt_boxes: Tensor, gt_labels: Tensor
           ) -> tuple[Tensor, Tensor, Tensor]:
    """For one image: (foreground mask (N,), target boxes (N, 4), target class scores (N, C)).
    scores: (N, C) probabilities; boxes: (N, 4) predicted; points: (N, 2) cell centres."""
    n, c = scores.shape
    target_scores = torch.zeros(n, c)
    target_boxes = torch.zeros(n, 4)
    fg = torch.zeros(n, dtype=torch.bool)
    if len(gt_boxes) == 0:
        return fg, target_boxes, target_scores
    inside = ((points[None] > gt_boxes[:, None, :2]) & (points[None] < gt_boxes[:, None, 2:])).all(-1)  # (M, N)
    iou = box_iou(gt_boxes, boxes).clamp(min=0) * inside
    align = scores[:, gt_labels].T.clamp(min=0).pow(ALPHA) * iou.pow(BETA) * inside
    top = align.topk(min(TOP_K, n), dim=1).indices
    chosen = torch.zeros_like(inside)
    chosen.scatter_(1, top, True)
    chosen &= inside & (align > 0)
    # a cell chosen by several boxes goes to the one it overlaps most
    owner = torch.where(chosen, iou, torch.full_like(iou, -1)).argmax(0)
    fg = chosen.any(0)
    cells = fg.nonzero().squeeze(1)
    gt_of = owner[cells]
    mine = torch.zeros_like(chosen)
    mine[gt_of, cells] = True
    align = align * mine
    iou = iou * mine
    norm = align * (iou.amax(1, keepdim=True) / align.amax(1, keepdim=True).clamp(min=1e-9))
    target_boxes[cells] = gt_boxes[gt_of]
    target_scores[cells, gt_labels[gt_of]] = norm[gt_of, cells]
    return fg, target_boxes, target_scores


def detection_loss(outputs, targets: list[dict], strides: list[int]) -> tuple[Tensor, dict]:
    """(loss, {"box": ..., "cls": ...}) of the per-level maps `outputs` against `targets` (one dict
    per image: "boxes" (M, 4) x1 y1 x2 y2 in input pixels, "labels" (M,))."""
    boxes, logits, points = decode(outputs, strides)
    probs = logits.detach().float().sigmoid()
    fgs, tboxes, tscores = [], [], []
    for b, p, t in zip(boxes.detach().float(), probs, targets):
        fg, tb, ts = assign(p.cpu(), b.cpu(), points.cpu(), t["boxes"].float().cpu(), t["labels"].long().cpu())
        fgs.append(fg)
        tboxes.append(tb)
        tscores.append(ts)
    device = logits.device
    fg, tb, ts = torch.stack(fgs).to(device), torch.stack(tboxes).to(device), torch.stack(tscores).to(device)
    total = ts.sum().clamp(min=1.0)
    cls = F.binary_cross_entropy_with_logits(logits.float(), ts, reduction="sum") / total
    if fg.any():
        weight = ts.sum(-1)[fg]
        box = ((1.0 - ciou(boxes[fg].float(), tb[fg])) * weight).sum() / total
    else:
        box = boxes.sum() * 0.0
    return BOX_GAIN * box + CLS_GAIN * cls, {"box": float(box.detach()), "cls": float(cls.detach())}
