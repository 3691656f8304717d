"""Read an ExecuTorch program (.pte) into a Graph: the operators that run in each XNNPACK delegate, as
XNNPACK builds them, and the kernels the program calls outside any delegate.

The program is read with ExecuTorch's own deserializer; each XNNPACK delegate's graph is decoded by
the flatc and schema.fbs the executorch wheel ships (so a new XNNPACK node type reads by its name,
not by a table copied here). A ReLU or ReLU6 that XNNPACK fused into an operator is its output clamp,
reported as the node's fused activation; a standalone XNNClamp carries its bounds like an ONNX Clip.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import tempfile
from pathlib import Path

from .graph import Graph, Node, Tensor, UnreadableModel

PTE_IDENTIFIER = b"ET12"  # the program flatbuffer's file identifier (bytes 4..8)
XNNPACK_DELEGATE = "XnnpackBackend"
_DTYPES = {"xnn_datatype_fp32": "float32", "xnn_datatype_fp16": "float16", "xnn_datatype_bf16": "bfloat16",
           "xnn_datatype_qint8": "int8", "xnn_datatype_qcint8": "int8", "xnn_datatype_quint8": "uint8",
           "xnn_datatype_qint32": "int32", "xnn_datatype_qcint32": "int32", "xnn_datatype_int32": "int32",
           # dynamically quantized activations are float tensors quantized per call: not int8 compute
           "xnn_datatype_qdint8": "dynamic_int8", "xnn_datatype_qpint8": "dynamic_int8",
           "xnn_datatype_qcint4": "int4", "xnn_datatype_qbint4": "int4"}
# ExecuTorch's ScalarType numbering (exir/schema ScalarType)
_SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                 7: "float64", 11: "bool", 15: "bfloat16"}


def read_pte(path: Path, data: bytes) -> Graph:
    if importlib.util.find_spec("executorch") is None:
        raise UnreadableModel("an ExecuTorch program (.pte): reading it needs pip install 'pea-deploy[executorch]'")
    try:
        return _read(path, data)
    except UnreadableModel:
        raise
    except Exception as e:  # a corrupt flatbuffer fails in many ways inside the deserializer
        raise UnreadableModel(f"corrupt ExecuTorch program: {type(e).__name__}: {' '.join(str(e).split())[:200]}") from None


def _read(path: Path, data: bytes) -> Graph:
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(data).program
    plans = [p for p in program.execution_plan if p.name == "forward"] or list(program.execution_plan)
    if not plans:
        raise UnreadableModel("the ExecuTorch program has no method")
    plan = plans[0]
    nodes: list[Node] = []
    tensors: dict[str, Tensor] = {}
    for i, value in enumerate(plan.values):
        t = value.val
        if type(t).__name__ == "Tensor":
            tensors[f"v{i}"] = Tensor(f"v{i}", _SCALAR_TYPES.get(int(t.scalar_type), str(t.scalar_type)),
                                      [int(d) for d in t.sizes], is_constant=t.data_buffer_idx > 0)
    inputs = [f"v{i}" for i in plan.inputs]
    outputs = [f"v{i}" for i in plan.outputs]
    for chain in plan.chains:
        for instruction in chain.instructions:
            args = instruction.instr_args
            kind = type(args).__name__
            if kind == "KernelCall":
                # the .out kernels take their output(s) last
                names = [f"v{a}" for a in args.args if f"v{a}" in tensors]
                op = plan.operators[args.op_index]
                spelled = f"{op.name}.{op.overload}" if op.overload else op.name
                nodes.append(Node(len(nodes), names[-1] if names else "", spelled, names[:-1], names[-1:]))
            elif kind == "DelegateCall":
                delegate = plan.delegates[args.delegate_index]
                if delegate.id != XNNPACK_DELEGATE:
                    nodes.append(Node(len(nodes), f"delegate{args.delegate_index}", f"DELEGATE:{delegate.id}", [], []))
                    continue
                blob = _delegate_blob(program, delegate)
                _xnnpack_nodes(_xnnpack_graph(blob), f"d{args.delegate_index}", nodes, tensors)
    return Graph(str(path), "pte", nodes, tensors, inputs, outputs)


def _delegate_blob(program, delegate) -> bytes:
    processed = delegate.processed
    if int(processed.location) == 0:  # INLINE
        return bytes(program.backend_delegate_data[processed.index].data)
    raise UnreadableModel("the XNNPACK delegate's graph is stored outside the program (a segment this reader "
                          "does not follow)")


def _xnnpack_graph(blob: bytes) -> dict:
    """The delegate's XNNGraph flatbuffer as a dict, decoded by the wheel's flatc and schema."""
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader

    header = XNNHeader.from_bytes(blob[:XNNHeader.EXPECTED_LENGTH])
    start, size = (header.flatbuffer_offset, header.flatbuffer_size) if header.is_valid() else (0, len(blob))
    flatbuffer = blob[start:start + size]
    if flatbuffer[4:8] != b"XN01":
        raise UnreadableModel("an XNNPACK delegate without its XN01 graph")
    flatc = _package_file("executorch.data.bin", "flatc")
    schema = _package_file("executorch.backends.xnnpack.serialization", "schema.fbs")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "graph.bin").write_bytes(flatbuffer)
        done = subprocess.run([str(flatc), "--json", "--strict-json", "--raw-binary", "--defaults-json", "-o", tmp,
                               str(schema), "--", str(Path(tmp) / "graph.bin")], capture_output=True, text=True)
        if done.returncode != 0:
            raise UnreadableModel(f"the XNNPACK graph does not decode: {done.stderr.strip()[:200]}")
        text = (Path(tmp) / "graph.json").read_text()
    # flatc writes IEEE infinities bare; JSON spells them Infinity
    return json.loads(re.sub(r"(?<![\w.])(-?)inf\b", r"\1Infinity", re.sub(r"(?<![\w.])nan\b", "NaN", text)))


def _package_file(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UnreadableModel(f"this executorch install lacks {package}")
    return Path(list(spec.submodule_search_locations)[0]) / name


def _fused(min_max: dict | None) -> str | None:
    if not min_max:
        return None
    lo, hi = min_max.get("output_min", float("-inf")), min_max.get("output_max", float("inf"))
    if lo == 0 and hi == float("inf"):
        return "RELU"
    if lo == 0 and hi == 6:
        return "RELU6"
    if lo == float("-inf") and hi == float("inf"):
        return None
    return f"CLAMP({lo:g}, {hi:g})"


def _xnnpack_nodes(graph: dict, prefix: str, nodes: list[Node], tensors: dict[str, Tensor]) -> None:
    external = set()
    for value_id, value in enumerate(graph.get("xvalues", [])):
        body = value.get("xvalue_union", {})
        quantized = value.get("xvalue_union_type") == "XNNQuantizedTensorValue"
        t = body.get("tensor_value", {}) if quantized else body
        key = f"{prefix}:{t.get('id_out', value_id)}"
        quant = None
        if quantized:
            params = body.get("quant_params", {})
            if "zero_point" in params:
                quant = ((float(params.get("scale", 0.0)),), (int(params["zero_point"]),))
            elif "scale" in params:
                quant = (tuple(float(s) for s in params["scale"]), ())
        if int(t.get("flags", 0)) & 3:  # XNN_VALUE_FLAG_EXTERNAL_INPUT / _OUTPUT
            external.add(key)
        tensors[key] = Tensor(key, _DTYPES.get(t.get("datatype"), str(t.get("datatype"))),
                              [int(d) for d in t.get("dims", [])], is_constant=int(t.get("constant_buffer_idx", 0)) > 0,
                              quantization=quant)
    for xnode in graph.get("xnodes", []):
        op, body = xnode.get("xnode_union_type", "NONE"), xnode.get("xnode_union", {})
        ins = [f"{prefix}:{body[k]}" for k in body if k.endswith("_id") and k != "output_id" and k.startswith(("input", "filter", "bias"))
               and body[k] != 0xFFFFFFFF]
        outs = [f"{prefix}:{body['output_id']}"] if "output_id" in body else []
        fused = _fused(xnode.get("output_min_max"))
        attrs = _geometry(body)
        if op == "XNNClamp":
            lo, hi = (xnode.get("output_min_max") or {}).get("output_min"), (xnode.get("output_min_max") or {}).get("output_max")
            attrs["clip"] = (None if lo in (None, float("-inf")) else lo, None if hi in (None, float("inf")) else hi)
            fused = None
        kind = ""
        if op == "XNNConvert" and outs and ins:
            # float -> int8 at the delegate's input, int8 -> float at its output
            kind = "quantize" if tensors.get(outs[0]) and tensors[outs[0]].dtype in ("int8", "uint8") else "dequantize"
            attrs["delegate_boundary"] = ins[0] in external or outs[0] in external
        nodes.append(Node(len(nodes), outs[0] if outs else "", op, ins, outs, prefix, fused, attrs, kind))


def _geometry(body: dict) -> dict:
    pair = lambda a, b: [int(body[a]), int(body[b])] if a in body and b in body else []  # noqa: E731
    kernel = pair("kernel_height", "kernel_width") or pair("pooling_height", "pooling_width")
    stride = pair("subsampling_height", "subsampling_width") or pair("stride_height", "stride_width")
    return {"kernel": kernel, "stride": stride, "dilation": pair("dilation_height", "dilation_width")} if kernel else {}
