"""int8 ONNX: onnxruntime static quantization, QDQ format, per-channel int8 weights, calibrated on
real images. Activations int8 (what NPUs take) or uint8 (much faster on x86 onnxruntime)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import ConfigError, unknown_name
from .steps import step

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
ACTIVATION_DTYPES = ("int8", "uint8")


def quantize_onnx(fp32_path: str | Path, out_path: str | Path, calibration: torch.Tensor, *,
                  method: str = "minmax", activation_dtype: str = "int8") -> Path:
    """Statically quantize `fp32_path` to QDQ int8 at `out_path`, calibrated on `calibration`
    (normalised NCHW float images, fed one at a time as the static batch-1 model takes them)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise unknown_name("calibration method", method, CALIBRATION_METHODS)
    if activation_dtype not in ACTIVATION_DTYPES:
        raise unknown_name("activation dtype", activation_dtype, ACTIVATION_DTYPES)
    if len(calibration) == 0:
        raise ConfigError("no calibration images")
    import onnx

    with step(f"reading {Path(fp32_path).name}"):
        input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    samples = calibration.numpy().astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._items = iter(samples[i:i + 1] for i in range(len(samples)))

        def get_next(self):
            item = next(self._items, None)
            return None if item is None else {input_name: item}

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    act_type = QuantType.QInt8 if activation_dtype == "int8" else QuantType.QUInt8
    with tempfile.TemporaryDirectory(prefix="pea-quant-") as work:
        prepared = Path(work) / "prepared.onnx"
        with step("ONNX int8 pre-processing (onnxruntime quant_pre_process)"):
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        with atomic_path(out_path) as tmp, step(f"ONNX int8 quantization (onnxruntime, {method} calibration)"):
            quantize_static(str(prepared), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=act_type, weight_type=QuantType.QInt8,
                            calibrate_method=methods[method],
                            extra_options={"CalibTensorRangeSymmetric": False,
                                           "CalibMovingAverage": False})
    return Path(out_path)
