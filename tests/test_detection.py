"""Issue 24 (first part): detection as a library - COCO mAP checked against pycocotools, class-aware
NMS, the procedural shapes-det set, the YOLO-style detector trained with PEA-SiLU to alpha 1 in a
plain loop, and its int8 export scored in mAP with Vela placing every operator on the NPU."""

from __future__ import annotations

import contextlib
import importlib.util
import io

import numpy as np
import pytest
import torch

from pea_deploy import relufy
from pea_deploy.detection import batched_nms, coco_map, detections
from pea_deploy.detection.loss import detection_loss
from pea_deploy.detection.shapes_det import DET_CLASSES, make_shapes_det
from pea_deploy.nets.yolo import yolo_detector

needs_export = pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None
                                  or importlib.util.find_spec("ethosu") is None,
                                  reason="pea-deploy[tflite,vela] not installed")


def _random_case(rng, images=6, classes=3):
    dets, gts = [], []
    for _ in range(images):
        m = int(rng.integers(0, 5))
        xy, wh = rng.uniform(0, 80, (m, 2)), rng.uniform(5, 40, (m, 2))
        g = np.concatenate([xy, xy + wh], 1)
        k = int(rng.integers(0, 12))
        d = (g[rng.integers(0, m, k)] + rng.normal(0, 4, (k, 4))) if m else rng.uniform(0, 80, (k, 4))
        d[:, 2:] = np.maximum(d[:, 2:], d[:, :2] + 1)
        dets.append({"boxes": d, "labels": rng.integers(0, classes, k), "scores": rng.uniform(0, 1, k)})
        gts.append({"boxes": g, "labels": rng.integers(0, classes, m)})
    return dets, gts


@pytest.mark.skipif(importlib.util.find_spec("pycocotools") is None, reason="pycocotools not installed")
def test_map_equals_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    for _ in range(6):
        dets, gts = _random_case(rng)
        images, anns, results = [], [], []
        for i, (d, g) in enumerate(zip(dets, gts)):
            images.append({"id": i, "width": 128, "height": 128})
            for b, label in zip(g["boxes"], g["labels"]):
                w, h = b[2] - b[0], b[3] - b[1]
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(label),
                             "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
            for b, label, s in zip(d["boxes"], d["labels"], d["scores"]):
                results.append({"image_id": i, "category_id": int(label), "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                "score": float(s)})
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in range(3)]}
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
            evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        ours = coco_map(dets, gts)
        assert ours["map"] == pytest.approx(100 * evaluation.stats[0], abs=1e-9)
        assert ours["map50"] == pytest.approx(100 * evaluation.stats[1], abs=1e-9)


def test_perfect_and_empty_detections():
    gts = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 30]]), "labels": torch.tensor([0, 1])}]
    perfect = [{**gts[0], "scores": torch.tensor([0.9, 0.8])}]
    assert coco_map(perfect, gts)["map"] == pytest.approx(100.0)
    none = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "scores": torch.zeros(0)}]
    assert coco_map(none, gts)["map"] == 0.0


def test_nms_is_class_aware():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    kept = batched_nms(boxes, scores, torch.tensor([0, 0, 1, 0]), 0.5)
    assert kept.tolist() == [0, 2, 3]   # box 1 overlaps box 0 of its class; box 2 is another class


def test_shapes_det_is_seeded_and_boxes_hold_their_shapes():
    a, ta = make_shapes_det(8, 64, seed=3)
    b, tb = make_shapes_det(8, 64, seed=3)
    assert torch.equal(a, b) and all(torch.equal(x["boxes"], y["boxes"]) for x, y in zip(ta, tb))
    for image, t in zip(a, ta):
        assert len(t["boxes"]) == len(t["labels"]) >= 1
        assert t["labels"].min() >= 0 and t["labels"].max() < len(DET_CLASSES)
        for x1, y1, x2, y2 in t["boxes"].long().tolist():
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
            assert image[:, y1:y2, x1:x2].float().mean() > image.float().mean()  # shapes are the light pixels


