"""Issue 30 (item 3): detection's host loops made tensor operations - NMS as a fixed point on the
IoU matrix, the assigner over a whole batch, COCO mAP matched per batch - with the results of the
loops they replace."""

from __future__ import annotations

import contextlib
import importlib.util
import io

import numpy as np
import pytest
import torch

from pea_deploy.detection import batched_nms, coco_map
from pea_deploy.detection.assigner import assign
from pea_deploy.detection.boxes import box_iou
from pea_deploy.detection.coco_map import MapAccumulator
from pea_deploy.detection.decode import decode
from pea_deploy.detection.nms import nms
from pea_deploy.detection.targets import pack_targets, padded_targets


def greedy_nms(boxes, scores, threshold, classes=None):
    """The per-box loop NMS was before: each kept box, in score order, suppresses the later boxes
    (of its class) that overlap it by more than the threshold."""
    order = scores.argsort(descending=True, stable=True)
    iou = box_iou(boxes[order], boxes[order])
    keep = torch.ones(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if keep[i]:
            hit = iou[i, i + 1:] > threshold
            if classes is not None:
                hit &= classes[order][i + 1:] == classes[order][i]
            keep[i + 1:] &= ~hit
    return order[keep]


def random_boxes(g, n, span, size):
    xy = torch.rand(n, 2, generator=g) * span
    return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * size + 1], 1)


