"""Real models for the checker's tests: exported by torch.onnx, quantized by onnxruntime, and
TFLite flatbuffers written with LiteRT's own schema and run in the LiteRT interpreter."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from pea_deploy.nets import build_net
from pea_deploy.pea import convert, set_alpha, strip


class TanhGELU(nn.Module):
    def forward(self, x):
        return nn.functional.gelu(x, approximate="tanh")


class DecomposedSiLU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class DecomposedMish(nn.Module):
    def forward(self, x):
        return x * torch.tanh(nn.functional.softplus(x))


ACTIVATIONS = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU, "gelu-tanh": TanhGELU, "silu": nn.SiLU,
    "silu-decomposed": DecomposedSiLU, "mish": nn.Mish, "mish-decomposed": DecomposedMish,
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "softplus": nn.Softplus, "softsign": nn.Softsign,
    "elu": nn.ELU, "selu": nn.SELU, "celu": nn.CELU, "leaky-relu": nn.LeakyReLU, "prelu": nn.PReLU,
    "hardsigmoid": nn.Hardsigmoid, "hardswish": nn.Hardswish, "hardtanh": nn.Hardtanh,
}


def tiny_cnn(act: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), act, nn.Conv2d(8, 8, 3, padding=1), act,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


def export_onnx(model: nn.Module, path: Path, opset: int, shape=(1, 3, 16, 16)) -> Path:
    x = torch.randn(*shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if opset >= 18:
            torch.onnx.export(model, (x,), str(path), opset_version=opset, dynamo=True,
                              external_data=False, verbose=False)
        else:
            torch.onnx.export(model, (x,), str(path), opset_version=opset, dynamo=False)
    return path


def pea_net(alpha: float, act: str = "gelu") -> nn.Module:
    net = convert(tiny_cnn(nn.ReLU()), act=act)
    set_alpha(net, alpha)
    return net.eval()


def stripped_resnet() -> nn.Module:
    net = convert(build_net("resnet18", 10, 3, stem="small", width=0.25), act="gelu")
    set_alpha(net, 1.0)
    return strip(net).eval()


def quantize_qdq(fp32: Path, out: Path, shape=(1, 3, 16, 16)) -> Path:
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.items = iter([{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.items, None)

    import onnx
    name = onnx.load(str(fp32)).graph.input[0].name

    class NamedReader(Reader):
        def get_next(self):
            item = super().get_next()
            return None if item is None else {name: item["input"]}

    quantize_static(str(fp32), str(out), NamedReader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return out


def write_tflite(path: Path, ops: list[tuple[str, str]], dtype: str = "float32", custom: str | None = None) -> Path:
    """A TFLite chain of 1x1 convs / unary ops on a [1, 4, 4, 2] input, written with LiteRT's schema.

    ops: (op name, fused activation) pairs, e.g. ("CONV_2D", "RELU6"), ("LOGISTIC", "NONE").
    dtype int8 gives every tensor int8 (biases int32) with a quantization scale of 0.05.
    """
    import numpy as np

    from pea_deploy.agreement.tflite_writer import TFLiteBuilder

    model = TFLiteBuilder()
    s, tensor = model.s, model.tensor
    ttype = {"float32": s.TensorType.FLOAT32, "int8": s.TensorType.INT8}[dtype]
    np_type = {"float32": np.float32, "int8": np.int8}[dtype]
    fused = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}
    operators = []

    x = tensor([1, 4, 4, 2], ttype, name="input")
    first = x
    for i, (name, act) in enumerate(ops):
        op = s.OperatorT()
        op.opcodeIndex = model.code(name, custom if name.startswith("CUSTOM") else None)
        y = tensor([1, 4, 4, 2], ttype, name=f"t{i}")
        if name == "CONV_2D":
            w = tensor([2, 1, 1, 2], ttype, np.ones((2, 1, 1, 2), np_type), name=f"w{i}")
            b = tensor([2], s.TensorType.INT32 if dtype == "int8" else ttype,
                       np.zeros(2, np.int32 if dtype == "int8" else np.float32), name=f"b{i}")
            opts = s.Conv2DOptionsT()
            opts.strideW = opts.strideH = 1
            opts.dilationWFactor = opts.dilationHFactor = 1
            opts.fusedActivationFunction = fused[act]
            op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.Conv2DOptions, opts
            op.inputs = [x, w, b]
        elif name == "ADD":
            opts = s.AddOptionsT()
            opts.fusedActivationFunction = fused[act]
            op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.AddOptions, opts
            op.inputs = [x, x]
        else:
            op.inputs = [x]
        op.outputs = [y]
        operators.append(op)
        x = y
    return model.save(path, operators, [first], [x], "pea-deploy test model")
