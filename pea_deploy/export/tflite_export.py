"""Full-integer TFLite without TensorFlow: litert-torch with torchao's PT2E quantization.

export (strict, so that residual adds carry the source metadata the quantizer matches) ->
prepare_pt2e with litert's symmetric per-channel config, corrected for ReLU6 and pads
(tflite_quantizer) -> calibrate on real images ->
convert_pt2e(fold_quantize=False) -> NHWC input wrapper -> litert_torch.convert. The result has
int8 input and outputs and integer tensors throughout.

I/O layout (`io_layout`): "nhwc" (the default) gives the file an NHWC input and NHWC 4-D outputs,
the TFLite convention that camera pipelines, TFLite Micro applications and Vela's NPU graphs use
(the converter's layout pass then leaves no TRANSPOSE at the edges); "nchw" keeps torch's layout at
the edges, at the cost of TRANSPOSE ops there. A 4-D output of 8 channels on an 8x8 grid cannot
show its layout by its shape, so report.json records it and TFLiteRunner returns outputs in torch's
layout either way. litert-torch is an optional extra
(`pea-deploy[tflite]`, about 1.1 GB with jax and transformers).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from .deploy_fold import deployable_copy, transposed_convs_as_subpixel
from .steps import native_output_captured, require, step
from .tflite_quantizer import TFLITE_CALIBRATION_METHODS, nhwc_constant_pad, tflite_quantizer

__all__ = ["export_tflite_int8", "pt2e_quantize", "write_tflite", "PT2EQuantized", "TFLITE_CALIBRATION_METHODS",
           "IO_LAYOUTS"]

IO_LAYOUTS = ("nhwc", "nchw")


@dataclass
class PT2EQuantized:
    """The PT2E stage of the TFLite export: the int8-simulating torch graph (quantize/dequantize
    nodes around every quantized tensor, BatchNorm folded) and what the converter needs with it."""

    graph: torch.fx.GraphModule
    quantizer: object
    example: torch.Tensor
    spatial_outputs: tuple[int, ...]  # indices of the 4-D outputs (per-pixel maps), in output order


def convertible_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy with the deploy-time rewrites every int8 converter needs."""
    require("litert_torch", "the int8 TFLite export", "tflite")
    model = deployable_copy(model)
    transposed_convs_as_subpixel(model)
    return model


def pt2e_quantize(model: nn.Module, calibration: torch.Tensor, method: str = "histogram") -> PT2EQuantized:
    """Export `model` with torch.export and quantize it with PT2E, calibrated on `calibration`. The
    same inputs give the same scales, so a diagnosis can rebuild what an export quantized."""
    model = convertible_copy(model)
    example = calibration[:1].contiguous()
    with torch.no_grad():
        y = model(example)
    outputs = y if isinstance(y, (tuple, list)) else (y,)
    spatial_outputs = tuple(i for i, t in enumerate(outputs) if t.dim() == 4)
    with native_output_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchao/torch.export deprecation notes, not the user's concern
        with step("TFLite export (loading litert-torch)"):
            from torchao.quantization.pt2e import quantize_pt2e
        with step("TFLite export (torch.export, strict)"):
            graph = torch.export.export(model, (example,), strict=True).module()
        with step("TFLite int8 calibration (torchao PT2E)"):
            quantizer = tflite_quantizer(method)
            prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
            with torch.no_grad():
                for i in range(len(calibration)):  # the exported graph is specialised to batch 1
                    prepared(calibration[i:i + 1])
            quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    return PT2EQuantized(quantized, quantizer, example, spatial_outputs)


def export_tflite_int8(model: nn.Module, calibration: torch.Tensor, path: str | Path, *,
                       method: str = "histogram") -> Path:
    """Write `model` (eval mode, plain ReLU/ReLU6) as a full-integer int8 TFLite file, calibrated on
    `calibration` (normalised NCHW float images; the file takes NHWC int8, and a per-pixel output,
    e.g. segmentation logits, comes out NHWC too) with activation ranges chosen by `method` (one of
    TFLITE_CALIBRATION_METHODS). Returns the path."""
    return write_tflite(pt2e_quantize(model, calibration, method), path)


def write_tflite(quantized: PT2EQuantized, path: str | Path, io_layout: str = "nhwc") -> Path:
    """Convert a PT2E-quantized graph (pt2e_quantize, or qat.qat_finetune) to a TFLite file whose
    4-D input and outputs are in `io_layout` (see the module's docstring)."""
    if io_layout not in IO_LAYOUTS:
        raise ValueError(f"io_layout must be one of {IO_LAYOUTS}, got {io_layout!r}")
    with native_output_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with step("TFLite export (loading litert-torch)"):
            import litert_torch
            from litert_torch.quantize import quant_config

            litert_torch.config.show_progress = False
            nhwc_constant_pad()
        with step("TFLite conversion (litert-torch)"):
            graph, example = quantized.graph, quantized.example
            if io_layout == "nhwc":
                graph = litert_torch.to_channel_last_io(graph, args=[0], outputs=list(quantized.spatial_outputs) or None)
                example = example.permute(0, 2, 3, 1).contiguous()
            edge = litert_torch.convert(graph, (example,),
                                        quant_config=quant_config.QuantConfig(pt2e_quantizer=quantized.quantizer))
            with atomic_path(path) as tmp:
                edge.export(str(tmp))
    return Path(path)
