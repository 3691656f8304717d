"""Small multi-op probe networks for the Vela differential check: torch blocks as vision nets build
them, converted to int8 TFLite by pea-export's own path (litert-torch, pea-deploy[tflite]), so the
check also sees what a converter makes of ops in combination (fused activations, pads folded into
SAME, sub-pixel upsampling, residual adds, concatenations) and not only single hand-written ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1),
                                  nn.BatchNorm2d(c))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.body(x) + x)


class _Branches(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.ReLU())

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


class _SqueezeExcite(nn.Module):
    def __init__(self, c: int, gate: nn.Module):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Conv2d(c, c // 2, 1), nn.ReLU(), nn.Conv2d(c // 2, c, 1), gate)

    def forward(self, x):
        return x * self.fc(self.pool(x))


@dataclass(frozen=True)
class NetworkProbe:
    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, int, int, int] = (1, 8, 16, 16)

    def write(self, path: str | Path) -> Path:
        from ..export.tflite_export import export_tflite_int8

        torch.manual_seed(0)
        net = self.build().eval()
        calibration = torch.randn(8, *self.input_shape[1:])
        return export_tflite_int8(net, calibration, path)


def network_probes() -> list[NetworkProbe]:
    c = 8
    return [
        NetworkProbe("conv-bn-relu-maxpool", lambda: nn.Sequential(
            nn.Conv2d(c, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))),
        NetworkProbe("residual-block", lambda: _Residual(c)),
        NetworkProbe("depthwise-separable-tf-same-pad", lambda: nn.Sequential(
            nn.Conv2d(c, 32, 1), nn.ReLU6(), nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(32, 32, 3, 2, groups=32),
            nn.ReLU6(), nn.Conv2d(32, 16, 1))),
        NetworkProbe("concatenated-branches", lambda: _Branches(c)),
        NetworkProbe("nearest-x2-decoder", lambda: nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, 1, 1), nn.ReLU())),
        NetworkProbe("bilinear-x2-decoder", lambda: nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(c, c, 3, 1, 1))),
        NetworkProbe("transposed-conv-x2", lambda: nn.Sequential(
            nn.ConvTranspose2d(c, c, 3, 2, 1, output_padding=1), nn.ReLU())),
        NetworkProbe("classifier-head", lambda: nn.Sequential(
            nn.Conv2d(c, 16, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))),
        NetworkProbe("alexnet-stem", lambda: nn.Sequential(
            nn.Conv2d(3, 16, 11, 4), nn.ReLU(), nn.MaxPool2d(3, 2)), (1, 3, 67, 67)),
        NetworkProbe("average-pool-7x7", lambda: nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(), nn.AvgPool2d(7)),
                     (1, 8, 14, 14)),
        NetworkProbe("squeeze-excite-hardsigmoid-gate", lambda: _SqueezeExcite(16, nn.Hardsigmoid()),
                     (1, 16, 8, 8)),
        # at the model input litert-torch keeps the block in NCHW (TRANSPOSE, MEAN over depth); after a
        # conv, as in a real net, it is NHWC throughout (MEAN over height and width)
        NetworkProbe("squeeze-excite-relu6-gate", lambda: _SqueezeExcite(16, nn.ReLU6()), (1, 16, 8, 8)),
        NetworkProbe("conv-squeeze-excite-conv", lambda: nn.Sequential(
            nn.Conv2d(c, 16, 3, 1, 1), nn.ReLU(), _SqueezeExcite(16, nn.ReLU6()), nn.Conv2d(16, 16, 1), nn.ReLU())),
        NetworkProbe("gelu-block", lambda: nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.GELU())),
        NetworkProbe("hardswish-block", lambda: nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.Hardswish())),
    ]
