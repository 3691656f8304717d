"""The "free at inference" half of PEA's claim, measured in one run: the int8 ReLU artefacts that
pea-export made against the fp32 ReLU net and the fp32 upper-limit net (the same architecture with
the smooth activation, which is what you would ship without PEA), in onnxruntime and the LiteRT
interpreter, batch 1, one thread; plus file sizes.

    python benchmarks/deployed_speed.py RUN_DIR EXPORT_DIR [--runs 200]

RUN_DIR is a finished PEA run, EXPORT_DIR its pea-export output. The fp32 files are written to a
temporary directory; the Act net reuses the trained weights (its accuracy is not the point here).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch

from pea_deploy.export import OnnxRunner, TFLiteRunner, export_onnx, latency_ms, load_trained
from pea_deploy.pea import replace_relus_with_act, strip


def fp32_tflite(model: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    import litert_torch

    from pea_deploy.export.steps import native_output_captured

    litert_torch.config.show_progress = False
    with native_output_captured():
        nhwc = litert_torch.to_channel_last_io(model.eval(), args=[0])
        litert_torch.convert(nhwc, (example.permute(0, 2, 3, 1).contiguous(),)).export(str(path))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("export_dir")
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    trained = load_trained(args.run_dir)
    relu = strip(copy.deepcopy(trained.model)).eval()
    act_name = trained.recipe.pea.act
    act = replace_relus_with_act(copy.deepcopy(relu), act_name).eval()
    example = torch.randn(trained.input_shape)
    export = Path(args.export_dir)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {
            ("onnxruntime", f"fp32 {act_name} (upper limit)"): export_onnx(act, example, tmp / "act.onnx", 17),
            ("onnxruntime", "fp32 ReLU"): export / "model.fp32.onnx",
            ("onnxruntime", "int8 ReLU (QDQ)"): export / "model.int8.onnx",
            ("litert", f"fp32 {act_name} (upper limit)"): fp32_tflite(act, example, tmp / "act.tflite"),
            ("litert", "fp32 ReLU"): fp32_tflite(relu, example, tmp / "relu.tflite"),
            ("litert", "int8 ReLU (full integer)"): export / "model.int8.tflite",
        }
        x = example.numpy()
        results = {}
        for (runtime, label), path in files.items():
            # the paths a CPU deployment runs (optimised graph, XNNPACK), not the reference kernels parity reads
            runner = (OnnxRunner(path, semantics="fused") if runtime == "onnxruntime"
                      else TFLiteRunner(path, kernels="xnnpack"))
            results[(runtime, label)] = (latency_ms(runner, x, runs=args.runs)["median_ms"], path.stat().st_size)
    print(f"# {trained.recipe.name}: {trained.recipe.model.name} width {trained.recipe.model.width:g}, input "
          f"{list(trained.input_shape)}, batch 1, 1 thread, median of {args.runs}, torch {torch.__version__}")
    print("| runtime | model | median ms | size KiB | time vs fp32 upper limit | size vs fp32 upper limit |")
    print("|---|---|---:|---:|---:|---:|")
    for runtime in ("onnxruntime", "litert"):
        base_ms, base_size = next(v for (rt, label), v in results.items() if rt == runtime and "upper" in label)
        for (rt, label), (ms, size) in results.items():
            if rt == runtime:
                print(f"| {rt} | {label} | {ms:.3f} | {size / 1024:.0f} | {ms / base_ms:.2f}x | {size / base_size:.2f}x |")


if __name__ == "__main__":
    main()
