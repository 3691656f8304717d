"""litert-torch's PT2E quantizer, corrected where it costs int8 accuracy or a clean graph.

Measured on depthwise-separable ReLU6 nets (issue 16):
- litert-torch shares a ReLU6's (hardtanh's) observer with its input, so a conv + ReLU6 output is
  quantized over the conv's pre-activation range, negatives included: about half of the 256 int8
  levels go to values ReLU6 has already clamped to 0. Here conv/linear + hardtanh is annotated as
  litert-torch annotates conv + relu (one observer, after the activation), and any other hardtanh
  or ReLU (after a depth-to-space, say) gets its own output observer instead of running in float. For quantization-aware training the same holds with the BatchNorm
  still in the graph (conv + BatchNorm + ReLU6/ReLU, conv + BatchNorm).
- An explicit zero pad (TF-style "same" padding before a stride-2 conv) gets an observer of its own,
  which becomes a requantizing QUANTIZE op; a pad only adds zeros, so it shares its input's.
- litert-torch's NHWC layout pass has no rule for a constant pad, so each pad sits between two
  TRANSPOSE ops in NCHW. `nhwc_constant_pad()` adds that rule; the converter then folds a pad equal
  to the conv's SAME padding into the conv and keeps any other pad as one NHWC PAD.
"""

from __future__ import annotations

import dataclasses

import torch
from torch.fx import Node

from ..errors import ConfigError, unknown_name

aten = torch.ops.aten
_MATMULS = (aten.conv1d.default, aten.conv2d.default, aten.convolution.default, aten.linear.default)
_CLAMPS = (aten.hardtanh.default, aten.hardtanh_.default)
_PADS = (aten.pad.default, aten.constant_pad_nd.default)
_BATCH_NORMS = (aten.batch_norm.default, aten._native_batch_norm_legit.default,
                aten._native_batch_norm_legit_no_training.default)
_RELUS = (aten.relu.default, aten.relu_.default)
TFLITE_CALIBRATION_METHODS = ("minmax", "histogram", "percentile")  # calibration_observers


def _call(node, targets) -> bool:
    return isinstance(node, Node) and node.op == "call_function" and node.target in targets


def tflite_quantizer(method: str = "histogram", qat: bool = False):
    """litert-torch's symmetric per-channel int8 quantizer with activation ranges chosen by `method`
    (calibration_observers), ReLU6 observed after the clamp and pads sharing their input's scale."""
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.pt2e_quantizer_utils import (get_bias_qspec, get_input_act_qspec,
                                                            get_output_act_qspec, get_weight_qspec)
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    from .calibration_observers import ACTIVATION_OBSERVERS

    if method not in ACTIVATION_OBSERVERS:
        raise unknown_name("TFLite calibration method", method, TFLITE_CALIBRATION_METHODS)
    config = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_qat=qat)
    if not qat:
        observer = ACTIVATION_OBSERVERS[method].with_args(eps=2 ** -12)
        act = dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=observer)
        config = dataclasses.replace(config, input_activation=act, output_activation=act)

    class Quantizer(pt2e_quantizer.PT2EQuantizer):
        # litert-torch 0.10's QAT conv+BatchNorm annotators fail on this torch (they hand
        # torch.export a function); the chains below annotate those patterns instead
        STATIC_QAT_ONLY_OPS: list = []

        def annotate(self, model):
            cfg = self.global_config
            for n in model.graph.nodes:
                chain = _fused_chain(n)
                if chain is None:
                    continue
                qmap = {n.args[0]: get_input_act_qspec(cfg), n.args[1]: get_weight_qspec(cfg)}
                if len(n.args) > 2 and isinstance(n.args[2], Node):
                    qmap[n.args[2]] = get_bias_qspec(cfg)
                n.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map=qmap, _annotated=True)
                for inner in chain[1:-1]:
                    inner.meta["quantization_annotation"] = QuantizationAnnotation(_annotated=True)
                chain[-1].meta["quantization_annotation"] = QuantizationAnnotation(
                    output_qspec=get_output_act_qspec(cfg), _annotated=True)
            model = super().annotate(model)
            for n in model.graph.nodes:
                if n.meta.get("quantization_annotation") is not None:
                    continue
                source = n.args[0] if n.args else None
                if not isinstance(source, Node):
                    continue
                if _call(n, _CLAMPS) or _call(n, _RELUS):
                    n.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={source: get_input_act_qspec(cfg)},
                        output_qspec=get_output_act_qspec(cfg), _annotated=True)
                elif _call(n, _PADS) and _zero_pad(n) and _has_output_qspec(source):
                    shared = SharedQuantizationSpec(source)
                    n.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={source: shared}, output_qspec=shared, _annotated=True)
            return model

    return Quantizer().set_global(config)


def _fused_chain(node: Node) -> list[Node] | None:
    """[conv/linear, (BatchNorm), ReLU6 (or ReLU, after a BatchNorm)] when `node` starts such a chain
    whose inner outputs feed only the next link: what the converter fuses into one int8 op, observed
    once after its last link. None for other nodes (litert-torch's own annotators take those)."""
    if not _call(node, _MATMULS):
        return None
    chain = [node]
    while len(chain[-1].users) == 1:
        user = next(iter(chain[-1].users))
        if _call(user, _BATCH_NORMS) and len(chain) == 1:
            chain.append(user)
        elif _call(user, _CLAMPS) or (_call(user, _RELUS) and len(chain) == 2):
            chain.append(user)
            break
        else:
            break
    return chain if len(chain) > 1 else None


def _has_output_qspec(node: Node) -> bool:
    """Whether `node`'s output is quantized by its own annotation (a model input is not: litert-torch
    quantizes it on its consumer's input edge, which a pad can not share)."""
    annotation = node.meta.get("quantization_annotation")
    return annotation is not None and annotation.output_qspec is not None


def _zero_pad(node: Node) -> bool:
    if node.target == aten.pad.default:
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value")
        return mode == "constant" and not value
    value = node.args[2] if len(node.args) > 2 else node.kwargs.get("value", 0)
    return not value


def _constant_pad_nhwc(x, pad, value=0.0):
    """aten.constant_pad_nd of an NCHW pad list (W, then H, then C pairs) on the NHWC tensor."""
    pad = list(pad) + [0] * (6 - len(pad))
    left, right, top, bottom, front, back = pad[:6]
    return aten.constant_pad_nd.default(x, [front, back, left, right, top, bottom], value)


def nhwc_constant_pad() -> bool:
    """Teach litert-torch's layout pass to keep a 4-D constant pad in NHWC. Returns False when this
    litert-torch has no such pass where 0.10 has it (the pad then stays between TRANSPOSEs, and the
    op check reports them)."""
    try:
        from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import layout_rewrite
    except ImportError:
        return False
    rewriters = getattr(layout_rewrite, "rewriters", None)
    if rewriters is None:
        return False
    if aten.constant_pad_nd.default not in rewriters:
        def rewrite(node):
            if len(node.args[1]) > 6:  # a pad of the batch axis has no NHWC form here
                raise ConfigError("a pad of the batch axis cannot be exported to TFLite")
            node.target = _constant_pad_nhwc

        rewriters.register(aten.constant_pad_nd.default)(rewrite)
    return True
