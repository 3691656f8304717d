"""Full-integer TFLite without TensorFlow: litert-torch with torchao's PT2E quantization.

export (strict, so that residual adds carry the source metadata the quantizer matches) ->
prepare_pt2e with litert's symmetric per-channel config -> calibrate on real images ->
convert_pt2e(fold_quantize=False) -> NHWC input wrapper -> litert_torch.convert. The result has
int8 input and output, NHWC input, and integer tensors throughout. litert-torch is an optional extra
(`pea-deploy[tflite]`, about 1.1 GB with jax and transformers).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from .deploy_fold import deployable_copy, transposed_convs_as_subpixel
from .steps import native_output_captured, require, step


def export_tflite_int8(model: nn.Module, calibration: torch.Tensor, path: str | Path) -> Path:
    """Write `model` (eval mode, plain ReLU/ReLU6) as a full-integer int8 TFLite file, calibrated on
    `calibration` (normalised NCHW float images; the file takes NHWC int8, and a per-pixel output,
    e.g. segmentation logits, comes out NHWC too). Returns the path."""
    require("litert_torch", "the int8 TFLite export", "tflite")
    model = deployable_copy(model)
    transposed_convs_as_subpixel(model)
    example = (calibration[:1].contiguous(),)
    with torch.no_grad():
        spatial_output = model(example[0]).dim() == 4
    with native_output_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchao/torch.export deprecation notes, not the user's concern
        with step("TFLite export (loading litert-torch)"):
            import litert_torch
            from litert_torch.quantize import pt2e_quantizer, quant_config
            from torchao.quantization.pt2e import quantize_pt2e

            litert_torch.config.show_progress = False
        with step("TFLite export (torch.export, strict)"):
            graph = torch.export.export(model, example, strict=True).module()
        with step("TFLite int8 calibration (torchao PT2E)"):
            quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
                pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
            prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
            with torch.no_grad():
                for i in range(len(calibration)):  # the exported graph is specialised to batch 1
                    prepared(calibration[i:i + 1])
            quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        with step("TFLite conversion (litert-torch)"):
            nhwc = litert_torch.to_channel_last_io(quantized, args=[0], outputs=[0] if spatial_output else None)
            edge = litert_torch.convert(nhwc, (example[0].permute(0, 2, 3, 1).contiguous(),),
                                        quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
            with atomic_path(path) as tmp:
                edge.export(str(tmp))
    return Path(path)
