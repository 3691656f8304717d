"""Read a TFLite flatbuffer into a Graph with LiteRT's generated schema (no interpreter needed)."""

from __future__ import annotations

from pathlib import Path

from .graph import Graph, Node, Tensor, UnreadableModel

_FUSED = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _options(schema, op, option_names: dict[int, str]):
    kind = op.BuiltinOptionsType()
    table = op.BuiltinOptions()
    if not kind or table is None:
        return None
    cls = getattr(schema, option_names.get(kind, ""), None)
    if cls is None:
        return None
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    return obj


def _guard(count: int, size: int, what: str) -> int:
    if count < 0 or count * 4 > size:
        raise UnreadableModel(f"corrupt TFLite: {what} count {count} exceeds the file size")
    return count


def _geometry(op: str, raw: dict, op_in: list[str], tensors: dict) -> dict:
    """kernel / stride / dilation / depth_multiplier as [h, w] lists, as the ONNX reader gives them."""
    if not raw:
        return raw
    pair = lambda k: [raw[f"{k}_h"], raw[k]] if k in raw else []  # noqa: E731
    kernel = pair("filter")
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"):
        # weights, always the second input: OHWI (conv, transpose conv), 1HWC (depthwise)
        shape = tensors[op_in[1]].shape if len(op_in) > 1 and op_in[1] in tensors else None
        kernel = [d for d in shape[1:3] if isinstance(d, int)] if shape and len(shape) == 4 else []
    return {"kernel": kernel, "stride": pair("stride"), "dilation": pair("dilation"),
            "depth_multiplier": int(raw.get("depth_multiplier", 1) or 1)}


def read_tflite(path: Path, data: bytes) -> Graph:
    from ai_edge_litert import schema_py_generated as schema

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UnreadableModel("not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        return _read(schema, path, bytearray(data))
    except UnreadableModel:
        raise
    except Exception as e:  # a corrupt flatbuffer fails in many ways inside the generated code
        raise UnreadableModel(f"corrupt TFLite flatbuffer: {type(e).__name__}: {e}") from None


def _read(schema, path: Path, buf: bytearray) -> Graph:
    size = len(buf)
    model = schema.Model.GetRootAsModel(buf, 0)
    op_names = _names(schema.BuiltinOperator)
    type_names = {k: v.lower() for k, v in _names(schema.TensorType).items()}
    option_names = _names(schema.BuiltinOptions)
    codes = []
    for i in range(_guard(model.OperatorCodesLength(), size, "operator code")):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = op_names.get(code, f"UNKNOWN_{code}")
        if name == "CUSTOM":
            custom = (oc.CustomCode() or b"").decode("utf-8", "replace")
            name = f"FLEX:{custom[4:]}" if custom.startswith("Flex") else f"CUSTOM:{custom}"
        codes.append(name)
    n_sub = _guard(model.SubgraphsLength(), size, "subgraph")
    if n_sub == 0:
        raise UnreadableModel("the TFLite model has no subgraph")
    nodes, tensors, inputs, outputs = [], {}, [], []
    for s in range(n_sub):
        sg = model.Subgraphs(s)
        gname = "main" if s == 0 else f"subgraph{s}"
        tnames = []
        for t in range(_guard(sg.TensorsLength(), size, "tensor")):
            ten = sg.Tensors(t)
            key = f"{s}:{t}"
            sig = ten.ShapeSignatureAsNumpy() if ten.ShapeSignatureLength() else ten.ShapeAsNumpy()
            shape = [None if int(d) < 0 else int(d) for d in sig] if not isinstance(sig, int) else []
            buf_idx = ten.Buffer()
            is_const = bool(buf_idx) and buf_idx < model.BuffersLength() and (
                model.Buffers(buf_idx).DataLength() > 0 or model.Buffers(buf_idx).Size() > 0)
            q = ten.Quantization()
            quant = None
            if q is not None and q.ScaleLength():
                quant = (tuple(float(v) for v in q.ScaleAsNumpy()),
                         tuple(int(v) for v in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else ())
            tensors[key] = Tensor((ten.Name() or b"").decode("utf-8", "replace"),
                                  type_names.get(ten.Type(), "other"), shape, is_const, quant)
            tnames.append(key)
        ins = [f"{s}:{i}" for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
        outs = [f"{s}:{i}" for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
        if s == 0:
            inputs, outputs = ins, outs
        for o in range(_guard(sg.OperatorsLength(), size, "operator")):
            op = sg.Operators(o)
            idx = op.OpcodeIndex()
            if idx >= len(codes):
                raise UnreadableModel(f"operator {o} uses opcode {idx}, the model has {len(codes)}")
            opts = _options(schema, op, option_names)
            attrs, fused = {}, None
            if opts is not None:
                if hasattr(opts, "FusedActivationFunction"):
                    fused = _FUSED.get(opts.FusedActivationFunction(), f"UNKNOWN_{opts.FusedActivationFunction()}")
                for attr, getter in (("stride", "StrideW"), ("stride_h", "StrideH"), ("dilation", "DilationWFactor"),
                                     ("dilation_h", "DilationHFactor"), ("depth_multiplier", "DepthMultiplier"),
                                     ("filter", "FilterWidth"), ("filter_h", "FilterHeight")):
                    if hasattr(opts, getter):
                        attrs[attr] = int(getattr(opts, getter)())
            op_in = [f"{s}:{i}" if i >= 0 else "" for i in (op.InputsAsNumpy() if op.InputsLength() else [])]
            op_out = [f"{s}:{i}" for i in (op.OutputsAsNumpy() if op.OutputsLength() else [])]
            attrs = _geometry(codes[idx], attrs, op_in, tensors)
            name = tensors[op_out[0]].name if op_out and op_out[0] in tensors else ""
            nodes.append(Node(o, name, codes[idx], op_in, op_out, gname, fused, attrs))
    return Graph(str(path), "tflite", nodes, tensors, inputs, outputs)
