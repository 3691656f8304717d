"""Versions of everything that shaped an artefact, for report.json: a re-export must be reproducible."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("pea-deploy", "torch", "numpy", "onnx", "onnxruntime", "onnxsim", "onnxscript",
            "ai-edge-litert", "litert-torch", "torchao", "ethos-u-vela", "tflite-micro",
            "executorch")


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    return {"python": platform.python_version(), **{name: package_version(name) for name in PACKAGES}}
