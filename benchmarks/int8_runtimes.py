"""How far each runtime's int8 result is from the file's reference semantics, on a run's validation
split: the figures in docs/results.md for why parity gates on onnxruntime's QDQ reference and LiteRT's
reference kernels.

    python benchmarks/int8_runtimes.py runs/default runs/default/export/ethos-u55

Each row: images whose output differs from the reference at all, the largest difference in output
quantization steps (LSB), and the mean output cosine to the reference. Run it under an emulated
AVX2-only CPU to see onnxruntime's fused kernels saturate:

    PEA_DEPLOY_CPU_KERNELS=0 qemu-x86_64 -cpu Haswell .venv/bin/python benchmarks/int8_runtimes.py ...
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from pea_deploy.export import OnnxRunner, TFLiteRunner, load_trained
from pea_deploy.export.host_cpu import int8_isa
from pea_deploy.export.parity import OutputFidelity
from pea_deploy.export.samples import load_splits, validation_inputs


def compare(name: str, reference: np.ndarray, out: np.ndarray, step: float) -> str:
    fidelity = OutputFidelity()
    fidelity.add(out, reference)
    lsb = np.abs(out.astype(np.float64) - reference) / step
    differs = int((lsb.reshape(len(lsb), -1).max(1) > 0.5).sum())
    return f"| {name} | {differs} of {len(out)} | {lsb.max():.0f} | {fidelity.cosine:.5f} |"


def main(run: str, export_dir: str) -> None:
    trained = load_trained(run)
    x = validation_inputs(trained, load_splits(trained)).images.numpy()
    export = Path(export_dir)
    print(f"# {trained.recipe.name}: {len(x)} validation images, this CPU's int8 ISA: {int8_isa()}\n")
    print("| runtime | images whose output differs from the reference | max diff (output LSB) | cosine to reference |")
    print("|---|---:|---:|---:|")
    onnx_path = export / "model.int8.onnx"
    if onnx_path.exists():
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(onnx_path))
        consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        last_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"][-1]
        step = float(consts[last_dq.input[1]])
        ref = OnnxRunner(onnx_path, semantics="reference")(x)
        print(compare("onnxruntime, QDQ reference (the reference)", ref, ref, step))
        print(compare(f"onnxruntime, fused int8 kernels ({int8_isa()})", ref,
                      OnnxRunner(onnx_path, semantics="fused")(x), step))
    tflite_path = export / "model.int8.tflite"
    if tflite_path.exists():
        reference = TFLiteRunner(tflite_path, kernels="reference")
        step = float(reference.out["quantization"][0])
        ref = reference(x)
        print(compare("LiteRT reference kernels (the reference)", ref, ref, step))
        print(compare("LiteRT optimised kernels", ref, TFLiteRunner(tflite_path, kernels="builtin")(x), step))
        print(compare("LiteRT XNNPACK (its default)", ref, TFLiteRunner(tflite_path, kernels="xnnpack")(x), step))
        if importlib.util.find_spec("tflite_micro"):
            from pea_deploy.export.tflm import TFLMRunner

            print(compare("TFLite Micro", ref, TFLMRunner(tflite_path)(x), step))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
