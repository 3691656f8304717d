"""Per-tensor int8 error of a TFLite artefact, named by the torch modules that produced each tensor.

litert-torch names TFLite tensors after its own wrapper, so the names say nothing. The export's PT2E
graph (tflite_export.pt2e_quantize or qat.qat_finetune; pt2e_quantize again on the same model,
calibration images and method gives the same scales) has a quantize node on every quantized tensor,
each knowing its torch module. Run with the
quantize/dequantize nodes as identities, that graph is the float model (BatchNorm folded); its
quantize nodes give each tensor's scale. The LiteRT interpreter's own intermediate tensors are then
matched to those nodes by scale, zero point and size, in graph order, for the accumulated error.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch.fx import Node

from .layer_error import ChannelNoise, TensorError, as_numpy_images, fake_quantize, module_path
from .runtimes import TFLiteRunner
from .steps import native_output_captured, step
from .tflite_export import PT2EQuantized


def _qdq_ops():
    qd = torch.ops.quantized_decomposed
    return ({qd.quantize_per_tensor.default, qd.quantize_per_tensor.tensor},
            {qd.dequantize_per_tensor.default, qd.dequantize_per_tensor.tensor,
             qd.quantize_per_channel.default, qd.dequantize_per_channel.default})


class _GraphRun(torch.fx.Interpreter):
    """Runs the PT2E graph, quantized (as built) or float (every quantize/dequantize an identity),
    keeping the outputs of `keep` nodes."""

    def __init__(self, graph: torch.fx.GraphModule, keep: set[str], quantized: bool):
        super().__init__(graph)
        self.keep, self.quantized, self.kept = keep, quantized, {}
        self.quantize_ops, self.other_qdq = _qdq_ops()

    def call_function(self, target, args, kwargs):
        if not self.quantized and (target in self.quantize_ops or target in self.other_qdq):
            return args[0]
        return super().call_function(target, args, kwargs)

    def run_node(self, n):
        result = super().run_node(n)
        if n.name in self.keep:
            self.kept[n.name] = result.detach().numpy()
        return result


def _module_of(node: Node) -> tuple[str, str]:
    if not isinstance(node, Node) or node.op == "placeholder":
        return "", "input"
    stack = node.meta.get("nn_module_stack") or {}
    path = module_path(list(stack.values())[-1][0]) if stack else ""
    op = getattr(node.target, "__name__", str(node.target)).split(".")[0]
    return path, op


# ops litert-torch's quantizer lets pass their input's scale on (they add no quantization)
_PASS_THROUGH = {"pad", "constant_pad_nd", "max_pool2d", "adaptive_avg_pool2d", "mean", "flatten", "view",
                 "reshape", "permute", "squeeze", "unsqueeze", "slice", "cat", "pixel_shuffle", "clone"}


def _quantized_tensors(graph: torch.fx.GraphModule) -> list[tuple[Node, float, int, int, int]]:
    """(quantize node, scale, zero point, qmin, qmax) of every tensor quantized on its own scale; a
    node passing its input's scale on (pad, pool, flatten) adds no quantization and is left out."""
    quantize_ops, other = _qdq_ops()
    found = []
    for n in graph.graph.nodes:
        if n.op != "call_function" or n.target not in quantize_ops:
            continue
        source, scale, zero_point, qmin, qmax = n.args[:5]
        if not isinstance(scale, float):
            continue
        shared = isinstance(source, Node) and _module_of(source)[1] in _PASS_THROUGH and any(
            a.op == "call_function" and a.target in other and a.args[1:3] == (scale, zero_point)
            for a in source.all_input_nodes)
        if not shared:
            found.append((n, scale, int(zero_point), int(qmin), int(qmax)))
    return found


def _tflite_tensors(runner: TFLiteRunner) -> list[dict]:
    """The interpreter's input and op output tensors, in execution order (op order from the
    interpreter's `_get_ops_details`, the one place LiteRT's Python API gives it)."""
    interp = runner.interpreter
    details = {t["index"]: t for t in interp.get_tensor_details()}
    order = [runner.inp["index"]] + [i for op in interp._get_ops_details() for i in op["outputs"] if i >= 0]
    return [details[i] for i in order if np.issubdtype(details[i]["dtype"], np.integer)
            and len(details[i]["quantization_parameters"]["scales"]) == 1]


def _match(tensors: list[tuple], tflite: list[dict]) -> dict[str, int]:
    """Node name -> TFLite tensor index, matching scale (as float32), zero point and size in order."""
    matched, start = {}, 0
    for node, scale, zero_point, _, _, numel in tensors:
        for j in list(range(start, len(tflite))) + list(range(0, start)):
            t = tflite[j]
            if (np.float32(t["quantization"][0]) == np.float32(scale) and t["quantization"][1] == zero_point
                    and int(np.prod(t["shape"])) == numel and t["index"] not in matched.values()):
                matched[node.name] = t["index"]
                start = j + 1
                break
    return matched


def tflite_layer_errors(quantized: PT2EQuantized, tflite_path: str | Path, images,
                        channels_last: bool = True) -> list[TensorError]:
    """TensorError for every tensor the TFLite file at `tflite_path`, written from `quantized`,
    quantizes on its own scale, measured on `images` (normalised NCHW float32, numpy or a tensor);
    `channels_last`: the file's 4-D input is NHWC (write_tflite's default io_layout)."""
    images = as_numpy_images(images)
    graph = quantized.graph
    found = _quantized_tensors(graph)
    keep = {n.name for n, *_ in found}
    with native_output_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LiteRT warns that keeping every tensor costs memory
        runner = TFLiteRunner(tflite_path, keep_tensors=True, channels_last=channels_last)
    local = {name: ChannelNoise() for name in keep}
    accumulated = {name: ChannelNoise() for name in keep}
    matched = None
    details = {t["index"]: t for t in runner.interpreter.get_tensor_details()}
    with step("per-layer error: running the PT2E graph and the LiteRT interpreter"), torch.no_grad():
        for image in images.astype(np.float32):
            x = torch.from_numpy(image[None])
            float_run = _GraphRun(graph, keep, quantized=False)
            float_run.run(x)
            runner(image[None])
            if matched is None:
                sized = [(n, s, z, lo, hi, float_run.kept[n.name].size) for n, s, z, lo, hi in found]
                matched = _match(sized, _tflite_tensors(runner))
            for node, scale, zero_point, qmin, qmax in found:
                ref = float_run.kept[node.name]
                local[node.name].add(fake_quantize(ref, scale, zero_point, qmin, qmax), ref)
                if node.name in matched:
                    accumulated[node.name].add(_dequantized(runner, details[matched[node.name]], ref.shape), ref)
    rows = []
    for node, scale, zero_point, _, _ in found:
        module, op = _module_of(node.args[0])
        rows.append(TensorError(node.args[0].name if isinstance(node.args[0], Node) else node.name, module, op,
                                scale, zero_point, local[node.name].median_db(), accumulated[node.name].median_db()))
    return rows


def _dequantized(runner: TFLiteRunner, detail: dict, shape: tuple) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    value = (runner.interpreter.get_tensor(detail["index"]).astype(np.float32) - zero_point) * scale
    if value.ndim == 4 and len(shape) == 4 and value.shape != tuple(shape):
        value = value.transpose(0, 3, 1, 2)  # the file is NHWC inside
    return value.reshape(shape)
