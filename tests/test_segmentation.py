"""Segmentation building blocks (issue 6 in progress): the ERFNet encoder-decoder, the procedural
shapes set, mIoU, and that the net survives PEA strip + ONNX/TFLite export + the op checker."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

from pea_deploy.data.segmentation import (IGNORE_INDEX, confusion_matrix, iou_per_class, make_shapes,
                                          mean_iou)
from pea_deploy.export import export_onnx, export_tflite_int8
from pea_deploy.nets import build_net
from pea_deploy.pea import convert, set_alpha, strip
from pea_deploy.verify import load_profile, verify_model


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


def test_erfnet_segmentation_trains_with_pea():
    """Real PEA training steps on the shapes: per-pixel logits at input size, loss going down while
    alpha ramps to 1, the ignore index honoured. (Learning the shapes needs far more steps than a
    unit test affords; the recipe and its mIoU are the unfinished part of issue 6.)"""
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
        loss = F.cross_entropy(logits, masks[idx], ignore_index=IGNORE_INDEX)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    assert net.decoder[-1].weight.grad.abs().sum() > 0


def test_segmentation_net_exports_and_passes_the_checker(tmp_path):
    """Upsampling by transposed convolution must be allowed by the profiles that claim it."""
    net = convert(build_net("erfnet-seg", 4, 3, width=0.125, dropout=0.0), act="gelu")
    set_alpha(net, 1.0)
    relu = strip(net).eval()
    example = torch.randn(1, 3, 32, 32)
    onnx_path = export_onnx(relu, example, tmp_path / "seg.onnx", 17)
    report = verify_model(onnx_path, load_profile("relu-only"))
    assert report.passed, [v.message for v in report.violations]
    assert "ConvTranspose" in report.op_counts
    assert "BatchNormalization" not in report.op_counts      # the downsampler BN was folded
    if importlib.util.find_spec("litert_torch"):
        # litert-torch 0.10 cannot lower an int8 ConvTranspose2d (measured: "failed to legalize
        # mhlo.convolution"); until it can, the failure must come out as one named step.
        from pea_deploy.errors import ExportStepError

        try:
            tfl = export_tflite_int8(relu, torch.randn(4, 3, 32, 32), tmp_path / "seg.tflite")
        except ExportStepError as e:
            assert str(e).startswith("TFLite conversion (litert-torch) failed")
            assert not (tmp_path / "seg.tflite").exists()
        else:
            report = verify_model(tfl, load_profile("ethos-u55"))
            assert "TRANSPOSE_CONV" in report.op_counts
            assert not [v for v in report.violations if v.reason_code.startswith("activation")]


@pytest.mark.parametrize("name", ["erfnet", "erfnet-seg"])
def test_downsampler_batchnorm_folds_for_deployment(name):
    from pea_deploy.export.deploy_fold import deployable_copy

    net = build_net(name, 4, 3, width=0.25, dropout=0.0)
    net.train()
    with torch.no_grad():  # give the BatchNorms real running statistics
        for _ in range(3):
            net(torch.randn(8, 3, 32, 32) * 2 + 0.5)
    net.eval()
    folded = deployable_copy(net)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and type(p).__name__ == "DownsamplerBlock"
                   for p in folded.modules() for m in p.children())
