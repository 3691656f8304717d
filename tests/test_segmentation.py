"""Semantic segmentation end to end: the shapes set, mIoU, ERFNet, pea-train on masks, and pea-export
of the segmentation net to ONNX and int8 TFLite (run in onnxruntime and LiteRT, compiled by Vela)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from torch import nn

from pea_deploy.cli.train import main as train_main
from pea_deploy.cli.verify_ops import main as verify_main
from pea_deploy.data import augment, load_dataset
from pea_deploy.data.segmentation import make_shapes
from pea_deploy.data.seg_folders import cityscapes_classes
from pea_deploy.export import ExportOptions, export_checkpoint
from pea_deploy.export.deploy_fold import deployable_copy, subpixel_form, transposed_convs_as_subpixel
from pea_deploy.export.runtimes import TFLiteRunner
from pea_deploy.metrics import IGNORE_INDEX, confusion_matrix, iou_per_class, mean_iou
from pea_deploy.nets import build_net
from pea_deploy.pea import convert, set_alpha
from pea_deploy.train import load_recipe, train

from cli_checks import assert_one_error_line

needs_tflite = pytest.mark.skipif(not importlib.util.find_spec("litert_torch"), reason="pea-deploy[tflite] not installed")
needs_vela = pytest.mark.skipif(not importlib.util.find_spec("ethosu"), reason="pea-deploy[vela] not installed")
RECIPE = "shapes-erfnet-seg-pea-weighted-mish"


def test_shapes_are_seeded_and_every_class_occurs():
    images, masks = make_shapes(64, size=32, seed=3)
    assert images.shape == (64, 3, 32, 32) and images.dtype == torch.uint8
    assert masks.shape == (64, 32, 32) and set(masks.unique().tolist()) == {0, 1, 2, 3}
    again, again_masks = make_shapes(64, size=32, seed=3)
    assert torch.equal(images, again) and torch.equal(masks, again_masks)
    assert not torch.equal(make_shapes(64, size=32, seed=4)[1], masks)
    with pytest.raises(ValueError, match="divisible by 8"):
        make_shapes(1, size=30)


def test_miou_arithmetic_with_ignore_index():
    target = torch.tensor([0, 0, 1, 1, 2, IGNORE_INDEX])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(pred, target, 3)
    assert cm.sum() == 5                                     # the ignored pixel is not counted
    iou = iou_per_class(cm)
    assert iou.tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert mean_iou(cm) == pytest.approx(100 * (1 / 3 + 2 / 3 + 0) / 3)
    assert math.isnan(iou_per_class(confusion_matrix(pred[:2], target[:2], 4))[3])


def test_augment_moves_masks_with_their_images():
    images, masks = make_shapes(16, size=32, seed=0)
    # a mask that is a function of the image: pixel (y, x) of image i is bright iff mask is 1
    images = (masks == 1).to(torch.uint8)[:, None].repeat(1, 3, 1, 1) * 200 + 20
    g = torch.Generator().manual_seed(5)
    out, out_masks = augment(images, ("crop", "flip"), 4, g, masks=masks, mask_fill=IGNORE_INDEX)
    padded = out_masks == IGNORE_INDEX
    assert padded.any() and (out[:, 0][padded] == 0).all()   # translated: zero image, unscored mask
    inside = ~padded
    assert torch.equal((out[:, 0][inside] == 220), (out_masks[inside] == 1))
    assert not torch.equal(out_masks, masks)


@pytest.mark.parametrize("cin,cout,k,s,p,op", [(8, 5, 3, 2, 1, 1), (8, 5, 2, 2, 0, 0), (4, 6, 4, 2, 1, 0),
                                               (3, 2, 3, 3, 0, 0)])
def test_subpixel_form_equals_the_transposed_conv(cin, cout, k, s, p, op):
    tconv = nn.ConvTranspose2d(cin, cout, k, s, p, output_padding=op)
    x = torch.randn(2, cin, 7, 5)
    with torch.no_grad():
        torch.testing.assert_close(subpixel_form(tconv)(x), tconv(x), rtol=1e-5, atol=1e-5)
    assert subpixel_form(nn.ConvTranspose2d(4, 4, 3, 2, 0)) is None      # output not 2x: left alone
    net = nn.Sequential(nn.ConvTranspose2d(4, 4, 2, 2), nn.ConvTranspose2d(4, 4, 3, 1, 0))
    assert transposed_convs_as_subpixel(net) == 1


@pytest.mark.parametrize("name", ["erfnet", "erfnet-seg"])
@pytest.mark.parametrize("negative_gamma", [False, True])
def test_deploy_folding_is_exact(name, negative_gamma):
    net = build_net(name, 4, 3, width=0.25, dropout=0.0)
    if negative_gamma:  # a pool channel with a negative BatchNorm scale takes the other fold path
        net.encoder.layers[0].bn.weight.data[-1] = -0.5
    net.train()
    with torch.no_grad():  # give the BatchNorms real running statistics
        for _ in range(3):
            net(torch.randn(8, 3, 32, 32) * 2 + 0.5)
    net.eval()
    folded = deployable_copy(net)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-4, atol=1e-4)
    # the BatchNorms no exporter can fold (after a concat, after a transposed conv) are gone
    assert all(isinstance(m.bn, nn.Identity) for m in folded.modules()
               if type(m).__name__ in ("DownsamplerBlock", "UpsamplerBlock"))


def test_erfnet_segmentation_trains_with_pea():
    """Real PEA training steps: per-pixel logits at input size, loss going down while alpha ramps to 1."""
    torch.manual_seed(0)
    images, masks = make_shapes(64, size=32, seed=0)
    masks[:, :2] = IGNORE_INDEX
    x = (images.float() / 255.0 - 0.5) / 0.25
    net = convert(build_net("erfnet-seg", 4, 3, width=0.25, dropout=0.0), act="gelu")
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    losses = []
    for step in range(30):
        set_alpha(net, min(1.0, step / 20))
        idx = torch.randint(0, 64, (16,))
        logits = net(x[idx])
        assert logits.shape == (16, 4, 32, 32)
        loss = F.cross_entropy(logits, masks[idx].long(), ignore_index=IGNORE_INDEX)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.65 * sum(losses[:5])


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    """The shapes recipe, cut to 4 short epochs at 32 px: a real PEA run of the segmentation net."""
    recipe = load_recipe(RECIPE).with_overrides({
        "train.epochs": 4, "pea.initial_epochs": 0, "pea.transition_end": 3, "data.image_size": 32,
        "model.width": 0.25})
    out = tmp_path_factory.mktemp("seg")
    summary = train(recipe, out, progress=False, log=lambda m: None)
    return out, summary


def test_segmentation_run_reports_miou(seg_run):
    out, summary = seg_run
    assert summary["task"] == "segmentation" and summary["metric"] == "val_miou"
    assert summary["all_alphas_one"] and summary["best_relu_only"]["epoch"] >= 3
    per_class = summary["final_val_iou_per_class"]
    assert list(per_class) == ["background", "circle", "square", "triangle"]
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"train_pixel_acc", "val_miou", "val_pixel_acc"} <= set(rows[0]) and "val_top1" not in rows[0]
    assert float(rows[-1]["val_miou"]) == summary["final_val_miou"]
    assert float(rows[-1]["val_pixel_acc"]) > 60.0          # background alone is about 76 %: it learned
    known = [v for v in per_class.values() if v is not None]
    assert summary["final_val_miou"] == pytest.approx(sum(known) / len(known), abs=0.01)


@needs_tflite
@needs_vela
def test_segmentation_net_exports_to_ethos_u55_with_miou_parity(seg_run, tmp_path):
    out, summary = seg_run
    # This test is about the wiring; the shapes recipe trained in full loses under 0.1 point of mIoU
    # to int8 (docs/results.md). A 4-epoch net reaches about 27 % mIoU with near-tied logits, so int8
    # rounding can erase a class that barely exists: measured, the int8 ONNX took circle from 27 % IoU
    # to 4 % (mIoU 27.6 -> 20.0, agreement 88 %) at an output cosine of 0.999, while the TFLite kept it.
    # Predicting background everywhere scores about 19 % here, so no mIoU gate can tell a broken int8
    # file from a healthy one on this net: --max-drop is off (100), and the gate is the output cosine
    # (default 0.99; measured 0.999, where an int8 file that is broken lies far below).
    result = export_checkpoint(out, "ethos-u55", tmp_path / "export",
                               ExportOptions(calib_samples=64, parity_samples=128, latency_runs=3, max_drop=100.0))
    report = result.report.to_dict()
    assert report["verdict"] == "PASSED", report["failures"]
    rows = {}
    for r in report["parity"]:
        if r["gate"]:
            rows.setdefault(r["artefact"], r)
    assert set(rows) == {"torch fp32", "model.fp32.onnx", "model.int8.onnx", "model.int8.tflite"}
    assert all(r["metric"] == "miou" and len(r["iou"]) == 4 for r in rows.values())
    assert rows["model.fp32.onnx"]["agreement"] > 99.9 and rows["model.fp32.onnx"]["drop"] == pytest.approx(0, abs=0.05)
    for name in ("model.int8.onnx", "model.int8.tflite"):
        assert rows[name]["cosine"] > 0.99 and rows[name]["drop"] == pytest.approx(
            rows["torch fp32"]["score"] - rows[name]["score"], abs=1e-3), rows[name]   # scored, and gated on cosine
    onnx_ops = report["artefacts"]["model.int8.onnx"]["verify"]["op_counts"]
    tflite_ops = report["artefacts"]["model.int8.tflite"]["verify"]["op_counts"]
    assert "ConvTranspose" in onnx_ops and "BatchNormalization" not in onnx_ops
    assert not any(op.startswith("TRANSPOSE_CONV") for op in tflite_ops)  # upsampled as conv + depth-to-space
    assert report["vela"]["cpu_operators"] == 0
    assert "mIoU %" in (tmp_path / "export" / "report.md").read_text()
    # The file itself: NHWC int8 in, NHWC per-pixel logits out, scored the same by our runner
    runner = TFLiteRunner(result.artefacts["model.int8.tflite"])
    assert list(runner.inp["shape"]) == [1, 32, 32, 3] and list(runner.out["shape"]) == [1, 32, 32, 4]
    assert runner(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 4, 32, 32)
    cli = CliRunner().invoke(verify_main, ["--target", "ethos-u55", str(result.artefacts["model.int8.tflite"])])
    assert cli.exit_code == 0, cli.output


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_segmentation_folder_trains_through_the_cli(tmp_path):
    images, masks = make_shapes(24, size=32, seed=9)
    for i in range(24):
        _write_png(tmp_path / "data" / "images" / f"s{i:02d}.png", images[i].permute(1, 2, 0).numpy())
        _write_png(tmp_path / "data" / "masks" / f"s{i:02d}.png", masks[i].numpy())
    (tmp_path / "data" / "classes.txt").write_text("background\ncircle\nsquare\ntriangle\n")
    splits = load_dataset("seg-folder", data_dir=str(tmp_path / "data"), image_size=32, val_fraction=0.25)
    assert splits.task == "segmentation" and splits.classes[3] == "triangle"
    assert len(splits.train) == 18 and splits.train[0][1].shape == (32, 32)
    result = CliRunner().invoke(train_main, [RECIPE, "--dataset", "seg-folder", "--data-dir", str(tmp_path / "data"),
                                             "--image-size", "32", "--width", "0.125", "--epochs", "1",
                                             "--initial-epochs", "0", "--transition-end", "1", "--batch-size", "6",
                                             "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dataset"]["source"] == str(tmp_path / "data") and summary["final_val_miou"] is not None
    (tmp_path / "data" / "masks" / "s03.png").unlink()
    bad = CliRunner().invoke(train_main, [RECIPE, "--dataset", "seg-folder", "--data-dir", str(tmp_path / "data"),
                                          "--out", str(tmp_path / "run2")])
    assert_one_error_line(bad, "pea-train", 2, "without a mask")
    assert not (tmp_path / "run2").exists()


def test_cityscapes_layout_and_label_mapping(tmp_path):
    classes, lut = cityscapes_classes()
    assert len(classes) == 19 and classes[0] == "road" and lut[7] == 0 and lut[33] == 18 and lut[0] == IGNORE_INDEX
    for split in ("train", "val"):
        stem = f"{split}city_000000_000019"
        _write_png(tmp_path / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png",
                   np.full((64, 128, 3), 90, np.uint8))
        label_ids = np.zeros((64, 128), np.uint8)
        label_ids[:, :64], label_ids[:32, 64:] = 7, 26          # road, car; the rest unlabelled (0)
        _write_png(tmp_path / "gtFine" / split / "aachen" / f"{stem}_gtFine_labelIds.png", label_ids)
    splits = load_dataset("cityscapes", data_dir=str(tmp_path), image_size=32)
    assert splits.num_classes == 19 and splits.input_hw == (32, 64)
    mask = splits.val[0][1]
    assert mask.shape == (32, 64)
    assert set(mask.unique().tolist()) == {0, 13, IGNORE_INDEX}  # labelIds 7 / 26 / 0 -> trainIds 0 / 13 / ignore


def test_model_and_dataset_must_agree_on_the_task(tmp_path):
    result = CliRunner().invoke(train_main, [RECIPE, "--model", "resnet18", "--out", str(tmp_path / "r")])
    assert_one_error_line(result, "pea-train", 2, "is a segmentation set but model 'resnet18'")
    result = CliRunner().invoke(train_main, ["--model", "erfnet-seg", "--out", str(tmp_path / "r")])
    assert_one_error_line(result, "pea-train", 2, "a segmentation net")
