"""Per-tensor int8 error of a QDQ ONNX model against the fp32 ONNX it was quantized from.

onnxruntime's quantizer keeps the fp32 graph's tensor names: an activation T is quantized by a
QuantizeLinear reading T and read back by a DequantizeLinear writing T_DequantizeLinear_Output.
Both models are run on the same images with those tensors added as outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from .layer_error import ChannelNoise, TensorError, as_numpy_images, fake_quantize, module_path
from .steps import step


# ops that onnxruntime's QDQ quantizer lets pass their input's scale on
_PASS_THROUGH = {"MaxPool", "Flatten", "Reshape", "Transpose", "Pad", "Squeeze", "Unsqueeze", "Slice", "Split",
                 "Gather", "Resize", "DepthToSpace", "SpaceToDepth", "Concat"}
# a graph output that onnxruntime quantizes is renamed NAME_QuantizeLinear_Input in the int8 model
_RENAMED_OUTPUT = "_QuantizeLinear_Input"


def _module_of(name: str, network: nn.Module | None = None) -> str:
    """The torch module path in a TorchScript-exporter name such as /layer3/layer3.0/conv2/Conv_output_0.

    Its scopes are either a child's attribute name (conv2) or a container's qualified child name
    that extends the scope before it (layer3 -> layer3.0): an extension replaces that scope, an
    attribute name is appended. With the exported `network` each step is the one that names a
    module of it (a child called `model` inside a wrapper's `model` is appended, not merged).
    Other names (the dynamo exporter's) say nothing of the module."""
    if not name.startswith("/"):
        return ""
    path: list[str] = []
    for scope in name.strip("/").split("/")[:-1]:
        extended = path[:-1] + [scope] if path and scope.startswith(path[-1] + ".") else None
        if network is not None and extended is not None and _names_a_module(network, path + [scope]):
            path.append(scope)
        elif extended is not None:
            path = extended
        else:
            path.append(scope)
    return module_path(".".join(path))


def _names_a_module(network: nn.Module, path: list[str]) -> bool:
    try:
        network.get_submodule(".".join(path))
        return True
    except AttributeError:
        return False


def _session(model_proto, outputs: list[str]):
    import onnx
    import onnxruntime as ort

    model = onnx.ModelProto()
    model.CopyFrom(model_proto)
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in outputs if n not in known)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    # the graph as written: optimizations would fuse away the tensors being compared
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def onnx_layer_errors(fp32_path: str | Path, int8_path: str | Path, images,
                      network: nn.Module | None = None) -> list[TensorError]:
    """TensorError for every activation the QDQ model at `int8_path` quantizes, measured on `images`
    (normalised NCHW float32, a numpy array or a tensor, run one at a time as the batch-1 models
    take them); `network`, the module exported, makes the module paths exact."""
    import onnx
    from onnx import numpy_helper

    images = as_numpy_images(images)

    with step("per-layer error: reading the ONNX models"):
        fp32 = onnx.load(str(fp32_path))
        int8 = onnx.load(str(int8_path))
    consts = {t.name: numpy_helper.to_array(t) for t in int8.graph.initializer}
    producer = {o: n for n in int8.graph.node for o in n.output}
    # .item(): a size-1 scale may be shape (1,), which float() refuses in numpy 2.x
    dq_params = {n.output[0]: (float(consts[n.input[1]].item()),
                               int(consts[n.input[2]].item()) if len(n.input) > 2 else 0)
                 for n in int8.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in consts
                 and consts[n.input[1]].size == 1}
    dequantized = {n.input[0]: n.output[0] for n in int8.graph.node if n.op_type == "DequantizeLinear"}
    fp32_tensors = {o for n in fp32.graph.node for o in n.output} | {i.name for i in fp32.graph.input}
    rows = []
    for node in int8.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[1] not in consts or consts[node.input[1]].size != 1:
            continue
        name = node.input[0]
        scale = float(consts[node.input[1]].item())
        zp_arr = consts[node.input[2]] if len(node.input) > 2 else np.zeros((), np.int8)
        zero_point, info = int(zp_arr.item()), np.iinfo(zp_arr.dtype)
        source = producer.get(name)
        # an op that passes its input's scale through (pool, reshape) adds no quantization of its own
        if source is not None and source.op_type in _PASS_THROUGH and any(
                dq_params.get(i) == (scale, zero_point) for i in source.input):
            continue
        dq = dequantized.get(node.output[0])
        reference = name[:-len(_RENAMED_OUTPUT)] if name.endswith(_RENAMED_OUTPUT) else name
        if reference not in fp32_tensors or dq is None:
            continue
        rows.append((reference, dq, scale, zero_point, info, source))
    if not rows:
        return []
    with step("per-layer error: running the ONNX models"):
        float_run = _session(fp32, [r[0] for r in rows])
        int8_run = _session(int8, [r[1] for r in rows])
        local = {r[0]: ChannelNoise() for r in rows}
        accumulated = {r[0]: ChannelNoise() for r in rows}
        float_in, int8_in = float_run.get_inputs()[0].name, int8_run.get_inputs()[0].name
        float_names = [o.name for o in float_run.get_outputs()]
        int8_names = [o.name for o in int8_run.get_outputs()]
        for image in images.astype(np.float32):
            f = dict(zip(float_names, float_run.run(None, {float_in: image[None]})))
            f[float_in] = image[None]
            q = dict(zip(int8_names, int8_run.run(None, {int8_in: image[None]})))
            for name, dq, scale, zero_point, info, _ in rows:
                local[name].add(fake_quantize(f[name], scale, zero_point, info.min, info.max), f[name])
                accumulated[name].add(q[dq], f[name])
    def module(name, source) -> str:
        return _module_of(name, network) or (_module_of(source.name, network) if source is not None else "")

    return [TensorError(name, module(name, source), source.op_type if source is not None else "input", scale,
                        zero_point, local[name].median_db(), accumulated[name].median_db())
            for name, dq, scale, zero_point, info, source in rows]
