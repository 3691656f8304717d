"""Op vocabularies: which ops are activations (always rejected unless ReLU/ReLU6), per format."""

ONNX_ACTIVATIONS = frozenset({
    "Gelu", "Sigmoid", "Tanh", "Softplus", "Softsign", "Elu", "Selu", "Celu", "LeakyRelu", "PRelu",
    "HardSigmoid", "HardSwish", "Mish", "Erf", "Exp", "Log", "ThresholdedRelu", "Swish", "Shrink",
    "Relu", "Clip",  # allowed only as ReLU / ReLU6, decided per node
})
TFLITE_ACTIVATIONS = frozenset({
    "LOGISTIC", "TANH", "GELU", "ELU", "LEAKY_RELU", "PRELU", "HARD_SWISH", "EXP", "LOG", "RELU_N1_TO_1",
    "RELU_0_TO_1", "SIGN", "RELU", "RELU6",
})
ACTIVATION_OPS = {"onnx": ONNX_ACTIVATIONS, "tflite": TFLITE_ACTIVATIONS}

# Ops that carry no computation of their own in an ONNX graph.
ONNX_STRUCTURAL = frozenset({"Constant", "Identity"})
ONNX_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
