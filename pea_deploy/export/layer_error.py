"""Which layer loses accuracy in int8: the quantization error of every quantized tensor of an artefact.

Two numbers a tensor, each a median over channels of the per-channel SQNR in dB (10*log10 of
signal power over error power). Per-channel medians, because one outlier channel owns a whole-tensor
SQNR (its large values are represented well) while the scale it forces flattens every other channel.
- local: the float activation quantized with this tensor's own scale and zero point, and nothing
  else: how well this tensor's range suits its values. A low local SQNR names the layer to fix
  (an outlier, a range wasted on values an activation has clamped, a calibration that missed).
- accumulated: the artefact's activation, as its runtime computed it from int8 inputs through every
  layer before, against the float activation. Where it falls is where the error builds up.

The rows are ranked by local SQNR, worst first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

TOP = 10


@dataclass
class TensorError:
    tensor: str                 # the artefact's tensor (ONNX name; TFLite: the torch graph node)
    module: str                 # the torch module that produced it ("" where the name does not say)
    op: str                     # the op that produced it
    scale: float
    zero_point: int
    local_sqnr_db: float | None        # None: no signal (every channel all zero)
    accumulated_sqnr_db: float | None  # None: the runtime's tensor could not be read

    def to_dict(self) -> dict:
        return asdict(self)


class ChannelNoise:
    """Running per-channel signal and error power of (error, reference) pairs, channel axis 1."""

    def __init__(self):
        self.signal: np.ndarray | None = None
        self.noise: np.ndarray | None = None

    def add(self, value: np.ndarray, reference: np.ndarray) -> None:
        ref = _channels(reference)
        err = _channels(value) - ref
        s, n = (ref * ref).sum(1), (err * err).sum(1)
        self.signal = s if self.signal is None else self.signal + s
        self.noise = n if self.noise is None else self.noise + n

    def median_db(self) -> float | None:
        if self.signal is None:
            return None
        live = self.signal > 0
        if not live.any():
            return None
        # an exact channel has no error to measure; 200 dB stands for "exact" far above any int8 SQNR
        db = np.where(self.noise[live] > 0,
                      10.0 * np.log10(self.signal[live] / np.maximum(self.noise[live], 1e-300)), 200.0)
        return round(float(np.median(np.minimum(db, 200.0))), 2)


def _channels(x: np.ndarray) -> np.ndarray:
    """(channels, values) in float64: axis 1 is the channel axis of NCHW and (N, features) tensors."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        return x.reshape(1, -1)
    return np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)


def fake_quantize(x: np.ndarray, scale: float, zero_point: int, qmin: int, qmax: int) -> np.ndarray:
    """x through an int8 quantize/dequantize pair (round half to even, as both runtimes do)."""
    q = np.clip(np.rint(np.asarray(x, dtype=np.float64) / scale) + zero_point, qmin, qmax)
    return ((q - zero_point) * scale).astype(np.float32)


def ranked(errors: list[TensorError]) -> list[TensorError]:
    """Worst local SQNR first; tensors without a signal last."""
    return sorted(errors, key=lambda e: (e.local_sqnr_db is None, e.local_sqnr_db or 0.0))


def markdown_table(errors: list[TensorError], top: int = TOP) -> list[str]:
    def db(v):
        return "" if v is None else f"{v:.1f}"

    lines = ["| rank | module | op | tensor | local SQNR dB | accumulated SQNR dB | scale |",
             "|---:|---|---|---|---:|---:|---:|"]
    for i, e in enumerate(ranked(errors)[:top], 1):
        lines.append(f"| {i} | `{e.module or '?'}` | {e.op} | `{e.tensor}` | {db(e.local_sqnr_db)} | "
                     f"{db(e.accumulated_sqnr_db)} | {e.scale:.4g} |")
    return lines


def as_numpy_images(images) -> np.ndarray:
    """Images as the runners take them (float32 numpy), from numpy or a torch tensor."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    return np.ascontiguousarray(images, dtype=np.float32)
