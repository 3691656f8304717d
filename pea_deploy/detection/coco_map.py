"""Mean average precision by the COCO protocol (bbox, area "all", up to 100 detections per image and
class): for each class and IoU threshold 0.50:0.05:0.95, detections in score order are matched
greedily to the unmatched ground-truth box they overlap most (at least the threshold), precision is
made monotone and read at 101 recall points, and the mean over classes with ground truth (and over
thresholds) is mAP@0.5:0.95; at 0.5 alone it is mAP@0.5. The same numbers as pycocotools' COCOeval
(cross-checked in the tests), without its file formats.

`MapAccumulator` does it batch by batch on the detections' device: each batch is matched at once
(images padded to one count of detections and of boxes) and only scores, labels and hit flags are
kept; `compute` ranks and integrates them per class. The greedy match is the fixed point of "take
the best box not taken by an earlier detection", iterated until it settles, as in nms.py: exact, in
as many rounds as the longest chain of detections contending for the same boxes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from .boxes import box_iou
from .targets import padded_targets

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
IMAGES_PER_MATCH = 64  # bounds the (images, thresholds, detections, boxes) match tensor


def _padded(values: list, width: int, fill: float, dtype: torch.dtype, device) -> Tensor:
    """(len(values), longest, *width) from per-image arrays or tensors, `fill` after each one's end."""
    rows = [torch.as_tensor(v, device=device).to(dtype).reshape((-1, width) if width else (-1,)) for v in values]
    return pad_sequence(rows, batch_first=True, padding_value=fill)


def greedy_match(candidate: Tensor, iou: Tensor) -> Tensor:
    """(..., D) the box each detection takes (-1: none): in detection order, each takes the
    candidate box (candidate (..., D, G) bool) of highest `iou` (..., D, G) that no earlier detection
    took, the last such box on a tie (as COCOeval's loop over the boxes keeps the last >= best)."""
    g = candidate.shape[-1]
    match = torch.full(candidate.shape[:-1], -1, dtype=torch.long, device=candidate.device)
    if candidate.numel() == 0:
        return match
    flipped_iou = iou.flip(-1)  # argmax keeps the first maximum; on flipped boxes that is the last
    for _ in range(candidate.shape[-2] + 1):  # at most one round per detection; a few in practice
        took = torch.zeros_like(candidate).scatter_(-1, match.clamp(min=0)[..., None], (match >= 0)[..., None])
        taken_before = (took.cumsum(-2) - took.long()) > 0
        free = (candidate & ~taken_before).flip(-1)
        best = torch.where(free, flipped_iou, -1.0).argmax(-1)
        new = torch.where(free.any(-1), g - 1 - best, -1)
        if torch.equal(new, match):
            break
        match = new
    return match


