"""Versions of everything that shaped an artefact, for report.json: a re-export must be reproducible."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("pea-deploy", "torch", "numpy", "onnx", "onnxruntime", "onnxsim", "onnxscript",
            "ai-edge-litert", "litert-torch", "torchao", "ethos-u-vela", "tflite-micro")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found
