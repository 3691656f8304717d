"""A user's network, as users write them: plain PyTorch, no pea-deploy import.

A small MobileNetV3-style classifier with the activations of today's efficient nets: Hardswish and
SiLU in the inverted-residual blocks, GELU in the head, and squeeze-excitation gates (Hardsigmoid,
as MobileNetV3 has them). Sized for 28x28 grey images (Fashion-MNIST) on a CPU.

    pea-train --model-file examples/mobilenet_v3_style.py:build --act keep ...
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Channel attention: x * hardsigmoid(fc(relu(fc(mean(x))))). The Hardsigmoid is a gate, not an
    activation of the feature map."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(8, channels // reduction)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, stride: int, act: type[nn.Module], se: bool):
        super().__init__()
        mid = cin * expand
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), act(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), act(),
            SqueezeExcite(mid) if se else nn.Identity(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV3Style(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0):
        super().__init__()
        c = lambda n: max(8, int(round(n * width / 8)) * 8)  # noqa: E731 - channel counts in multiples of 8
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c(16), 3, 1, 1, bias=False), nn.BatchNorm2d(c(16)),
                                  nn.Hardswish())
        self.blocks = nn.Sequential(
            InvertedResidual(c(16), c(24), 3, 2, nn.SiLU, se=False),      # 14x14
            InvertedResidual(c(24), c(24), 3, 1, nn.SiLU, se=False),
            InvertedResidual(c(24), c(40), 4, 2, nn.Hardswish, se=True),  # 7x7
            InvertedResidual(c(40), c(40), 4, 1, nn.Hardswish, se=True),
            InvertedResidual(c(40), c(64), 4, 1, nn.Hardswish, se=True))
        self.head = nn.Sequential(nn.Conv2d(c(64), c(128), 1, bias=False), nn.BatchNorm2d(c(128)), nn.GELU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1),
                                  nn.Linear(c(128), num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def build(num_classes: int = 10, in_channels: int = 1, width: float = 1.0) -> nn.Module:
    return MobileNetV3Style(num_classes, in_channels, width)
