"""How faithful the int8 artefacts of a TF-style network are (issue 16), before and after the TFLite
quantizer corrections, measured in one run.

    python benchmarks/int8_fidelity.py [--train-images 12000] [--test-images 1000] [--outlier 1000]
                                       [--qat-images 12000]

Trains tests/tf_style_net.py's network on Fashion-MNIST (explicit ZeroPad2d same-padding before
stride-2 depthwise convs, ReLU6, linear bottlenecks), exports int8 ONNX (onnxruntime QDQ) and int8
TFLite two ways: as litert-torch's own PT2E quantizer does it ("litert-torch as shipped": ReLU6 on
its input's scale, pads in NCHW), and as pea-deploy does it now. Prints, per artefact, the logit
cosine and SQNR to torch, top-1 agreement with torch, top-1, and the QUANTIZE / DEQUANTIZE /
TRANSPOSE ops inside the graph. `--outlier V` does the same for the copy with an activation outlier
of V in one bottleneck channel, prints its worst tensors, and adds one epoch of quantization-aware
fine-tuning over `--qat-images` training images (images the net was not trained on).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tf_style_net import fashion_images, trained_tf_style_net, with_activation_outlier  # noqa: E402

from pea_deploy.data.builtin import load_fashion_mnist  # noqa: E402
from pea_deploy.export import OnnxRunner, TFLiteRunner, export_onnx, quantize_onnx  # noqa: E402
from pea_deploy.export.parity import OutputFidelity  # noqa: E402
from pea_deploy.verify.reader import read_model  # noqa: E402

INSIDE = ("QUANTIZE", "DEQUANTIZE", "TRANSPOSE")


def litert_as_shipped(model, calibration, path):
    """litert-torch 0.10's documented PT2E route, without pea-deploy's corrections. Run before any
    pea-deploy export in the process: that teaches litert-torch's layout pass the NHWC pad."""
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer, quant_config
    from torchao.quantization.pt2e import quantize_pt2e

    litert_torch.config.show_progress = False

    example = calibration[:1]
    graph = torch.export.export(model, (example,), strict=True).module()
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
    prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for i in range(len(calibration)):
            prepared(calibration[i:i + 1])
    quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    nhwc = litert_torch.to_channel_last_io(quantized, args=[0])
    edge = litert_torch.convert(nhwc, (example.permute(0, 2, 3, 1).contiguous(),),
                                quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
    edge.export(str(path))
    return path


def row(name, runner, model, x, y, path=None):
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    out = runner(x)
    fidelity = OutputFidelity()
    fidelity.add(out, ref)
    ops = Counter(n.op for n in read_model(path).nodes) if path else Counter()
    inside = ", ".join(f"{ops[o]} {o}" for o in INSIDE if ops[o]) or "none"
    print(f"| {name} | {fidelity.cosine:.4f} | {fidelity.sqnr_db:.1f} | {100 * (out.argmax(1) == ref.argmax(1)).mean():.1f} "
          f"| {100 * (out.argmax(1) == y).mean():.2f} | {inside} |")


def measure(model, before: Path, calibration, x, y, work: Path, label: str):
    from pea_deploy.export import export_tflite_int8

    with torch.no_grad():
        top1 = 100 * (model(torch.from_numpy(x)).argmax(1).numpy() == y).mean()
    print(f"\n{label}: torch fp32 top-1 {top1:.2f} % on {len(x)} Fashion-MNIST test images\n")
    print("| artefact | logit cosine to torch | SQNR dB | top-1 agreement % | top-1 % | QUANTIZE/DEQUANTIZE/TRANSPOSE inside |")
    print("|---|---:|---:|---:|---:|---|")
    export_onnx(model, calibration[:1], work / "m.onnx", 17)
    quantize_onnx(work / "m.onnx", work / "m.int8.onnx", calibration)
    row("int8 ONNX (onnxruntime QDQ, minmax)", OnnxRunner(work / "m.int8.onnx"), model, x, y)
    row("int8 TFLite, litert-torch as shipped", TFLiteRunner(before), model, x, y, before)
    for method in ("histogram", "minmax", "percentile"):
        after = export_tflite_int8(model, calibration, work / f"after-{method}.tflite", method=method)
        row(f"int8 TFLite, pea-deploy ({method})", TFLiteRunner(after), model, x, y, after)
    return work / "after-histogram.tflite"


def qat_row(model, data, calibration, x, y, work: Path, images: int):
    from pea_deploy.export.qat import qat_finetune
    from pea_deploy.export.tflite_export import write_tflite

    train_x, train_y = fashion_images(data.train, images, start=20000)

    def batches(epoch):
        for i in range(0, len(train_x), 64):
            yield train_x[i:i + 64], train_y[i:i + 64]

    quantized = qat_finetune(model, calibration, batches, torch.nn.functional.cross_entropy, epochs=1)
    path = write_tflite(quantized, work / "qat.tflite")
    print(f"\nAfter quantization-aware fine-tuning, 1 epoch over {images} training images "
          "(cosine and agreement against the net before fine-tuning):\n")
    print("| artefact | logit cosine to torch | SQNR dB | top-1 agreement % | top-1 % | QUANTIZE/DEQUANTIZE/TRANSPOSE inside |")
    print("|---|---:|---:|---:|---:|---|")
    row("int8 TFLite, pea-deploy QAT", TFLiteRunner(path), model, x, y, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-images", type=int, default=12000)
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--outlier", type=float, default=0.0)
    parser.add_argument("--qat-images", type=int, default=12000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    data = load_fashion_mnist()
    net = trained_tf_style_net(data, args.train_images)
    calibration, _ = fashion_images(data.val, 32)
    x, y = fashion_images(data.val, args.test_images, start=1000)
    x, y = x.numpy(), y.numpy()
    broken, module = with_activation_outlier(net, args.outlier or 1.0)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "outlier").mkdir()
        before = litert_as_shipped(net, calibration, work / "before.tflite")
        if args.outlier:
            broken_before = litert_as_shipped(broken, calibration, work / "outlier" / "before.tflite")
        measure(net, before, calibration, x, y, work, "TF-style net")
        if args.outlier:
            from pea_deploy.export.layer_error import markdown_table
            from pea_deploy.export.tflite_layer_error import tflite_layer_errors

            tflite = measure(broken, broken_before, calibration, x, y, work / "outlier",
                             f"the same net with an activation outlier of {args.outlier:g} in {module}")
            print()
            from pea_deploy.export.tflite_export import pt2e_quantize

            errors = tflite_layer_errors(pt2e_quantize(broken, calibration), tflite, x[:16])
            print("\n".join(markdown_table(errors, 5)))
            qat_row(broken, data, calibration, x, y, work / "outlier", args.qat_images)


if __name__ == "__main__":
    main()
