"""What a user sets for an export (`pea-export`'s flags, `ExportOptions` in the library), checked in
one place before any work starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, unknown_name
from .onnx_quant import ACTIVATION_DTYPES, CALIBRATION_METHODS
from .tflite_quantizer import TFLITE_CALIBRATION_METHODS

FORMATS = ("onnx", "tflite", "pte")
IO_LAYOUTS = ("nhwc", "nchw")  # tflite_export.IO_LAYOUTS, without importing litert-torch
DEFAULT_FORMATS = ("onnx", "tflite")  # pte (ExecuTorch) on request: it needs its own extra
# Healthy int8 artefacts of the project's nets measure 0.999+; issue 16's third-party ImageNet
# MobileNet measured 0.995 (int8 ONNX, 89 % top-1 agreement) and 0.888 (TFLite, 67 %).
MIN_COSINE = 0.99


@dataclass
class ExportOptions:
    formats: tuple[str, ...] = DEFAULT_FORMATS
    calib_dir: str | Path | None = None
    calib_samples: int = 256
    calib_method: str | None = None       # None: minmax for ONNX, histogram for TFLite
    activation_dtype: str | None = None   # None: the profile's
    opset: int | None = None              # None: the profile's
    max_drop: float = 1.0                 # points of top-1 (mIoU for segmentation) an artefact may lose
    min_cosine: float = MIN_COSINE        # least mean output cosine to torch an artefact may have
    parity_samples: int | None = None     # None: the whole validation split
    checkpoint: str = "best"              # for a run directory: best or last
    model_file: str | None = None         # your network's PATH.py:FUNCTION, when the run's file moved
    latency_runs: int = 50
    diagnose_samples: int = 16            # validation images for the per-layer int8 error report
    vela_system_config: str | None = None  # None: the profile's (else Vela's internal default)
    vela_memory_mode: str | None = None
    qat_epochs: int = 0                   # > 0: the TFLite file comes from quantization-aware fine-tuning
    qat_lr: float = 1e-3
    qat_batch: int = 64
    tflite_io_layout: str = "nhwc"        # the TFLite file's 4-D input and outputs: nhwc or nchw
    seed: int = 0

    def validate(self) -> None:
        for f in self.formats:
            if f not in FORMATS:
                raise unknown_name("format", f, FORMATS)
        if not self.formats:
            raise ConfigError("--formats is empty; give one or more of onnx, tflite, pte")
        if self.calib_method is not None:
            known = tuple(dict.fromkeys(CALIBRATION_METHODS + TFLITE_CALIBRATION_METHODS))
            if self.calib_method not in known:
                raise unknown_name("calibration method", self.calib_method, known)
            for fmt, methods in (("onnx", CALIBRATION_METHODS), ("tflite", TFLITE_CALIBRATION_METHODS)):
                if fmt in self.formats and self.calib_method not in methods:
                    raise ConfigError(f"--calib-method {self.calib_method} does not apply to {fmt} "
                                      f"({fmt} takes {', '.join(methods)}); choose one both take or set --formats")
        if self.activation_dtype is not None and self.activation_dtype not in ACTIVATION_DTYPES:
            raise unknown_name("activation dtype", self.activation_dtype, ACTIVATION_DTYPES)
        if not self.max_drop >= 0:
            raise ConfigError(f"--max-drop must be >= 0 points, got {self.max_drop}")
        if not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"--min-cosine must be between -1 and 1, got {self.min_cosine}")
        if self.parity_samples is not None and self.parity_samples < 1:
            raise ConfigError(f"--parity-samples must be at least 1, got {self.parity_samples}")
        if self.checkpoint not in ("best", "last"):
            raise unknown_name("checkpoint", self.checkpoint, ("best", "last"))
        if self.qat_epochs < 0 or (self.qat_epochs and "tflite" not in self.formats):
            raise ConfigError(f"--qat-epochs must be >= 0 and needs --formats tflite, got {self.qat_epochs}")
        if not self.qat_lr > 0 or self.qat_batch < 2:
            raise ConfigError(f"--qat-lr must be > 0 and --qat-batch >= 2, got {self.qat_lr} and {self.qat_batch}")
        if self.diagnose_samples < 1:
            raise ConfigError(f"--diagnose-samples must be at least 1, got {self.diagnose_samples}")
        if self.tflite_io_layout not in IO_LAYOUTS:
            raise unknown_name("TFLite I/O layout", self.tflite_io_layout, IO_LAYOUTS)
        if self.latency_runs < 1:
            raise ConfigError(f"--latency-runs must be at least 1, got {self.latency_runs}")
