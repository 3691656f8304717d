"""Quantization-aware fine-tuning: the recovery route when post-training int8 loses too much.

The ReLU network (every alpha already 1) is exported with a dynamic batch, prepared with torchao's
PT2E QAT and the same quantizer as the post-training path (tflite_quantizer, qat=True: fake-quantized
weights and activations, BatchNorm kept and folded at the end), fine-tuned for a few epochs with the
task's own loss, then converted exactly as a post-training graph is (tflite_export.write_tflite).

    quantized = qat_finetune(relu_net, calibration, batches, loss, epochs=2)
    write_tflite(quantized, "model.int8.tflite")
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterable

import torch
from torch import nn

from ..errors import ConfigError
from .steps import native_output_captured, step
from .tflite_export import PT2EQuantized, convertible_copy
from .tflite_quantizer import tflite_quantizer

Batches = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def qat_finetune(model: nn.Module, calibration: torch.Tensor, batches: Batches,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, epochs: int = 2,
                 lr: float = 1e-3, log=None) -> PT2EQuantized:
    """Fine-tune `model` with fake int8 quantization for `epochs` passes over `batches(epoch)`
    (normalised NCHW float images, targets) with SGD (momentum 0.9) at `lr`, minimising
    `loss(outputs, targets)`. `calibration` gives the example shapes. Returns the converted graph."""
    if epochs < 1:
        raise ConfigError(f"quantization-aware training needs at least 1 epoch, got {epochs}")
    if not lr > 0:
        raise ConfigError(f"the quantization-aware training learning rate must be > 0, got {lr}")
    say = log or (lambda msg: None)
    net = convertible_copy(model)  # a copy: the caller's model is not trained
    example = calibration[:1].contiguous()
    with torch.no_grad():
        spatial_outputs = (0,) if net(example).dim() == 4 else ()  # pea-train's nets: one output
    net.train()
    with native_output_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with step("quantization-aware training (loading torchao)"):
            from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e
        with step("quantization-aware training (torch.export with a dynamic batch)"):
            batch = torch.export.Dim("batch", min=1)
            two = calibration[:2] if len(calibration) > 1 else calibration[:1].repeat(2, 1, 1, 1)
            graph = torch.export.export(net, (two.contiguous(),), dynamic_shapes=({0: batch},), strict=True).module()
        with step("quantization-aware training (torchao PT2E prepare)"):
            quantizer = tflite_quantizer(qat=True)
            prepared = quantize_pt2e.prepare_qat_pt2e(graph, quantizer)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=lr, momentum=0.9)
    for epoch in range(epochs):
        total, steps = 0.0, 0
        with step(f"quantization-aware training (epoch {epoch + 1})"):
            for images, targets in batches(epoch):
                value = loss(prepared(images), targets)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                total, steps = total + float(value.detach()), steps + 1
        if steps == 0:
            raise ConfigError("quantization-aware training got no training batches")
        say(f"quantization-aware training epoch {epoch + 1}/{epochs}: mean loss {total / steps:.4f} over {steps} steps")
    with native_output_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with step("quantization-aware training (convert)"):
            move_exported_model_to_eval(prepared)
            converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    return PT2EQuantized(converted, quantizer, example, spatial_outputs)
