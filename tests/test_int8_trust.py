"""Issue 16: int8 artefacts of a TF-style network (explicit same-padding before stride-2 depthwise
convs, ReLU6, linear bottlenecks) trained on Fashion-MNIST: output fidelity, a clean TFLite graph,
and a per-layer error report that names a broken layer."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from pea_deploy.data.builtin import FASHION_MNIST_DIR, load_fashion_mnist
from pea_deploy.errors import ConfigError
from pea_deploy.export import OnnxRunner, TFLiteRunner, export_onnx, quantize_onnx
from pea_deploy.export.layer_error import ChannelNoise, fake_quantize, ranked
from pea_deploy.export.onnx_layer_error import onnx_layer_errors
from pea_deploy.export.parity import OutputFidelity
from pea_deploy.export.options import ExportOptions
from pea_deploy.verify import load_profile, verify_model
from pea_deploy.verify.reader import read_model

from tf_style_net import fashion_images, trained_tf_style_net, with_activation_outlier

needs_fashion = pytest.mark.skipif(not FASHION_MNIST_DIR.exists(),
                                   reason="Debian package dataset-fashion-mnist not installed")
needs_tflite = pytest.mark.skipif(not __import__("importlib").util.find_spec("litert_torch"),
                                  reason="pea-deploy[tflite] not installed")
# int8 of a healthy net: measured 0.9998 (TFLite) and 0.9999 (ONNX) on this one; the bar
MIN_COSINE = 0.99


@pytest.fixture(scope="module")
def data():
    return load_fashion_mnist()


@pytest.fixture(scope="module")
def net(data):
    return trained_tf_style_net(data)


@pytest.fixture(scope="module")
def images(data):
    calibration, _ = fashion_images(data.val, 32)
    test, _ = fashion_images(data.val, 128, start=1000)
    return calibration, test.numpy()


def _fidelity(runner, model, test: np.ndarray) -> OutputFidelity:
    with torch.no_grad():
        reference = model(torch.from_numpy(test)).numpy()
    fidelity = OutputFidelity()
    fidelity.add(runner(test), reference)
    return fidelity


def _onnx_int8(model, calibration, tmp_path):
    export_onnx(model, calibration[:1], tmp_path / "m.onnx", 17)
    quantize_onnx(tmp_path / "m.onnx", tmp_path / "m.int8.onnx", calibration)
    return tmp_path / "m.onnx", tmp_path / "m.int8.onnx"


@needs_fashion
@needs_tflite
def test_tf_style_net_int8_tflite_is_clean_and_faithful(net, images, tmp_path):
    from pea_deploy.export import export_tflite_int8

    calibration, test = images
    path = export_tflite_int8(net, calibration, tmp_path / "m.int8.tflite")
    ops = Counter(n.op for n in read_model(path).nodes)
    # the same-pads were folded into the depthwise convs (SAME) or kept as NHWC PAD, never in NCHW
    assert not {"QUANTIZE", "DEQUANTIZE", "TRANSPOSE"} & set(ops), ops
    assert ops["PAD"] == 0, ops  # both pads equal the SAME padding of their conv
    assert verify_model(path, load_profile("relu6")).passed
    assert _fidelity(TFLiteRunner(path), net, test).cosine >= MIN_COSINE


@needs_fashion
def test_tf_style_net_int8_onnx_is_faithful(net, images, tmp_path):
    calibration, test = images
    _, int8 = _onnx_int8(net, calibration, tmp_path)
    assert _fidelity(OnnxRunner(int8), net, test).cosine >= MIN_COSINE
    assert verify_model(int8, load_profile("relu6")).passed


@needs_fashion
def test_onnx_layer_report_names_the_outlier_layer_first(net, images, tmp_path):
    broken, module = with_activation_outlier(net)
    calibration, test = images
    fp32, int8 = _onnx_int8(broken, calibration, tmp_path)
    errors = ranked(onnx_layer_errors(fp32, int8, test[:8]))
    assert errors[0].module == module, [(e.module, e.local_sqnr_db) for e in errors[:3]]
    # the outlier's scale crushes the other channels: far below every healthy tensor
    assert errors[0].local_sqnr_db < errors[1].local_sqnr_db - 10
    # and the output fidelity sees it: below the healthy net's
    (tmp_path / "healthy").mkdir()
    _, healthy = _onnx_int8(net, calibration, tmp_path / "healthy")
    assert _fidelity(OnnxRunner(int8), broken, test).cosine < _fidelity(OnnxRunner(healthy), net, test).cosine


@needs_fashion
@needs_tflite
def test_tflite_layer_report_names_the_outlier_layer_first(net, images, tmp_path):
    from pea_deploy.export.tflite_export import pt2e_quantize, write_tflite
    from pea_deploy.export.tflite_layer_error import tflite_layer_errors

    broken, module = with_activation_outlier(net)
    calibration, test = images
    quantized = pt2e_quantize(broken, calibration)
    path = write_tflite(quantized, tmp_path / "broken.tflite")
    errors = ranked(tflite_layer_errors(quantized, path, test[:8]))
    assert errors[0].module == module, [(e.module, e.local_sqnr_db) for e in errors[:3]]
    assert errors[0].local_sqnr_db < errors[1].local_sqnr_db - 10
    # every tensor was found in the LiteRT interpreter, and its accumulated error is finite
    assert all(e.accumulated_sqnr_db is not None for e in errors if e.local_sqnr_db is not None)


def test_channel_noise_is_a_per_channel_median():
    """One loud channel owns a whole-tensor SQNR; the per-channel median sees the quiet ones."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 4, 4)).astype(np.float32)
    x[:, 0] += 300.0
    coarse = fake_quantize(x, 305.0 / 255, -128, -128, 127)
    noise = ChannelNoise()
    noise.add(coarse, x)
    assert noise.median_db() < 5.0                       # 4 of 5 channels crushed to a few levels
    fine = ChannelNoise()
    fine.add(fake_quantize(x[:, 1:], 0.02, 0, -128, 127), x[:, 1:])
    assert fine.median_db() > 30.0                       # a fitting scale: about 40 dB
    exact = ChannelNoise()
    exact.add(x, x)
    assert exact.median_db() == 200.0