def map_of(outputs, targets, strides=(8, 16)) -> float:
    return coco_map(detections(outputs, list(strides)), targets)["map50"]


@pytest.fixture(scope="module")
def trained():
    """The detector trained from scratch with PEA-SiLU (weighted) to alpha 1, in a plain loop."""
    torch.manual_seed(0)
    x, t = make_shapes_det(384, 64, seed=0)
    xv, tv = make_shapes_det(96, 64, seed=1)
    x, xv = x.float() / 255, xv.float() / 255
    net = yolo_detector(len(DET_CLASSES), width=0.125, levels=2)
    with torch.no_grad():
        before = map_of(net.eval()(xv), tv)
    steps = 160
    pea = relufy(net.train(), act="silu", initial_epochs=0.25, transition_end_epoch=0.75, steps_per_epoch=steps)
    opt = torch.optim.AdamW(pea.model.parameters(), lr=3e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(0, len(x), (16,), generator=g)
        pea.step()
        loss, _ = detection_loss(pea.model(x[i]), [t[j] for j in i.tolist()], list(net.strides))
        opt.zero_grad()
        loss.backward()
        opt.step()
    relu = pea.finish(bn_data=[x[k:k + 32] for k in range(0, 128, 32)]).eval()
    with torch.no_grad():
        after = map_of(relu(xv), tv)
    return {"relu": relu, "before": before, "after": after, "x": x, "xv": xv, "tv": tv}


def test_pea_trains_the_detector_to_a_relu_network_that_detects(trained):
    assert not any(isinstance(m, torch.nn.SiLU) for m in trained["relu"].modules())
    # measured after: 76.4 and 79.9 mAP50 with 2 and 1 torch threads; an untrained net scores about 0
    assert trained["before"] < 5 and trained["after"] > 30, (trained["before"], trained["after"])


@needs_export
def test_int8_detector_keeps_its_map_and_runs_wholly_on_the_ethos_u55(trained, tmp_path):
    from pea_deploy.export import ExportOptions, export_model

    def map50(outputs, targets):
        return map_of(outputs, targets)

    xv, tv = trained["xv"], trained["tv"]
    batches = [(xv[i:i + 32], tv[i:i + 32]) for i in range(0, len(xv), 32)]
    result = export_model(trained["relu"], "ethos-u55", tmp_path / "out", example_inputs=xv[:1],
                          calibration=trained["x"][:128], validation=batches, metric=map50,
                          options=ExportOptions(latency_runs=2, max_drop=5.0))
    report = result.report.to_dict()
    rows = {(r["artefact"], r["runtime"]): r for r in report["parity"] if r["gate"]}
    torch_map = rows["torch fp32", "torch"]["score"]
    assert torch_map == pytest.approx(trained["after"], abs=1e-3)  # rows keep 4 decimals
    # int8 of this detector measured output cosine 0.9999+ and mAP50 within 0.8 points of torch on the
    # 96 images (over 1 and 2 torch threads): 5 points is 6x that; a broken int8 file loses tens
    for key, r in rows.items():
        assert r["metric"] == "map50" and abs(r["score"] - torch_map) <= 5.0, (key, r["score"], torch_map)
        if key[0] != "torch fp32":
            assert [o["name"] for o in r["outputs"]] == ["0", "1"]
    assert report["vela"]["cpu_operators"] == 0, report["vela"]["cpu_fallback"]
    assert report["artefacts"]["model.int8.tflite"]["verify"]["verdict"] == "PASSED"
    assert result.exit_code == 0, result.failures


def test_boxes_move_with_flips_and_translations():
    from pea_deploy.data import augment
    from pea_deploy.detection.targets import pack_targets, unpack_targets

    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    images[:, :, 4:10, 2:8] = 255
    packed = pack_targets([{"boxes": torch.tensor([[2.0, 4, 8, 10]]), "labels": torch.tensor([1])}] * 2)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        moved, boxes = augment(images, ("crop", "flip"), 4, g, boxes=packed)
        for image, t in zip(moved, unpack_targets(boxes)):
            if len(t["boxes"]):   # the box still frames the bright patch (or was dropped at the edge)
                x1, y1, x2, y2 = t["boxes"][0].long().tolist()
                assert image[0, y1:y2, x1:x2].float().mean() > 200, (x1, y1, x2, y2)
                assert t["labels"].tolist() == [1]


def test_detection_run_refuses_a_net_whose_outputs_do_not_fit(tmp_path):
    from click.testing import CliRunner

    from cli_checks import assert_one_error_line
    from pea_deploy.cli.train import main as train_main
    from pea_deploy.errors import ConfigError
    from pea_deploy.registry import register_dataset

    (tmp_path / "cls.py").write_text("from torch import nn\n"
                                     "def build(num_classes, in_channels):\n"
                                     "    return nn.Sequential(nn.Conv2d(in_channels, 8, 3), nn.ReLU(), "
                                     "nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))\n")
    result = CliRunner().invoke(train_main, ["shapes-det-yolo-pea-weighted-silu", "--model-file",
                                             f"{tmp_path / 'cls.py'}:build", "--out", str(tmp_path / "run")])
    assert_one_error_line(result, "pea-train", 2, "does not fit the detection task")
    with pytest.raises(ConfigError, match="unknown task"):
        register_dataset("mystery", "x:y", task="keypoints")


@needs_export
def test_pea_train_to_export_to_verify_on_shapes_det(tmp_path):
    """The Done-when path at a small size: pea-train (PEA-SiLU to alpha 1), pea-export (int8 ONNX and
    TFLite, parity in mAP, Vela), pea-verify-ops."""
    from click.testing import CliRunner

    from pea_deploy.cli.export import main as export_main
    from pea_deploy.cli.verify_ops import main as verify_main
    from pea_deploy.train import load_recipe, train

    recipe = load_recipe("shapes-det-yolo-pea-weighted-silu").with_overrides(
        {"data.train_subset": 256, "train.epochs": 2, "pea.initial_epochs": 0, "pea.transition_end": 1})
    summary = train(recipe, tmp_path / "run", progress=False, log=lambda m: None)
    assert set(summary["final_alphas"].values()) == {1.0}
    # two epochs on 256 images reach 0.27-0.57 % mAP@0.5:0.95 and 1.5-2.7 % mAP@0.5 (measured with 1 and 2
    # torch threads; both are gated), so no drop can pass --max-drop 10, whatever the CPU's float path
    # makes of so short a run: the gate that bites is the output cosine (measured 0.9999+)
    result = CliRunner().invoke(export_main, [str(tmp_path / "run"), "--target", "ethos-u55", "--parity-samples",
                                              "64", "--latency-runs", "2", "--max-drop", "10"])
    out = tmp_path / "run" / "export" / "ethos-u55"
    assert result.exit_code == 0, result.output
    import json

    report = json.loads((out / "report.json").read_text())
    assert report["checkpoint"]["task"] == "detection" and report["vela"]["cpu_operators"] == 0
    rows = [r for r in report["parity"] if r["gate"]]
    assert all(r["metric"] == "map" and r["score"] is not None and r["also"]["map50"]["score"] >= r["score"]
               for r in rows)                                  # mAP@0.5 beside mAP@0.5:0.95, never below it
    assert {r["artefact"] for r in rows} == {"torch fp32", "model.fp32.onnx", "model.int8.onnx", "model.int8.tflite"}
    assert all(len(r["outputs"]) == 3 for r in rows[1:])      # one map per stride (8, 16, 32)
    checked = CliRunner().invoke(verify_main, ["--target", "ethos-u55", str(out / "model.int8.onnx"),
                                               str(out / "model.int8.tflite")])
    assert checked.exit_code == 0, checked.output
