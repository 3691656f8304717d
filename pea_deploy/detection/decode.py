"""From a detector's raw head maps to boxes: what runs on the host CPU after the NPU, outside the
exported graph (exp-like and sort-like steps that NPUs run poorly or not at all).

Each output level is a map (B, 4 + classes, H, W) at a stride: channels 0-3 are the distances from
the cell's centre to the box's left, top, right and bottom edges before softplus, in units of the
stride; the rest are class logits. Anchor-free, one prediction per cell (the YOLOv8 family's form,
without its distribution focal loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .nms import batched_nms


def anchor_points(shapes: list[tuple[int, int]], strides: list[int], device=None) -> tuple[Tensor, Tensor]:
    """((N, 2) cell centres in input pixels, (N,) their strides) for maps of `shapes` at `strides`."""
    points, stride_of = [], []
    for (h, w), s in zip(shapes, strides):
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        points.append(torch.stack([xs, ys], -1).reshape(-1, 2).float().add(0.5).mul(s))
        stride_of.append(torch.full((h * w,), float(s), device=device))
    return torch.cat(points), torch.cat(stride_of)


def decode(outputs, strides: list[int]) -> tuple[Tensor, Tensor, Tensor]:
    """(boxes (B, N, 4) x1 y1 x2 y2 in input pixels, class logits (B, N, C), anchor points (N, 2))
    from the per-level maps `outputs` (a tuple or list, in `strides` order)."""
    maps = list(outputs)
    shapes = [tuple(m.shape[-2:]) for m in maps]
    flat = torch.cat([m.flatten(2) for m in maps], 2).transpose(1, 2)  # (B, N, 4 + C)
    points, stride_of = anchor_points(shapes, strides, flat.device)
    dist = F.softplus(flat[..., :4]) * stride_of[None, :, None]
    boxes = torch.cat([points - dist[..., :2], points + dist[..., 2:]], -1)
    return boxes, flat[..., 4:], points


@torch.no_grad()
def detections(outputs, strides: list[int], *, conf: float = 0.001, iou: float = 0.6,
               max_det: int = 100) -> list[dict]:
    """Per image: {"boxes" (K, 4), "scores" (K,), "labels" (K,)} after the score threshold `conf`
    and class-aware NMS at `iou`, at most `max_det`, best first (COCO evaluation: conf 0.001)."""
    boxes, logits, _ = decode(outputs, strides)
    scores = logits.float().sigmoid()
    found = []
    for b, s in zip(boxes, scores):
        best, label = s.max(-1)  # one class per cell
        keep = best > conf
        b, best, label = b[keep], best[keep], label[keep]
        top = best.argsort(descending=True)[:max(30 * max_det, 1000)]  # bound the NMS cost
        b, best, label = b[top], best[top], label[top]
        kept = batched_nms(b, best, label, iou)[:max_det]
        found.append({"boxes": b[kept], "scores": best[kept], "labels": label[kept]})
    return found
