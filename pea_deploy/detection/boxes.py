"""Boxes as (x1, y1, x2, y2) in pixels unless named otherwise; IoU and the CIoU loss term."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def cxcywh_to_xyxy(b: Tensor) -> Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def xyxy_to_cxcywh(b: Tensor) -> Tensor:
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)


def box_area(b: Tensor) -> Tensor:
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """(..., N, M) IoU of every box of `a` (..., N, 4) with every box of `b` (..., M, 4); leading
    dimensions (a batch of images) broadcast."""
    a, b = a[..., :, None, :], b[..., None, :, :]
    # per coordinate, not as (..., N, M, 2) pairs: half the memory traffic on N x M matrices, and
    # the same operations on the same numbers, so bit for bit the pairwise form's result
    w = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp_(min=0)
    h = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp_(min=0)
    inter = w.mul_(h)
    union = box_area(a) + box_area(b) - inter
    return inter.div_(union.clamp_(min=1e-9))


def ciou(a: Tensor, b: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU (Zheng et al. 2020) of paired boxes (..., 4): IoU minus the normalised centre
    distance and an aspect-ratio term; 1 - ciou is the box loss."""
    inter = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0).prod(-1)
    wa, ha = (a[..., 2] - a[..., 0]).clamp(min=eps), (a[..., 3] - a[..., 1]).clamp(min=eps)
    wb, hb = (b[..., 2] - b[..., 0]).clamp(min=eps), (b[..., 3] - b[..., 1]).clamp(min=eps)
    iou = inter / (wa * ha + wb * hb - inter + eps)
    enclose = torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])
    c2 = (enclose ** 2).sum(-1) + eps
    rho2 = (((a[..., :2] + a[..., 2:]) - (b[..., :2] + b[..., 2:])) ** 2).sum(-1) / 4
    v = (4 / math.pi ** 2) * (torch.atan(wb / hb) - torch.atan(wa / ha)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + 1 + eps)
    return iou - rho2 / c2 - alpha * v
