"""A format-neutral view of a model graph: what the rules read, whether it came from ONNX, TFLite or
an ExecuTorch program.

Each node keeps its own spelling (`op`, for messages) and carries its format-neutral `kind` (see
ops.py); the readers put kernel, stride, dilation and depth multiplier into `attrs` as lists in one
form for both formats."""

from __future__ import annotations

from dataclasses import dataclass, field


class UnreadableModel(Exception):
    """The file is missing, neither ONNX nor TFLite, truncated or corrupt (reported, exit 2)."""


@dataclass
class Node:
    index: int
    name: str
    op: str                          # ONNX op_type, TFLite builtin name (CUSTOM:..., FLEX:...), XNNPACK node
                                     #   type or ExecuTorch kernel (aten::relu.out)
    inputs: list[str]
    outputs: list[str]
    graph: str = "main"              # subgraph / nested-graph path
    fused_activation: str | None = None   # TFLite only: NONE, RELU, RELU6, TANH, ...
    attrs: dict = field(default_factory=dict)  # kernel, stride, dilation, depth_multiplier, clip bounds
    kind: str = ""                   # format-neutral op kind, set by the Graph unless the reader knows it


@dataclass
class Tensor:
    name: str
    dtype: str                       # float32, int8, uint8, int32, ...
    shape: list | None               # ints; a str or None entry is a dynamic dimension
    is_constant: bool = False
    quantization: tuple | None = None  # (scales, zero points) where the file has them (TFLite)


@dataclass
class Graph:
    path: str
    format: str                      # "onnx", "tflite" or "pte"
    nodes: list[Node]
    tensors: dict[str, Tensor]
    inputs: list[str]
    outputs: list[str]
    opset: int | None = None
    producers: dict[str, Node] = field(default_factory=dict)
    consumers: dict[str, list[Node]] = field(default_factory=dict)

    def __post_init__(self):
        from .ops import op_kind

        for node in self.nodes:
            node.kind = node.kind or op_kind(self.format, node.op)
            for t in node.outputs:
                self.producers[(node.graph, t)] = node
            for t in node.inputs:
                self.consumers.setdefault((node.graph, t), []).append(node)

    @property
    def qdq(self) -> bool:
        """Quantization as float ops between QuantizeLinear/DequantizeLinear (ONNX), not as typed
        integer tensors (TFLite)."""
        return self.format == "onnx"

    def producer(self, node: Node, tensor: str) -> Node | None:
        return self.producers.get((node.graph, tensor))

    def consumers_of(self, node: Node, tensor: str) -> list[Node]:
        return self.consumers.get((node.graph, tensor), [])
