"""Run each artefact the way a deployment would: torch, onnxruntime, the LiteRT interpreter.

Every runner takes normalised NCHW float32 batches and returns float32 logits (NCHW for per-pixel
outputs), so the parity table compares like with like; the TFLite runner does the NHWC layout and
the int8 (de)quantization of input and output with the scales stored in the file, as an
application on the device would.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .steps import native_output_captured, step


class TorchRunner:
    kind = "torch"

    def __init__(self, model: nn.Module):
        self.model = model.eval()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.model(torch.from_numpy(x)).numpy()


class OnnxRunner:
    kind = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        with step(f"loading {Path(path).name} in onnxruntime"):
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input, self.batch_one = first.name, first.shape[0] == 1

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32, copy=False)
        if not self.batch_one:
            return self.session.run(None, {self.input: x})[0]
        return np.concatenate([self.session.run(None, {self.input: x[i:i + 1]})[0] for i in range(len(x))])


class TFLiteRunner:
    kind = "litert"

    def __init__(self, path: str | Path, threads: int = 1, channels_last: bool = True, keep_tensors: bool = False):
        """`keep_tensors`: keep every intermediate tensor readable after invoke (a diagnosis; the
        interpreter then runs without XNNPACK and holds all of them in memory)."""
        from ai_edge_litert.interpreter import Interpreter

        with native_output_captured(), step(f"loading {Path(path).name} in the LiteRT interpreter"):
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads,
                                           experimental_preserve_all_tensors=keep_tensors)
            self.interpreter.allocate_tensors()
            self.inp = self.interpreter.get_input_details()[0]
            self.out = self.interpreter.get_output_details()[0]
            self.nhwc = channels_last and len(self.inp["shape"]) == 4  # pea-export writes NHWC input
            self.nhwc_out = channels_last and len(self.out["shape"]) == 4  # and per-pixel outputs NHWC
            self.interpreter.invoke()  # the first invoke prints the XNNPACK delegate notice

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self.inp["dtype"]
        if not np.issubdtype(dtype, np.integer):
            return x.astype(dtype)
        scale, zero = self.inp["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if not np.issubdtype(y.dtype, np.integer):
            return y.astype(np.float32)
        scale, zero = self.out["quantization"]
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        rows = []
        for sample in x:  # the file is specialised to batch 1, as the device runs it
            sample = sample[None]
            if self.nhwc:
                sample = sample.transpose(0, 2, 3, 1)
            self.interpreter.set_tensor(self.inp["index"], self._quantize(np.ascontiguousarray(sample)))
            self.interpreter.invoke()
            y = self._dequantize(self.interpreter.get_tensor(self.out["index"]))
            rows.append(y.transpose(0, 3, 1, 2) if self.nhwc_out else y)
        return np.concatenate(rows)


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