def test_output_fidelity_cosine_and_sqnr():
    ref = np.array([[1.0, 0.0], [0.0, 2.0]])
    fidelity = OutputFidelity()
    fidelity.add(ref * 3.0, ref)                          # same directions, 3x the size
    assert fidelity.cosine == pytest.approx(1.0)
    assert fidelity.sqnr_db == pytest.approx(10 * np.log10(5.0 / 20.0), abs=1e-3)  # kept to 3 decimals
    same = OutputFidelity()
    same.add(ref, ref)
    assert same.sqnr_db is None and same.cosine == 1.0


def test_calibration_method_must_apply_to_every_format():
    with pytest.raises(ConfigError, match="entropy does not apply to tflite"):
        ExportOptions(calib_method="entropy").validate()
    with pytest.raises(ConfigError, match="histogram does not apply to onnx"):
        ExportOptions(calib_method="histogram").validate()
    ExportOptions(calib_method="histogram", formats=("tflite",)).validate()
    ExportOptions(calib_method="percentile").validate()
    with pytest.raises(ConfigError, match="min-cosine"):
        ExportOptions(min_cosine=1.5).validate()


@needs_fashion
@needs_tflite
def test_quantization_aware_finetuning_recovers_what_post_training_int8_lost(net, data, images, tmp_path):
    """A 2000x outlier channel costs post-training int8 most of its top-1; a pass of
    quantization-aware fine-tuning over 4,000 training images wins a good part of it back."""
    from pea_deploy.export.qat import qat_finetune
    from pea_deploy.export.tflite_export import export_tflite_int8, write_tflite

    # What an outlier costs post-training int8 depends on the trained net's other channels, whose
    # values move with the CPU's float path: at 1000 the loss measured 6 to 25 points over 3 seeds
    # and 1 or 2 torch threads, too close to a 5-point margin. At 2000 the tensor's int8 step (about 8)
    # exceeds the other channels' values, so post-training int8 is left near chance: measured 11-20 %
    # top-1 against 70-80 % in float (4 runs), and QAT won back 18 to 26 points (a broken QAT: none).
    broken, _ = with_activation_outlier(net, 2000.0)
    calibration, _ = images
    x, y = fashion_images(data.val, 1000, start=2000)
    x, y = x.numpy(), y.numpy()
    ptq = TFLiteRunner(export_tflite_int8(broken, calibration, tmp_path / "ptq.tflite"))(x)
    train_x, train_y = fashion_images(data.train, 4000, start=20000)

    def batches(epoch):
        for i in range(0, len(train_x), 64):
            yield train_x[i:i + 64], train_y[i:i + 64]

    quantized = qat_finetune(broken, calibration, batches, torch.nn.functional.cross_entropy, epochs=1)
    path = write_tflite(quantized, tmp_path / "qat.tflite")
    qat = TFLiteRunner(path)(x)
    with torch.no_grad():
        float_top1 = (broken(torch.from_numpy(x)).argmax(1).numpy() == y).mean()
    ptq_top1, qat_top1 = (ptq.argmax(1) == y).mean(), (qat.argmax(1) == y).mean()
    assert ptq_top1 < float_top1 - 0.3, (float_top1, ptq_top1)    # the case QAT is for
    assert qat_top1 > ptq_top1 + 0.05, (float_top1, ptq_top1, qat_top1)
    ops = Counter(n.op for n in read_model(path).nodes)
    assert not {"QUANTIZE", "DEQUANTIZE", "TRANSPOSE"} & set(ops), ops


def test_quantization_aware_finetuning_refuses_bad_settings():
    from pea_deploy.export.qat import qat_finetune

    with pytest.raises(ConfigError, match="at least 1 epoch"):
        qat_finetune(torch.nn.Linear(2, 2), torch.zeros(2, 2), lambda e: [], torch.nn.functional.mse_loss, epochs=0)
    with pytest.raises(ConfigError, match="--qat-epochs"):
        ExportOptions(qat_epochs=2, formats=("onnx",)).validate()


@needs_tflite
def test_a_relu_after_depth_to_space_is_quantized(tmp_path):
    """A transposed conv exports as conv + depth-to-space; the ReLU after it is no conv's fused
    activation, and litert-torch left it in float (DEQUANTIZE, float RELU) until it got an observer."""
    from pea_deploy.export import export_tflite_int8

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.ConvTranspose2d(8, 8, 3, 2, 1, output_padding=1), torch.nn.ReLU()).eval()
    path = export_tflite_int8(net, torch.randn(8, 8, 16, 16), tmp_path / "up.tflite")
    ops = Counter(n.op for n in read_model(path).nodes)
    assert ops["RELU"] == 1 and not {"QUANTIZE", "DEQUANTIZE"} & set(ops), ops
    assert verify_model(path, load_profile("ethos-u55")).passed   # Vela, where installed, agrees
