"""Mean average precision by the COCO protocol (bbox, area "all", up to 100 detections per image and
class): for each class and IoU threshold 0.50:0.05:0.95, detections in score order are matched
greedily to the unmatched ground-truth box they overlap most (at least the threshold), precision is
made monotone and read at 101 recall points, and the mean over classes with ground truth (and over
thresholds) is mAP@0.5:0.95; at 0.5 alone it is mAP@0.5. The same numbers as pycocotools' COCOeval
(cross-checked in the tests), without its file formats.
"""

from __future__ import annotations

import numpy as np
import torch

from .boxes import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _numpy(v) -> np.ndarray:
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def coco_map(detections: list[dict], ground_truth: list[dict], max_det: int = 100) -> dict:
    """{"map": mAP@0.5:0.95 %, "map50": mAP@0.5 %, "per_class": {class: AP@0.5:0.95 %}}.

    detections / ground_truth: one dict per image, in the same order, with "boxes" (K, 4) x1 y1 x2 y2
    and "labels" (K,); detections also "scores" (K,)."""
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} images of detections, {len(ground_truth)} of ground truth")
    classes = sorted({int(c) for g in ground_truth for c in _numpy(g["labels"]).reshape(-1)})
    ap = np.full((len(IOU_THRESHOLDS), len(classes)), np.nan)
    for k, c in enumerate(classes):
        scores, matched, n_gt = [], [], 0
        for det, gt in zip(detections, ground_truth):
            g = _numpy(gt["boxes"]).reshape(-1, 4)[_numpy(gt["labels"]).reshape(-1) == c]
            d_mask = _numpy(det["labels"]).reshape(-1) == c
            d = _numpy(det["boxes"]).reshape(-1, 4)[d_mask]
            s = _numpy(det["scores"]).reshape(-1)[d_mask]
            order = np.argsort(-s, kind="mergesort")[:max_det]
            d, s = d[order], s[order]
            n_gt += len(g)
            scores.append(s)
            matched.append(_match(d, g))
        if n_gt == 0:
            continue
        s = np.concatenate(scores)
        m = np.concatenate(matched, axis=1) if s.size else np.zeros((len(IOU_THRESHOLDS), 0), bool)
        order = np.argsort(-s, kind="mergesort")
        for t in range(len(IOU_THRESHOLDS)):
            ap[t, k] = _average_precision(m[t, order], n_gt)
    if not classes:
        return {"map": 0.0, "map50": 0.0, "per_class": {}}
    return {"map": float(100 * np.nanmean(ap)), "map50": float(100 * np.nanmean(ap[0])),
            "per_class": {c: float(100 * np.nanmean(ap[:, k])) for k, c in enumerate(classes)}}


def _match(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(thresholds, detections) bool: whether each detection (in score order) is a true positive."""
    tp = np.zeros((len(IOU_THRESHOLDS), len(d)), bool)
    if len(d) == 0 or len(g) == 0:
        return tp
    iou = box_iou(torch.from_numpy(d).double(), torch.from_numpy(g).double()).numpy()
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(g), bool)
        for i in range(len(d)):
            best, best_iou = -1, min(threshold, 1 - 1e-10)
            for j in range(len(g)):
                if not taken[j] and iou[i, j] >= best_iou:
                    best, best_iou = j, iou[i, j]
            if best >= 0:
                taken[best] = True
                tp[t, i] = True
    return tp


def _average_precision(tp: np.ndarray, n_gt: int) -> float:
    tps, fps = np.cumsum(tp), np.cumsum(~tp)
    recall = tps / n_gt
    precision = tps / np.maximum(tps + fps, np.spacing(1))
    for i in range(len(precision) - 1, 0, -1):  # the precision envelope
        precision[i - 1] = max(precision[i - 1], precision[i])
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.array([precision[i] if i < len(precision) else 0.0 for i in at])
    return float(sampled.mean())