@pytest.mark.parametrize("case", ["spread", "crowded", "duplicates_and_ties", "integer_grid"])
def test_nms_equals_the_greedy_loop(case):
    g = torch.Generator().manual_seed(["spread", "crowded", "duplicates_and_ties", "integer_grid"].index(case))
    for trial in range(24):
        n = int(torch.randint(0, 400, (1,), generator=g))
        boxes = random_boxes(g, n, 400 if case == "spread" else 60, 80)
        scores = torch.rand(n, generator=g)
        if case == "duplicates_and_ties":   # repeated boxes and scores: stable order decides
            boxes[n // 2:] = boxes[:n - n // 2].clone()
            scores = (scores * 4).round() / 4
        if case == "integer_grid":          # IoUs exactly at the threshold (0.5 with these boxes)
            boxes = (boxes / 10).round() * 10
            boxes[:, 2:] = boxes[:, :2] + torch.tensor([20.0, 10.0]) * torch.randint(1, 3, (n, 1), generator=g)
        classes = torch.randint(0, 3, (n,), generator=g)
        threshold = [0.5, 0.6, 0.3, 0.05][trial % 4]
        assert torch.equal(nms(boxes, scores, threshold), greedy_nms(boxes, scores, threshold))
        assert torch.equal(batched_nms(boxes, scores, classes, threshold),
                           greedy_nms(boxes, scores, threshold, classes))


def test_nms_of_a_long_suppression_chain_settles_exactly():
    """Boxes in a row, each overlapping the next alone, scores falling: greedy keeps every other
    one, and the fixed point needs a round per box of the chain."""
    boxes = torch.tensor([[10.0 * i, 0, 10.0 * i + 15, 10] for i in range(30)])
    scores = torch.linspace(1, 0.1, 30)
    kept = nms(boxes, scores, 0.1)
    assert kept.tolist() == list(range(0, 30, 2)) == greedy_nms(boxes, scores, 0.1).tolist()
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


def reference_assign(scores, boxes, points, gt_boxes, gt_labels):
    """Each image alone, its padding removed: what the per-image loop computed."""
    found = []
    for b in range(len(scores)):
        live = gt_labels[b] >= 0
        found.append(assign(scores[b:b + 1], boxes[b:b + 1], points, gt_boxes[b:b + 1, live],
                            gt_labels[b:b + 1, live]))
    return [torch.cat(parts) for parts in zip(*found)]


def test_the_batched_assigner_gives_each_image_its_own_assignment():
    g = torch.Generator().manual_seed(0)
    b, size, classes = 8, 64, 3
    maps = [torch.randn(b, 4 + classes, size // s, size // s, generator=g) * 2 for s in (8, 16, 32)]
    boxes, logits, points = decode(maps, [8, 16, 32])
    targets = []
    for i in range(b):
        k = [0, 1, 3, 7, 12, 2, 5, 4][i]
        t_boxes = random_boxes(g, k, 48, 40)
        if k > 2:
            t_boxes[1] = t_boxes[0]   # two ground-truth boxes on one spot: the first keeps the ties
        targets.append({"boxes": t_boxes, "labels": torch.randint(0, classes, (k,), generator=g)})
    packed = pack_targets(targets)
    packed[3, 1, 0] = -1               # a hole, as a crop leaves when it drops a box
    gt_boxes, gt_labels = padded_targets(packed, torch.device("cpu"))
    assert gt_boxes.shape[1] == 12     # the batch's padding stops at its longest image
    got = assign(logits.sigmoid(), boxes, points, gt_boxes, gt_labels)
    want = reference_assign(logits.sigmoid(), boxes, points, gt_boxes, gt_labels)
    fg, target_boxes, target_scores = got
    assert fg.any() and torch.equal(fg, want[0]) and torch.equal(target_boxes, want[1])
    assert torch.equal(target_scores, want[2])   # products and sqrt: no rounding that depends on layout
    assert not fg[0].any()             # an image without objects has no foreground


def test_mapaccumulator_by_batches_equals_one_pass_and_packed_equals_dicts():
    rng = np.random.default_rng(3)
    detections, truth = [], []
    for _ in range(20):
        m, k = int(rng.integers(0, 6)), int(rng.integers(0, 30))
        xy = rng.uniform(0, 80, (m, 2))
        truth.append({"boxes": torch.tensor(np.concatenate([xy, xy + rng.uniform(5, 40, (m, 2))], 1)).float(),
                      "labels": torch.tensor(rng.integers(0, 3, m))})
        d = rng.uniform(0, 100, (k, 4))
        d[:, 2:] = d[:, :2] + rng.uniform(5, 40, (k, 2))
        detections.append({"boxes": torch.tensor(d).float(), "labels": torch.tensor(rng.integers(0, 3, k)),
                           "scores": torch.tensor(rng.uniform(0, 1, k).round(1)).float()})   # many ties
    whole = coco_map(detections, truth, max_det=10)
    batched = MapAccumulator(max_det=10)
    for i in range(0, 20, 6):
        batched.add(detections[i:i + 6], pack_targets(truth[i:i + 6]))
    assert batched.compute() == whole and 0 < whole["map"] < 100


@pytest.mark.skipif(importlib.util.find_spec("pycocotools") is None, reason="pycocotools not installed")
def test_map_with_few_detections_per_class_equals_pycocotools():
    """maxDets cuts each image's detections per class: 3 of up to 30, so the cut matters."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(7)
    for _ in range(4):
        images, anns, results, dets, gts = [], [], [], [], []
        for i in range(8):
            m, k = int(rng.integers(1, 5)), int(rng.integers(0, 30))
            xy = rng.uniform(0, 80, (m, 2))
            g = np.concatenate([xy, xy + rng.uniform(5, 40, (m, 2))], 1)
            d = g[rng.integers(0, m, k)] + rng.normal(0, 3, (k, 4))
            d[:, 2:] = np.maximum(d[:, 2:], d[:, :2] + 1)
            gl, dl, s = rng.integers(0, 2, m), rng.integers(0, 2, k), rng.uniform(0, 1, k)
            images.append({"id": i, "width": 128, "height": 128})
            for b, label in zip(g, gl):
                w, h = b[2] - b[0], b[3] - b[1]
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(label),
                             "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
            results += [{"image_id": i, "category_id": int(c), "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                         "score": float(v)} for b, c, v in zip(d, dl, s)]
            dets.append({"boxes": d, "labels": dl, "scores": s})
            gts.append({"boxes": g, "labels": gl})
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in range(2)]}
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
            evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
            evaluation.params.maxDets = [1, 2, 3]
            evaluation.evaluate()
            evaluation.accumulate()
        # what COCOeval.summarize reads, at maxDets 3 (its stats[] ask for 100): precision is
        # (thresholds, recall points, classes, area ranges, maxDets), -1 where a class has no truth
        precision = evaluation.eval["precision"][:, :, :, 0, 2]
        ours = coco_map(dets, gts, max_det=3)
        # as test_detection's check: the same arithmetic, up to the order of the final means' sums
        assert ours["map"] == pytest.approx(100 * precision[precision > -1].mean(), abs=1e-9)
        assert ours["map50"] == pytest.approx(100 * precision[0][precision[0] > -1].mean(), abs=1e-9)
