"""Int8 ExecuTorch programs (.pte) for the XNNPACK delegate, and the ExecuTorch runtime that runs them.

torch.export (strict) -> XNNPACKQuantizer (symmetric, per-channel weights; its own histogram
observers) -> calibrate on real images -> convert_pt2e -> torch.export -> to_edge_transform_and_lower
with the XNNPACK partitioner -> to_executorch. The program takes and returns float32 NCHW tensors and
quantizes inside the delegate, as an application on an Arm Cortex-A or x86 CPU calls it.

Measured (executorch 1.5.1): the runtime's outputs are within one output LSB of the fake-quantized
torch graph the program was lowered from (requantization rounds float sums accumulated in another
order), and bit-identical on AVX-512 VNNI and an emulated AVX2-only CPU (where onnxruntime's int8
kernels saturate): its parity row gates, as the reference rows do. The Arm Ethos-U backend of ExecuTorch is not offered
here: it pins ethos-u-vela 5.1, ml_dtypes 0.5.1 and numpy < 2.2 (tosa-tools) against this package's
Vela 5.2 and onnx 1.23; see docs/pea-export.md (step 9).

`executorch` is an optional extra (`pea-deploy[executorch]`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path
from .deploy_fold import deployable_copy
from .outputs import one_or_list
from .steps import native_output_captured, require, step

EXTRA = "executorch"


def export_pte_int8(model: nn.Module, calibration: torch.Tensor, path: str | Path) -> Path:
    """Write `model` (eval mode, plain ReLU/ReLU6) as an int8 XNNPACK ExecuTorch program calibrated
    on `calibration` (normalised NCHW float images). Returns the path."""
    return write_pte(xnnpack_quantize(model, calibration), calibration[:1].contiguous(), path)


def xnnpack_quantize(model: nn.Module, calibration: torch.Tensor) -> torch.fx.GraphModule:
    """The fake-quantized torch graph (quantize/dequantize around every int8 tensor) that the
    program is lowered from, calibrated one image per call: the program is specialised to batch 1,
    as a device runs it."""
    require("executorch", "the ExecuTorch export (--formats pte)", EXTRA)
    model = deployable_copy(model)
    example = calibration[:1].contiguous()
    with native_output_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export / torchao deprecation notes, not the user's concern
        with step("ExecuTorch export (loading executorch)"):
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer, get_symmetric_quantization_config)
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        with step("ExecuTorch export (torch.export, strict)"):
            graph = torch.export.export(model, (example,), strict=True).module()
        with step("ExecuTorch int8 calibration (XNNPACK quantizer)"):
            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            prepared = prepare_pt2e(graph, quantizer)
            with torch.no_grad():
                for i in range(len(calibration)):
                    prepared(calibration[i:i + 1])
            return convert_pt2e(prepared)


def write_pte(quantized: torch.fx.GraphModule, example: torch.Tensor, path: str | Path) -> Path:
    """Lower a fake-quantized graph (xnnpack_quantize) to the XNNPACK delegate and write the program."""
    with native_output_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with step("ExecuTorch lowering to XNNPACK"):
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower

            program = torch.export.export(quantized, (example,), strict=True)
            lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
            with atomic_path(path) as tmp:
                Path(tmp).write_bytes(lowered.buffer)
    return Path(path)


class ExecuTorchRunner:
    """An ExecuTorch program's `forward` in the ExecuTorch runtime (the portable kernels and the
    XNNPACK delegate this wheel ships), one sample at a time."""

    kind = "ExecuTorch, XNNPACK"

    def __init__(self, path: str | Path):
        require("executorch", "running an ExecuTorch program", EXTRA)
        path = Path(path)
        with native_output_captured(), step(f"loading {path.name} in the ExecuTorch runtime"):
            from executorch.runtime import Runtime

            self.method = Runtime.get().load_program(path).load_method("forward")
            if self.method is None:
                raise ValueError("the program has no forward method")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        rows = []
        with step("ExecuTorch inference"):
            for sample in x:
                out = self.method.execute([torch.from_numpy(np.ascontiguousarray(sample[None], dtype=np.float32))])
                rows.append([t.numpy().copy() for t in out])
        return one_or_list([np.concatenate([r[k] for r in rows]) for k in range(len(rows[0]))])
