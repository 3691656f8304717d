"""Run each artefact the way a deployment would: torch, onnxruntime, the LiteRT interpreter (and
TFLite Micro, in tflm.py).

Every runner takes normalised NCHW float32 batches and returns float32 outputs in torch's layout
(NCHW for per-pixel outputs): one array, or a list in the model's output order when it has several
(outputs.py). So the parity table compares like with like; the TFLite runners do the NHWC layout and
the int8 (de)quantization of input and outputs with the scales stored in the file, as an
application on the device would.

Int8 results depend on which kernels run them, so each runner names its kernels:
- ONNX `semantics="reference"`: onnxruntime with graph optimisation off, so every QuantizeLinear
  and DequantizeLinear runs as written (the QDQ reference semantics: float maths between exact
  int8 grid points). It gives the same numbers on every x86 CPU, and what an integer NPU computes
  up to its rounding. `semantics="fused"`: onnxruntime's optimised graph, whose fused int8 kernels
  depend on this CPU's ISA (host_cpu.py): the speed a host deployment gets, not the artefact's truth.
- TFLite `kernels="reference"`: LiteRT's reference kernels (BUILTIN_REF), plain integer C++ that
  computes the same bytes on every host and agrees with TFLite Micro, the runtime of Ethos-U and
  Cortex-M devices. `"builtin"` (LiteRT's optimised kernels) and `"xnnpack"` (the default
  delegate) differ from it by a few LSB on some outputs (measured: 7 and 6 LSB at most on the
  digits net) and are for timing.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .outputs import one_or_list
from .steps import native_output_captured, step


class TorchRunner:
    kind = "torch"

    def __init__(self, model: nn.Module):
        self.model = model.eval()

    def __call__(self, x: np.ndarray):
        with torch.no_grad():
            y = self.model(torch.from_numpy(x))
        return one_or_list([t.numpy() for t in y]) if isinstance(y, (tuple, list)) else y.numpy()


ONNX_SEMANTICS = ("reference", "fused")
TFLITE_KERNELS = ("reference", "builtin", "xnnpack")


class OnnxRunner:
    def __init__(self, path: str | Path, threads: int = 1, semantics: str = "reference"):
        import onnxruntime as ort

        if semantics not in ONNX_SEMANTICS:
            raise ValueError(f"semantics must be one of {ONNX_SEMANTICS}, got {semantics!r}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        quantized = _is_quantized(path)
        if semantics == "reference":
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            self.kind = "onnxruntime, QDQ reference" if quantized else "onnxruntime, unoptimised graph"
        elif quantized:
            from .host_cpu import int8_isa

            self.kind = f"onnxruntime, fused int8 kernels of this CPU ({int8_isa()})"
        else:
            self.kind = "onnxruntime"
        with step(f"loading {Path(path).name} in onnxruntime"):
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input, self.batch_one = first.name, first.shape[0] == 1

    def __call__(self, x: np.ndarray):
        x = x.astype(np.float32, copy=False)
        if not self.batch_one:
            return one_or_list(self.session.run(None, {self.input: x}))
        runs = [self.session.run(None, {self.input: x[i:i + 1]}) for i in range(len(x))]
        return one_or_list([np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))])


def _is_quantized(path: str | Path) -> bool:
    import onnx

    with step(f"reading {Path(path).name}"):
        graph = onnx.load(str(path), load_external_data=False).graph
    return any(n.op_type in ("QuantizeLinear", "QLinearConv", "QLinearMatMul") for n in graph.node)


class TFLiteRunner:
    def __init__(self, path: str | Path, threads: int = 1, channels_last: bool = True, keep_tensors: bool = False,
                 kernels: str = "reference"):
        """`keep_tensors`: keep every intermediate tensor readable after invoke (a diagnosis; the
        interpreter then holds all of them in memory). `kernels`: see the module's docstring."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolvers = {"reference": OpResolverType.BUILTIN_REF, "xnnpack": OpResolverType.AUTO,
                     "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        if kernels not in resolvers:
            raise ValueError(f"kernels must be one of {TFLITE_KERNELS}, got {kernels!r}")
        self.kind = {"reference": "LiteRT reference kernels", "xnnpack": "LiteRT, XNNPACK",
                     "builtin": "LiteRT optimised kernels"}[kernels]
        with native_output_captured(), step(f"loading {Path(path).name} in the LiteRT interpreter"):
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads,
                                           experimental_preserve_all_tensors=keep_tensors,
                                           experimental_op_resolver_type=resolvers[kernels])
            self.interpreter.allocate_tensors()
            self.inp = self.interpreter.get_input_details()[0]
            details = self.interpreter.get_output_details()
            self.outs = [details[i] for i in output_positions(self.interpreter)]
            self.out = self.outs[0]
            self.nhwc = channels_last and len(self.inp["shape"]) == 4  # pea-export writes NHWC input
            self.nhwc_outs = [channels_last and len(o["shape"]) == 4 for o in self.outs]  # and 4-D outputs
            self.interpreter.invoke()  # the first invoke prints the XNNPACK delegate notice

    def __call__(self, x: np.ndarray):
        rows = []
        for sample in x:  # the file is specialised to batch 1, as the device runs it
            sample = sample[None]
            if self.nhwc:
                sample = sample.transpose(0, 2, 3, 1)
            self.interpreter.set_tensor(self.inp["index"], quantize_input(np.ascontiguousarray(sample), self.inp["dtype"],
                                                                          *self.inp["quantization"]))
            self.interpreter.invoke()
            ys = [dequantize_output(self.interpreter.get_tensor(o["index"]), *o["quantization"]) for o in self.outs]
            rows.append([y.transpose(0, 3, 1, 2) if nhwc else y for y, nhwc in zip(ys, self.nhwc_outs)])
        return one_or_list([np.concatenate([r[k] for r in rows]) for k in range(len(self.outs))])


def output_positions(interpreter) -> list[int]:
    """Positions in the file's output list (LiteRT's get_output_details order, TFLite Micro's output
    indices), in the torch model's output order: litert-torch names them output_0, output_1, ... in
    its signature, and the flatbuffer's output list need not follow it."""
    details = interpreter.get_output_details()
    signatures = interpreter._get_full_signature_list() or {}
    outputs = next(iter(signatures.values()), {}).get("outputs", {}) if signatures else {}
    ordered = sorted(outputs.items(), key=lambda kv: (len(kv[0]), kv[0]))
    where = {d["index"]: k for k, d in enumerate(details)}
    if outputs and all(name.startswith("output_") for name, _ in ordered) and all(i in where for _, i in ordered):
        return [where[i] for _, i in ordered]
    return list(range(len(details)))


def quantize_input(x: np.ndarray, dtype, scale: float, zero: int) -> np.ndarray:
    """`x` in the input tensor's type: quantized with the file's scale and zero point when integer."""
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def dequantize_output(y: np.ndarray, scale: float, zero: int) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        return y.astype(np.float32)
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def latency_ms(runner, example: np.ndarray, runs: int = 50, warmup: int = 5) -> dict:
    """Median and p90 wall time of one batch-1 inference, in milliseconds (torch on one thread, as
    the other runners are built)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _time(runner, example, runs, warmup)
    finally:
        torch.set_num_threads(threads)


def _time(runner, example: np.ndarray, runs: int, warmup: int) -> dict:
    for _ in range(warmup):
        runner(example)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runner(example)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"median_ms": round(statistics.median(times), 4), "p90_ms": round(times[int(0.9 * (len(times) - 1))], 4),
            "runs": runs}
