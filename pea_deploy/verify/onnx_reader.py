"""Read an ONNX file into a Graph, without loading external weights, nested graphs included."""

from __future__ import annotations

from math import prod
from pathlib import Path

from .graph import Graph, Node, Tensor, UnreadableModel

_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
           9: "bool", 10: "float16", 11: "float64", 16: "bfloat16", 17: "float8", 21: "uint4", 22: "int4"}


def _const_values(graph, onnx) -> dict[str, list[float]]:
    """Scalar-ish constants (initializers and Constant nodes) by tensor name, for Clip bounds."""
    from onnx import numpy_helper

    values = {}
    for init in graph.initializer:
        if init.data_location != 1 and prod(init.dims) <= 16:  # 1 = EXTERNAL: not loaded
            values[init.name] = numpy_helper.to_array(init).reshape(-1).tolist()
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and prod(attr.t.dims) <= 16:
                    values[node.output[0]] = numpy_helper.to_array(attr.t).reshape(-1).tolist()
                elif attr.name in ("value_float", "value_int"):
                    values[node.output[0]] = [attr.f if attr.name == "value_float" else attr.i]
    return values


def _shape(type_proto) -> list | None:
    t = type_proto.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def _geometry(node, attrs: dict, tensors: dict) -> dict:
    """kernel / stride / dilation / depth_multiplier of a conv or pool, as the TFLite reader gives them."""
    w = tensors.get(node.input[1]).shape if len(node.input) > 1 and node.input[1] in tensors else None
    w = [d for d in (w or []) if isinstance(d, int)]
    kernel = list(attrs.get("kernel_shape") or (w[2:] if len(w) > 2 else []))
    group = int(attrs.get("group", 1))
    depthwise = node.op_type == "Conv" and group > 1 and len(w) > 1 and w[1] == 1
    return {"kernel": [int(k) for k in kernel], "stride": [int(s) for s in attrs.get("strides") or []],
            "dilation": [int(d) for d in attrs.get("dilations") or []],
            "depth_multiplier": (w[0] // group) if depthwise else 1}


def _walk(graph, onnx, prefix: str, nodes: list, tensors: dict, consts: dict) -> None:
    from onnx import helper

    consts.update(_const_values(graph, onnx))
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        tensors.setdefault(vi.name, Tensor(vi.name, _DTYPES.get(vi.type.tensor_type.elem_type, "other"),
                                           _shape(vi.type)))
    for init in graph.initializer:
        tensors[init.name] = Tensor(init.name, _DTYPES.get(init.data_type, "other"), list(init.dims), True)
    for i, node in enumerate(graph.node):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute
                 if a.type not in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS,
                                   onnx.AttributeProto.TENSOR)}
        if node.op_type == "Clip":
            lo, hi = attrs.get("min"), attrs.get("max")  # opset < 11: attributes
            if len(node.input) > 1 and node.input[1]:
                lo = consts.get(node.input[1], ["?"])[0]
            if len(node.input) > 2 and node.input[2]:
                hi = consts.get(node.input[2], ["?"])[0]
            attrs["clip"] = (lo, hi)
        if node.op_type in ("Conv", "ConvTranspose", "MaxPool", "AveragePool"):
            attrs.update(_geometry(node, attrs, tensors))
        if node.op_type == "Resize":  # inputs X, roi, scales, sizes: the factor, where constant
            for key, index in (("resize_scales", 2), ("resize_sizes", 3)):
                if len(node.input) > index and node.input[index] in consts:
                    attrs[key] = [float(v) for v in consts[node.input[index]]]
        nodes.append(Node(len(nodes), node.name, node.op_type, list(node.input), list(node.output),
                          prefix, None, attrs))
        for a in node.attribute:
            subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else (
                list(a.graphs) if a.type == onnx.AttributeProto.GRAPHS else [])
            for j, sub in enumerate(subs):
                _walk(sub, onnx, f"{prefix}/{node.name or node.op_type}.{a.name}{j or ''}", nodes,
                      tensors, consts)


def read_onnx(path: Path, data: bytes) -> Graph:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError, TypeError) as e:
        raise UnreadableModel(f"not a readable ONNX model: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise UnreadableModel("not an ONNX model (no ir_version or graph)")
    if len(model.graph.node) == 0:
        raise UnreadableModel("the ONNX graph is empty (no nodes)")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    nodes, tensors, consts = [], {}, {}
    _walk(model.graph, onnx, "main", nodes, tensors, consts)
    return Graph(str(path), "onnx", nodes, tensors, [i.name for i in model.graph.input],
                 [o.name for o in model.graph.output], opset)
