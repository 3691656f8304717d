"""Detection targets as one tensor, so a detection set travels through the same batching, subsetting
and checkpoints as class labels and masks: (N, MAX_OBJECTS, 5) float rows of [class, x1, y1, x2, y2]
in input pixels, class -1 for the unused rows."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import DataError

MAX_OBJECTS = 32
PAD = -1.0


def pack_targets(targets: list[dict], max_objects: int = MAX_OBJECTS) -> Tensor:
    packed = torch.full((len(targets), max_objects, 5), PAD)
    for i, t in enumerate(targets):
        boxes, labels = t["boxes"].reshape(-1, 4).float(), t["labels"].reshape(-1)
        if len(labels) > max_objects:
            raise DataError(f"image {i} has {len(labels)} objects, more than the {max_objects} a set may hold")
        packed[i, :len(labels), 0] = labels.float()
        packed[i, :len(labels), 1:] = boxes
    return packed


def unpack_targets(packed: Tensor) -> list[dict]:
    """One {"boxes" (M, 4), "labels" (M,)} per image of a packed (N, MAX, 5) tensor."""
    found = []
    for rows in packed:
        rows = rows[rows[:, 0] >= 0]
        found.append({"boxes": rows[:, 1:].float(), "labels": rows[:, 0].long()})
    return found


def padded_targets(targets, device: torch.device) -> tuple[Tensor, Tensor]:
    """(boxes (B, M, 4) float, labels (B, M) long, -1 for an unused row) on `device`, from packed
    targets (B, MAX, 5) or one {"boxes", "labels"} dict per image; M ends at the last row any image
    uses, so batched work is not spent on the padding."""
    if not isinstance(targets, Tensor):
        targets = pack_targets(list(targets), max(1, max((len(t["labels"]) for t in targets), default=0)))
    targets = targets.to(device)
    used = (targets[..., 0] >= 0).any(0).nonzero()
    width = int(used[-1]) + 1 if len(used) else 0
    return targets[:, :width, 1:].float(), targets[:, :width, 0].long()


def flip_targets(packed: Tensor, flip: Tensor, width: int) -> Tensor:
    """Mirror the boxes of the images where `flip` (N,) is true, for a horizontal image flip."""
    out = packed.clone()
    x1, x2 = packed[..., 1], packed[..., 3]
    f = flip.view(-1, 1) & (packed[..., 0] >= 0)
    out[..., 1] = torch.where(f, width - x2, x1)
    out[..., 3] = torch.where(f, width - x1, x2)
    return out


def shift_targets(packed: Tensor, dx: list[int], dy: list[int], width: int, height: int,
                  min_visible: float = 1 / 3) -> Tensor:
    """Move each image's boxes by (dx, dy) pixels (a translation of the image), clip them to it, and
    drop those left with less than `min_visible` of their area inside."""
    out = packed.clone()
    for i in range(len(packed)):
        rows = out[i]
        live = rows[:, 0] >= 0
        area = (rows[:, 3] - rows[:, 1]) * (rows[:, 4] - rows[:, 2])
        rows[:, [1, 3]] = (rows[:, [1, 3]] + dx[i]).clamp(0, width)
        rows[:, [2, 4]] = (rows[:, [2, 4]] + dy[i]).clamp(0, height)
        kept = (rows[:, 3] - rows[:, 1]) * (rows[:, 4] - rows[:, 2])
        rows[live & (kept < min_visible * area.clamp(min=1e-9)), 0] = PAD
    return out
