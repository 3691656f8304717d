"""Tiny int8 TFLite models, one operator each, for asking a vendor compiler what it accepts.

`probe_cases()` spans the parameters the Ethos-U rules depend on (kernel, stride, padding, dilation,
depth multiplier, resize factor, transpose-conv stride, dtype, rank, batch, fused and standalone
activations); `write_probe(case, path)` writes one as a TFLite flatbuffer with LiteRT's schema. The
differential check (`vela.py`) compiles each with Vela and compares with pea-verify-ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_FUSED = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}


@dataclass(frozen=True)
class ProbeCase:
    op: str                              # TFLite builtin name
    size: tuple[int, int] = (16, 16)     # input height, width
    channels: int = 8
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    padding: str = "SAME"
    dilation: tuple[int, int] = (1, 1)
    depth_multiplier: int = 1
    scale: tuple[int, int] = (2, 2)      # resize: output / input
    fused: str = "NONE"
    dtype: str = "int8"
    rank: int = 4
    batch: int = 1

    @property
    def name(self) -> str:
        parts = [self.op.lower()]
        if self.op in _GEOMETRY_OPS:
            parts += [f"k{self.kernel[0]}x{self.kernel[1]}", f"s{self.stride[0]}x{self.stride[1]}",
                      self.padding.lower()]
            if self.dilation != (1, 1):
                parts.append(f"d{self.dilation[0]}x{self.dilation[1]}")
            if self.depth_multiplier != 1:
                parts.append(f"m{self.depth_multiplier}")
        if self.op.startswith("RESIZE"):
            parts.append(f"x{self.scale[0]}x{self.scale[1]}")
        parts.append(f"in{self.size[0]}x{self.size[1]}x{self.channels}")
        for label, value, default in (("fused", self.fused, "NONE"), ("", self.dtype, "int8"),
                                      ("rank", self.rank, 4), ("batch", self.batch, 1)):
            if value != default:
                parts.append(f"{label}{str(value).lower()}")
        return "-".join(parts)


_GEOMETRY_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "TRANSPOSE_CONV")


def _out_len(n: int, k: int, s: int, d: int, padding: str) -> int:
    dk = (k - 1) * d + 1
    return -(-n // s) if padding == "SAME" else (n - dk) // s + 1


def probe_cases() -> list[ProbeCase]:
    """The generated parameter space (deterministic order)."""
    cases: list[ProbeCase] = []
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        for k in (1, 3, 5, 7, 9, 11):
            for s in (1, 2, 3, 4):
                for pad in ("SAME", "VALID"):
                    size = (24, 24) if k <= 9 else (32, 32)
                    cases.append(ProbeCase(op, size=size, kernel=(k, k), stride=(s, s), padding=pad))
        for k, d in ((3, 2), (3, 8), (3, 16), (3, 32), (5, 16), (3, 33)):
            n = (k - 1) * d + 8
            cases.append(ProbeCase(op, size=(n, n), kernel=(k, k), dilation=(d, d), padding="VALID"))
        for k in (64, 65):
            cases.append(ProbeCase(op, size=(k + 2, 4), kernel=(k, 1), padding="VALID", channels=2))
        for fused in ("RELU", "RELU6", "RELU_N1_TO_1", "TANH"):
            cases.append(ProbeCase(op, fused=fused))
        cases.append(ProbeCase(op, batch=2))
    cases.append(ProbeCase("DEPTHWISE_CONV_2D", channels=1, depth_multiplier=4))
    cases.append(ProbeCase("DEPTHWISE_CONV_2D", channels=4, depth_multiplier=2))
    for op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        for k in (2, 3, 7, 8, 9, 14):
            for s in (1, 2, 4):
                for pad in ("SAME", "VALID"):
                    cases.append(ProbeCase(op, size=(28, 28), kernel=(k, k), stride=(s, s), padding=pad))
        for k, s in ((7, 7), (14, 14), (16, 16)):
            cases.append(ProbeCase(op, size=(k, k), kernel=(k, k), stride=(s, s), padding="VALID"))
        cases.append(ProbeCase(op, kernel=(2, 2), stride=(2, 2), fused="RELU"))
    for s in ((1, 1), (2, 2), (3, 3), (2, 1)):
        for pad in ("SAME", "VALID"):
            cases.append(ProbeCase("TRANSPOSE_CONV", size=(8, 8), kernel=(3, 3), stride=s, padding=pad))
    for op in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        for f in (2, 3, 4, 8):
            cases.append(ProbeCase(op, size=(4, 4), scale=(f, f)))
    for op in ("ADD", "MUL", "SUB", "MAXIMUM"):
        cases.append(ProbeCase(op))
        cases.append(ProbeCase(op, rank=5))
        cases.append(ProbeCase(op, dtype="int16"))
    for op in ("RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "ELU", "GELU"):
        cases.append(ProbeCase(op))
    cases.append(ProbeCase("CONV_2D", dtype="int16"))
    return cases


def write_probe(case: ProbeCase, path: str | Path) -> Path:
    """Write `case` as an int8 (or int16) TFLite model with one operator."""
    import numpy as np

    from .tflite_writer import TFLiteBuilder

    model = TFLiteBuilder()
    s, tensor = model.s, model.tensor
    act_type = {"int8": s.TensorType.INT8, "int16": s.TensorType.INT16}[case.dtype]
    n, (h, w), c = case.batch, case.size, case.channels
    in_shape = [n, 2, h, w, c] if case.rank == 5 else [n, h, w, c]
    x = tensor(in_shape, act_type)
    op = s.OperatorT()
    kh, kw = case.kernel
    sh, sw = case.stride
    rng = np.random.default_rng(0)
    weights = lambda shape: rng.integers(-20, 20, shape, dtype=np.int8)  # noqa: E731
    bias_type, bias_np = (s.TensorType.INT64, np.int64) if case.dtype == "int16" else (s.TensorType.INT32, np.int32)
    if case.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        oh = _out_len(h, kh, sh, case.dilation[0], case.padding)
        ow = _out_len(w, kw, sw, case.dilation[1], case.padding)
        depthwise = case.op == "DEPTHWISE_CONV_2D"
        out_c = c * case.depth_multiplier if depthwise else c
        wshape = [1, kh, kw, out_c] if depthwise else [out_c, kh, kw, c]
        wt = tensor(wshape, s.TensorType.INT8, weights(wshape), scale=0.01)
        b = tensor([out_c], bias_type, np.zeros(out_c, bias_np))
        opts = s.DepthwiseConv2DOptionsT() if depthwise else s.Conv2DOptionsT()
        if depthwise:
            opts.depthMultiplier = case.depth_multiplier
        opts.strideH, opts.strideW = sh, sw
        opts.dilationHFactor, opts.dilationWFactor = case.dilation
        opts.padding = getattr(s.Padding, case.padding)
        opts.fusedActivationFunction = _FUSED[case.fused]
        op.builtinOptionsType = s.BuiltinOptions.DepthwiseConv2DOptions if depthwise else s.BuiltinOptions.Conv2DOptions
        op.builtinOptions, op.inputs = opts, [x, wt, b]
        out_shape = [n, oh, ow, out_c]
    elif case.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        oh, ow = _out_len(h, kh, sh, 1, case.padding), _out_len(w, kw, sw, 1, case.padding)
        opts = s.Pool2DOptionsT()
        opts.strideH, opts.strideW, opts.filterHeight, opts.filterWidth = sh, sw, kh, kw
        opts.padding = getattr(s.Padding, case.padding)
        opts.fusedActivationFunction = _FUSED[case.fused]
        op.builtinOptionsType, op.builtinOptions, op.inputs = s.BuiltinOptions.Pool2DOptions, opts, [x]
        out_shape = [n, oh, ow, c]
    elif case.op == "TRANSPOSE_CONV":
        if case.padding == "SAME":
            oh, ow = h * sh, w * sw
        else:
            oh, ow = h * sh + max(kh - sh, 0), w * sw + max(kw - sw, 0)
        out_shape = [n, oh, ow, c]
        shape_t = tensor([4], s.TensorType.INT32, np.array(out_shape, np.int32))
        wt = tensor([c, kh, kw, c], s.TensorType.INT8, weights([c, kh, kw, c]), scale=0.01)
        opts = s.TransposeConvOptionsT()
        opts.strideH, opts.strideW, opts.padding = sh, sw, getattr(s.Padding, case.padding)
        op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.TransposeConvOptions, opts
        op.inputs = [shape_t, wt, x]
    elif case.op.startswith("RESIZE"):
        oh, ow = h * case.scale[0], w * case.scale[1]
        size_t = tensor([2], s.TensorType.INT32, np.array([oh, ow], np.int32))
        bilinear = case.op == "RESIZE_BILINEAR"
        opts = s.ResizeBilinearOptionsT() if bilinear else s.ResizeNearestNeighborOptionsT()
        op.builtinOptionsType = (s.BuiltinOptions.ResizeBilinearOptions if bilinear
                                 else s.BuiltinOptions.ResizeNearestNeighborOptions)
        op.builtinOptions, op.inputs = opts, [x, size_t]
        out_shape = [n, oh, ow, c]
    elif case.op in ("ADD", "MUL", "SUB", "MAXIMUM"):
        x2 = tensor(in_shape, act_type)
        opts_cls = {"ADD": "AddOptions", "MUL": "MulOptions", "SUB": "SubOptions"}.get(case.op)
        if opts_cls:
            opts = getattr(s, opts_cls + "T")()
            opts.fusedActivationFunction = _FUSED[case.fused]
            op.builtinOptionsType, op.builtinOptions = getattr(s.BuiltinOptions, opts_cls), opts
        op.inputs = [x, x2]
        out_shape = in_shape
    else:  # a standalone activation
        if case.op == "LEAKY_RELU":
            opts = s.LeakyReluOptionsT()
            opts.alpha = 0.1
            op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.LeakyReluOptions, opts
        op.inputs = [x]
        out_shape = in_shape
    y = tensor(out_shape, act_type, scale=0.1)
    op.outputs, op.opcodeIndex = [y], model.code(case.op)
    inputs = [i for i in op.inputs if model.tensors[i].buffer == 0]
    return model.save(path, [op], inputs, [y], f"pea-deploy probe {case.name}")
