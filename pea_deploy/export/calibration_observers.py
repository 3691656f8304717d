"""Activation range choices for the TFLite path, matching the names of onnxruntime's calibration
methods so that one `--calib-method` means the same idea for both artefacts.

- minmax: the observed range (torchao MinMaxObserver).
- histogram: torchao's HistogramObserver, an L2-error search over a histogram (litert-torch's default).
- percentile: the range holding 99.999 % of the observed values, cut evenly from both tails, as
  onnxruntime's percentile calibrator does for a non-symmetric range.

onnxruntime's entropy method is not offered here: with its default 128 histogram bins it keeps the
whole symmetric range, and a TensorRT-style KL search over 2048 bins, tried here, clipped ReLU6
layers hard enough to drop the logit cosine to torch from 0.9998 to 0.60 on a small MobileNet.
"""

from __future__ import annotations

import numpy as np
import torch
from torchao.quantization.pt2e.observer import HistogramObserver, MinMaxObserver

PERCENTILE = 99.999


class PercentileObserver(HistogramObserver):
    """A HistogramObserver whose range drops the outer (100 - PERCENTILE) % of values, half from
    each tail, instead of searching for the least L2 error."""

    def _non_linear_param_search(self):
        hist = self.histogram.double().cpu().numpy()
        lo, hi = float(self.min_val), float(self.max_val)
        if hist.sum() == 0 or hi <= lo:
            return self.min_val, self.max_val
        edges = np.linspace(lo, hi, len(hist) + 1)
        cdf = np.cumsum(hist) / hist.sum()
        tail = (1.0 - PERCENTILE / 100.0) / 2.0
        new_lo = float(edges[int(np.searchsorted(cdf, tail))])
        new_hi = float(edges[min(int(np.searchsorted(cdf, 1.0 - tail)) + 1, len(edges) - 1)])
        # the range keeps 0 inside, so that zero padding and ReLU zeros stay exact
        return (torch.tensor(min(new_lo, 0.0) if lo <= 0 else new_lo, dtype=self.min_val.dtype),
                torch.tensor(max(new_hi, 0.0) if hi >= 0 else new_hi, dtype=self.max_val.dtype))


ACTIVATION_OBSERVERS = {"minmax": MinMaxObserver, "histogram": HistogramObserver,
                        "percentile": PercentileObserver}
