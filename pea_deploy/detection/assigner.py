"""The task-aligned assigner (Feng et al., TOOD 2021, as the YOLOv8 family uses it), for a whole batch
at once on the predictions' device.

Per image: a cell is a candidate for a ground-truth box when its centre lies inside the box; its
alignment with that box is score^0.5 * IoU^6 (the predicted probability of the box's class and the
IoU of the predicted box, both detached); each box takes its 10 best-aligned candidates; a cell
claimed by two boxes goes to the one it overlaps most (the first of them on a tie). The class target
of an assigned cell is its alignment, rescaled so that each box's best cell gets that cell's IoU: a
soft target that rises as localisation improves.

The images' boxes come padded to one count (detection/targets.py: class -1 marks an unused row), so
every step is one tensor operation over (images, boxes, cells); a padded row is a box no cell lies
in, and takes part in nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_iou

TOP_K = 10


@torch.no_grad()
def assign(scores: Tensor, boxes: Tensor, points: Tensor, gt_boxes: Tensor, gt_labels: Tensor
           ) -> tuple[Tensor, Tensor, Tensor]:
    """(foreground mask (B, N), target boxes (B, N, 4), target class scores (B, N, C)).

    scores: (B, N, C) probabilities; boxes: (B, N, 4) predicted; points: (N, 2) cell centres;
    gt_boxes: (B, M, 4); gt_labels: (B, M) long, -1 for a padded row."""
    b, n, c = scores.shape
    m = gt_boxes.shape[1]
    if m == 0:
        return (torch.zeros(b, n, dtype=torch.bool, device=scores.device), boxes.new_zeros(b, n, 4),
                torch.zeros_like(scores))
    live = gt_labels >= 0                                                            # (B, M)
    gt_boxes = gt_boxes.to(boxes.dtype)
    inside = ((points > gt_boxes[:, :, None, :2]) & (points < gt_boxes[:, :, None, 2:])).all(-1)
    inside &= live[:, :, None]                                                       # (B, M, N)
    iou = box_iou(gt_boxes, boxes).clamp_(min=0) * inside
    labels = gt_labels.clamp(min=0)
    class_score = scores.gather(2, labels[:, None, :].expand(b, n, m)).transpose(1, 2)  # (B, M, N)
    # score^0.5 * IoU^6 by sqrt and products: pow's vectorised and scalar paths round differently,
    # by an element's place in the tensor, and these do not, so an image's targets do not depend on
    # the batch it comes in (nor on the device, up to its rounding)
    iou3 = iou * iou * iou
    align = class_score.clamp(min=0).sqrt() * (iou3 * iou3) * inside
    top = align.topk(min(TOP_K, n), dim=2).indices
    chosen = torch.zeros_like(inside).scatter_(2, top, True) & inside & (align > 0)
    # a cell chosen by several boxes goes to the one it overlaps most
    owner = torch.where(chosen, iou, torch.full_like(iou, -1)).argmax(1)             # (B, N)
    fg = chosen.any(1)
    mine = torch.zeros_like(chosen).scatter_(1, owner[:, None, :], fg[:, None, :])
    align, iou = align * mine, iou * mine
    norm = align * (iou.amax(2, keepdim=True) / align.amax(2, keepdim=True).clamp(min=1e-9))
    target_boxes = torch.where(fg[..., None], gt_boxes.gather(1, owner[..., None].expand(b, n, 4)), 0.0)
    target_scores = scores.new_zeros(b, n, c).scatter_(
        2, labels.gather(1, owner)[..., None], norm.gather(1, owner[:, None, :]).transpose(1, 2))
    return fg, target_boxes, target_scores
