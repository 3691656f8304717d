"""fp32 ONNX: torch.onnx export in eval mode (BatchNorm folded into Conv), onnxsim, onnx.checker.

Opset >= 18 goes through torch's default dynamo exporter with the weights inside the file
(`external_data=False`: one self-contained artefact). Below 18 the TorchScript exporter is used:
the dynamo exporter emits 18 and its down-conversion fails on ReduceMean's axes input.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from .deploy_fold import deployable_copy
from .steps import step


def _export_bytes(model: nn.Module, example: torch.Tensor, opset: int, output_names: list[str]) -> bytes:
    names = {"input_names": ["input"], "output_names": output_names}
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" notes on every export
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if opset >= 18:
                program = torch.onnx.export(model, (example,), None, opset_version=opset, dynamo=True,
                                            external_data=False, verbose=False, **names)
                return program.model_proto.SerializeToString()
            buf = io.BytesIO()
            torch.onnx.export(model, (example,), buf, opset_version=opset, dynamo=False,
                              do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL, **names)
            return buf.getvalue()
    finally:
        quiet.setLevel(level)


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path, opset: int = 17,
                output_names: list[str] | None = None) -> Path:
    """Write `model` (eval mode, plain ReLU/ReLU6) as a simplified, checked fp32 ONNX file with a
    static input of `example`'s shape; a model with several outputs returns them as a flat tuple
    (outputs.FlatOutputs), named by `output_names`. Returns the path."""
    import onnx
    import onnxsim

    model = deployable_copy(model)
    with step(f"ONNX export (torch.onnx, opset {opset})"):
        proto = onnx.load_from_string(_export_bytes(model, example, opset, output_names or ["logits"]))
    with step("ONNX simplification (onnxsim)"):
        simplified, ok = onnxsim.simplify(proto)
        if not ok:
            raise RuntimeError("onnxsim could not validate the simplified model")
    with step("ONNX check (onnx.checker)"):
        onnx.checker.check_model(simplified, full_check=True)
    with atomic_path(path) as tmp:
        onnx.save_model(simplified, str(tmp))
    return Path(path)