class MapAccumulator:
    """COCO mAP over batches: `add(detections, ground_truth)` per batch, then `compute()`."""

    def __init__(self, max_det: int = 100):
        self.max_det = max_det
        self.scores, self.labels, self.hits, self.truth_labels = [], [], [], []

    def add(self, detections: list[dict], ground_truth) -> None:
        """detections: one dict per image with "boxes" (K, 4) x1 y1 x2 y2, "labels" (K,), "scores"
        (K,); ground_truth: in the same order, one dict per image with "boxes" (M, 4) and "labels"
        (M,), or packed targets (B, MAX, 5) (detection/targets.py). Tensors or arrays; the work runs
        on the device of the first detection's boxes (CPU for arrays)."""
        if len(detections) != len(ground_truth):
            raise ValueError(f"{len(detections)} images of detections, {len(ground_truth)} of ground truth")
        first = detections[0]["boxes"] if detections else None
        device = first.device if isinstance(first, Tensor) else torch.device("cpu")
        for start in range(0, len(detections), IMAGES_PER_MATCH):
            self._add(detections[start:start + IMAGES_PER_MATCH],
                      ground_truth[start:start + IMAGES_PER_MATCH], device)

    def _add(self, detections: list[dict], ground_truth, device) -> None:
        if isinstance(ground_truth, Tensor):
            gt_boxes, gt_labels = padded_targets(ground_truth, device)
            gt_boxes = gt_boxes.double()
        else:
            gt_boxes = _padded([g["boxes"] for g in ground_truth], 4, 0.0, torch.float64, device)
            gt_labels = _padded([g["labels"] for g in ground_truth], 0, -1, torch.long, device)
        self.truth_labels.append(gt_labels[gt_labels >= 0])
        boxes = _padded([d["boxes"] for d in detections], 4, 0.0, torch.float64, device)
        scores = _padded([d["scores"] for d in detections], 0, -torch.inf, torch.float64, device)
        labels = _padded([d["labels"] for d in detections], 0, -1, torch.long, device)
        # each image's detections best first (ties in their given order), at most max_det per class
        order = scores.argsort(dim=1, descending=True, stable=True)
        boxes = boxes.gather(1, order[..., None].expand_as(boxes))
        scores, labels = scores.gather(1, order), labels.gather(1, order)
        live = labels >= 0
        classes = int(labels.max()) + 1 if labels.numel() else 0
        seen = torch.nn.functional.one_hot(labels.clamp(min=0), max(classes, 1)).cumsum(1)
        live &= seen.gather(2, labels.clamp(min=0)[..., None]).squeeze(2) <= self.max_det
        same = (labels[:, :, None] == gt_labels[:, None, :]) & live[:, :, None] & (gt_labels >= 0)[:, None, :]
        iou = box_iou(boxes, gt_boxes)
        thresholds = torch.as_tensor(np.minimum(IOU_THRESHOLDS, 1 - 1e-10), device=device)
        candidate = same[:, None] & (iou[:, None] >= thresholds[:, None, None])   # (B, T, D, G)
        hit = greedy_match(candidate, iou[:, None].expand_as(candidate)) >= 0       # (B, T, D)
        self.scores.append(scores[live])
        self.labels.append(labels[live])
        self.hits.append(hit.permute(1, 0, 2)[:, live])                              # (T, kept)

    def compute(self) -> dict:
        """{"map": mAP@0.5:0.95 %, "map50": mAP@0.5 %, "per_class": {class: AP@0.5:0.95 %}}."""
        truth = torch.cat(self.truth_labels) if self.truth_labels else None
        if truth is None or not len(truth):
            return {"map": 0.0, "map50": 0.0, "per_class": {}}
        classes, counts = torch.unique(truth, return_counts=True)
        # every image's detections in one ranking (stable: ties stay in image, then score order)
        scores, labels, hits = torch.cat(self.scores), torch.cat(self.labels), torch.cat(self.hits, 1)
        order = scores.argsort(descending=True, stable=True)
        labels, hits = labels[order], hits[:, order]
        recall_points = torch.as_tensor(RECALL_POINTS, device=scores.device)
        names, counts = classes.cpu().tolist(), counts.cpu().tolist()
        ap = torch.stack([_average_precision(hits[:, labels == c], n, recall_points)
                          for c, n in zip(classes, counts)], 1).cpu().numpy()
        return {"map": float(100 * np.nanmean(ap)), "map50": float(100 * np.nanmean(ap[0])),
                "per_class": {c: float(100 * np.nanmean(ap[:, k])) for k, c in enumerate(names)}}


def _average_precision(tp: Tensor, n_gt: int, recall_points: Tensor) -> Tensor:
    """(thresholds,) AP of the hit flags `tp` (thresholds, detections in score order) of one class."""
    t, n = tp.shape
    if n == 0:
        return torch.zeros(t, dtype=torch.float64, device=tp.device)
    tps, fps = tp.cumsum(1).double(), (~tp).cumsum(1).double()
    recall = tps / n_gt
    precision = tps / (tps + fps).clamp(min=np.spacing(1))
    precision = precision.flip(1).cummax(1).values.flip(1)  # the precision envelope
    at = torch.searchsorted(recall, recall_points.expand(t, -1).contiguous(), side="left")
    sampled = torch.where(at < n, precision.gather(1, at.clamp(max=n - 1)), 0.0)
    return sampled.mean(1)


def coco_map(detections: list[dict], ground_truth, max_det: int = 100) -> dict:
    """{"map": mAP@0.5:0.95 %, "map50": mAP@0.5 %, "per_class": {class: AP@0.5:0.95 %}}.

    detections / ground_truth: one dict per image, in the same order, with "boxes" (K, 4) x1 y1 x2 y2
    and "labels" (K,); detections also "scores" (K,). Ground truth may also be packed targets
    (B, MAX, 5) (detection/targets.py)."""
    acc = MapAccumulator(max_det)
    acc.add(detections, ground_truth)
    return acc.compute()
