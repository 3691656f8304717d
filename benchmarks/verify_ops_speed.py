"""Time pea-verify-ops on a large model: ResNet-50 (ImageNet stem, 224x224, ~100 MB) as ONNX, and a
TFLite flatbuffer with as many operators (built with LiteRT's schema, weights included).

    python benchmarks/verify_ops_speed.py

Prints the check time per model (read + all rules), and its ratio to the time to read the file.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from verify_models import write_tflite  # noqa: E402

from pea_deploy.nets import build_net  # noqa: E402
from pea_deploy.verify import load_profile, verify_model  # noqa: E402


def main() -> None:
    d = Path(tempfile.mkdtemp())
    net = build_net("resnet50", 1000, 3).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, 224, 224),), str(d / "r50.onnx"), opset_version=17, dynamo=False)
    tfl = write_tflite(d / "big.tflite", [("CONV_2D", "RELU")] * 200 + [("ADD", "RELU6")] * 100)
    profile = load_profile("relu6")
    for path in (d / "r50.onnx", tfl):
        t0 = time.perf_counter()
        path.read_bytes()
        read = time.perf_counter() - t0
        verify_model(path, profile)  # warm: imports onnx / the schema once
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            rep = verify_model(path, profile)
            runs.append(time.perf_counter() - t0)
        best = min(runs)
        print(f"{path.name}: {path.stat().st_size / 2**20:.1f} MiB, {rep.nodes} nodes, verdict {rep.verdict}: "
              f"check {1e3 * best:.0f} ms (best of 3), {best / max(read, 1e-9):.1f}x the raw file read")


if __name__ == "__main__":
    main()
