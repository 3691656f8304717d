"""One op vocabulary for every format: the readers map every ONNX op_type, TFLite builtin, XNNPACK node
and ExecuTorch kernel to an op *kind* (`Mul`, `MUL`, `XNNMultiply` and `aten::mul.out` are all
`mul`), and the rules and patterns are written against kinds.

Profiles keep listing ops in their format's own spelling (a profile is a document about one
compiler's op list); only the checker's own logic speaks kinds.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..registry import ACTIVATIONS

# Spellings whose kind the mechanical rule (ONNX CamelCase -> snake_case, TFLite UPPER -> lower) misses.
_ALIASES = {
    "LOGISTIC": "sigmoid", "CONV_2D": "conv", "DEPTHWISE_CONV_2D": "conv", "ConvTranspose": "conv_transpose",
    "TRANSPOSE_CONV": "conv_transpose", "MAX_POOL_2D": "max_pool", "AVERAGE_POOL_2D": "average_pool",
    "Gemm": "fully_connected", "MatMul": "matmul", "BATCH_MATMUL": "matmul", "QuantizeLinear": "quantize",
    "DequantizeLinear": "dequantize", "CONCATENATION": "concat", "PRelu": "prelu", "ReduceMean": "mean",
    "ReduceSum": "sum", "ReduceMax": "reduce_max", "ReduceMin": "reduce_min", "Max": "maximum", "Min": "minimum",
    "RESIZE_BILINEAR": "resize", "RESIZE_NEAREST_NEIGHBOR": "resize", "PADV2": "pad", "MIRROR_PAD": "pad",
}

# XNNPACK node types (an ExecuTorch delegate's graph) whose kind the mechanical rule misses.
_XNNPACK = {
    "XNNConv2d": "conv", "XNNDepthwiseConv2d": "conv", "XNNConvTranspose2d": "conv_transpose",
    "XNNFullyConnected": "fully_connected", "XNNAvgPooling2d": "average_pool", "XNNMaxPooling2d": "max_pool",
    "XNNArgMaxPooling2d": "max_pool", "XNNGlobalAvgPooling2d": "global_average_pool", "XNNClamp": "clip",
    "XNNHardswish": "hard_swish", "XNNLeakyReLU": "leaky_relu", "XNNPReLU": "prelu", "XNNELU": "elu",
    "XNNMultiply": "mul", "XNNSubtract": "sub", "XNNBatchMatrixMultiply": "matmul", "XNNCopy": "identity",
    "XNNStaticConstantPad": "pad", "XNNStaticResizeBilinear2D": "resize", "XNNSquareRoot": "sqrt",
    "XNNReciprocalSquareRoot": "rsqrt",
}
# ExecuTorch kernels (aten::NAME.out) whose NAME is not the kind.
_KERNELS = {"silu": "swish", "hardswish": "hard_swish", "hardsigmoid": "hard_sigmoid", "hardtanh": "clip",
            "convolution": "conv", "addmm": "fully_connected", "mm": "matmul", "bmm": "matmul", "cat": "concat",
            "quantize_per_tensor": "quantize", "quantize_per_channel": "quantize",
            "dequantize_per_tensor": "dequantize", "dequantize_per_channel": "dequantize",
            "max_pool2d_with_indices": "max_pool", "avg_pool2d": "average_pool", "_softmax": "softmax",
            "view_copy": "reshape", "_native_batch_norm_legit_no_training": "batch_normalization"}

# Kinds that are activations: rejected unless they are the ReLU/ReLU6 the target runs. The smooth
# activations registered in pea_deploy.registry add their own spellings (see activation_kinds()).
_ACTIVATION_KINDS = frozenset({
    "gelu", "sigmoid", "tanh", "softplus", "softsign", "elu", "selu", "celu", "leaky_relu", "prelu",
    "hard_sigmoid", "hard_swish", "mish", "erf", "exp", "log", "thresholded_relu", "swish", "shrink",
    "relu_n1_to_1", "relu_0_to_1", "sign",
    "relu", "relu6", "clip",  # allowed only as ReLU / ReLU6, decided per node
})
RELU_LIKE = frozenset({"relu", "relu6", "clip"})
QDQ = frozenset({"quantize", "dequantize"})
STRUCTURAL = frozenset({"constant", "identity"})  # no computation of their own


@lru_cache(maxsize=None)
def op_kind(fmt: str, op: str) -> str:
    """The format-neutral kind of `op` as spelled in `fmt` ("onnx", "tflite" or "pte")."""
    if fmt == "pte":
        if "::" in op:  # a kernel outside any delegate: aten::gelu.out
            name = op.split("::", 1)[1].split(".", 1)[0]
            return _KERNELS.get(name, name)
        if op in _XNNPACK:
            return _XNNPACK[op]
        if op.startswith("XNNConcatenate"):
            return "concat"
        op = op.removeprefix("XNN").removeprefix("Static")
    if op in _ALIASES:
        return _ALIASES[op]
    if op.startswith(("CUSTOM:", "FLEX:", "DELEGATE:")):
        return "custom"
    if fmt == "tflite":
        return op.lower()
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", op).lower()


_kinds_cache: tuple[int, frozenset[str]] = (-1, frozenset())


def activation_kinds() -> frozenset[str]:
    """Every activation kind: the built-in list plus the spellings of registered smooth activations
    (rebuilt only when the registry changed: the checker asks once per node)."""
    global _kinds_cache
    if _kinds_cache[0] == ACTIVATIONS.version:
        return _kinds_cache[1]
    ACTIVATIONS.names()  # plug-ins register on first use
    if _kinds_cache[0] != ACTIVATIONS.version:
        extra = {op_kind("onnx", o) for e in ACTIVATIONS.entries() for o in e.info["onnx_ops"]}
        extra |= {op_kind("tflite", o) for e in ACTIVATIONS.entries() for o in e.info["tflite_ops"]}
        _kinds_cache = (ACTIVATIONS.version, _ACTIVATION_KINDS | extra)
    return _kinds_cache[1]
