"""Run an int8 TFLite file in TensorFlow Lite for Microcontrollers, the runtime Ethos-U and Cortex-M
devices run it in, and measure the tensor arena it needs: the SRAM a device must give the model.

TFLM's kernels here are its portable reference kernels (the CMSIS-NN and Ethos-U ones exist only on
the device); they compute the integer semantics TFLite defines, as LiteRT's reference kernels do.
A model TFLM cannot run (an operator it lacks, a tensor it cannot place) fails with TFLM's reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ExportStepError
from .outputs import one_or_list
from .runtimes import dequantize_output, output_positions, quantize_input
from .steps import native_output_captured, step

# TFLM's own heuristic is 10x the model's bytes; a net whose activations outgrow it gets up to 64x
ARENA_FACTORS = (10, 64)
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


def _scale_zero(details: dict) -> tuple[float, int]:
    """(scale, zero point) of a TFLM tensor's details; (0, 0) for a float tensor."""
    q = details.get("quantization_parameters") or {}
    scales, zeros = q.get("scales", []), q.get("zero_points", [])
    return (float(scales[0]), int(zeros[0])) if len(scales) else (0.0, 0)


def _output_positions(path: Path) -> list[int]:
    """The file's outputs in the torch model's order, read from its signature by LiteRT (TFLite
    Micro's interpreter does not read signatures)."""
    from ai_edge_litert.interpreter import Interpreter

    with native_output_captured():
        return output_positions(Interpreter(model_path=str(path)))


class TFLMRunner:
    kind = "TFLite Micro"

    def __init__(self, path: str | Path, channels_last: bool = True):
        from tflite_micro import runtime

        path = Path(path)
        data = path.read_bytes()
        failure = None
        with native_output_captured() as captured:
            for factor in ARENA_FACTORS:
                try:
                    self.interpreter = runtime.Interpreter.from_bytes(data, arena_size=factor * len(data) + (64 << 10))
                    break
                except RuntimeError as e:
                    said = [ln.strip() for ln in captured().splitlines() if ln.strip()]
                    # a too-small arena is retried; any other failure (an unsupported op) is TFLM's answer
                    if said and said[0].startswith("Failed to allocate") and factor != ARENA_FACTORS[-1]:
                        continue
                    failure = ("; ".join(said[:2]) or str(e))[:300]
                    break
        if failure is not None:
            raise ExportStepError(f"TFLite Micro cannot run {path.name}: {failure}")
        self.inp = self.interpreter.get_input_details(0)
        self.positions = _output_positions(path)
        self.outs = [self.interpreter.get_output_details(i) for i in self.positions]
        self.nhwc = channels_last and len(self.inp["shape"]) == 4
        self.nhwc_outs = [channels_last and len(o["shape"]) == 4 for o in self.outs]
        self.in_params, self.out_params = _scale_zero(self.inp), [_scale_zero(o) for o in self.outs]
        self._arena_bytes: int | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        rows = []
        with step("TFLite Micro inference"):
            for sample in x:  # batch 1, as the device runs it
                sample = sample[None]
                if self.nhwc:
                    sample = sample.transpose(0, 2, 3, 1)
                self.interpreter.set_input(quantize_input(np.ascontiguousarray(sample), self.inp["dtype"],
                                                          *self.in_params), 0)
                self.interpreter.invoke()
                ys = [dequantize_output(np.array(self.interpreter.get_output(i)), *params)
                      for i, params in zip(self.positions, self.out_params)]
                rows.append([y.transpose(0, 3, 1, 2) if nhwc else y for y, nhwc in zip(ys, self.nhwc_outs)])
        return one_or_list([np.concatenate([r[k] for r in rows]) for k in range(len(self.outs))])

    def arena_bytes(self) -> int:
        """Bytes of the tensor arena the model used (TFLM's recording allocator: head + tail), after
        at least one inference; the figure a device's arena must at least hold."""
        if self._arena_bytes is None:
            with native_output_captured() as captured:  # TFLM prints it from C++, below sys.stderr
                self.interpreter.print_allocations()
                found = _ARENA_TOTAL.search(captured())
            if found is None:
                raise ExportStepError("TFLite Micro did not report its tensor arena (print_allocations)")
            self._arena_bytes = int(found.group(1))
        return self._arena_bytes

