"""A detector in the YOLOv8 family's style, written here: Conv-BN-ReLU blocks, C2f, SPPF, a PAN neck
and an anchor-free decoupled head at strides 8, 16 and 32 (fewer on small inputs: `levels`).

Activations are nn.ReLU modules, so `convert` turns them into PEA ensembles and the upper-limit run
makes them SiLU (YOLOv8's own activation). The network returns one raw map per level,
(B, 4 + classes, H, W): box distances before softplus and class logits; decoding and NMS run outside
the exported graph (pea_deploy.detection), as NPU deployments run them. Every op (conv, max-pool,
nearest x2 upsampling, concatenation, slices) is one Ethos-U runs.

Sizes: `width` scales channels (base 64-128-256-512 at 1.0; 0.25 is YOLOv8n's), `depth` the
bottlenecks per C2f (base 3-6-6-3; 0.34 is YOLOv8n's: 1-2-2-1).
"""

from __future__ import annotations

import torch
from torch import nn


def _ch(c: float) -> int:
    return max(8, int(round(c / 8)) * 8)


class ConvBNAct(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool = True):
        super().__init__()
        self.cv1, self.cv2 = ConvBNAct(c, c, 3), ConvBNAct(c, c, 3)
        self.add = shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """Split the 1x1 conv's output in two, run bottlenecks on one half, keep every intermediate,
    concatenate them all and mix with a 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False):
        super().__init__()
        self.c = c_out // 2
        self.cv1 = ConvBNAct(c_in, 2 * self.c)
        self.cv2 = ConvBNAct((2 + n) * self.c, c_out)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 stride-1 max-pools, concatenated."""

    def __init__(self, c_in: int, c_out: int, k: int = 5):
        super().__init__()
        hidden = c_in // 2
        self.cv1, self.cv2 = ConvBNAct(c_in, hidden), ConvBNAct(hidden * 4, c_out)
        self.pool = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))


class DetectHead(nn.Module):
    """Decoupled, per level: a box branch (4 distances) and a class branch (logits)."""

    def __init__(self, channels: list[int], num_classes: int):
        super().__init__()
        box_c, cls_c = max(16, channels[0] // 4, 4 * 4), max(channels[0], min(num_classes, 100))
        self.box = nn.ModuleList(nn.Sequential(ConvBNAct(c, box_c, 3), ConvBNAct(box_c, box_c, 3),
                                               nn.Conv2d(box_c, 4, 1)) for c in channels)
        self.cls = nn.ModuleList(nn.Sequential(ConvBNAct(c, cls_c, 3), ConvBNAct(cls_c, cls_c, 3),
                                               nn.Conv2d(cls_c, num_classes, 1)) for c in channels)
        for branch in self.cls:  # start from a low, equal class prior (about 1 %), as detectors do
            nn.init.constant_(branch[-1].bias, -4.6)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return tuple(torch.cat([b(f), c(f)], 1) for f, b, c in zip(feats, self.box, self.cls))


class YOLODetector(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 0.25, depth: float = 0.34,
                 levels: int = 3):
        super().__init__()
        if levels not in (1, 2, 3):
            raise ValueError(f"levels must be 1, 2 or 3 (strides 8, 16, 32), got {levels}")
        c1, c2, c3, c4, c5 = (_ch(v * width) for v in (64, 128, 256, 512, 1024 * 0.5))
        n = [max(1, round(v * depth)) for v in (3, 6, 6, 3)]
        self.levels = levels
        self.strides = (8, 16, 32)[:levels]
        self.stem = ConvBNAct(in_channels, c1, 3, 2)
        self.stage1 = nn.Sequential(ConvBNAct(c1, c2, 3, 2), C2f(c2, c2, n[0], True))      # stride 4
        self.stage2 = nn.Sequential(ConvBNAct(c2, c3, 3, 2), C2f(c3, c3, n[1], True))      # P3, stride 8
        self.stage3 = nn.Sequential(ConvBNAct(c3, c4, 3, 2), C2f(c4, c4, n[2], True))      # P4, stride 16
        self.stage4 = nn.Sequential(ConvBNAct(c4, c5, 3, 2), C2f(c5, c5, n[3], True), SPPF(c5, c5))  # P5
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top_down4 = C2f(c5 + c4, c4, n[3])                  # P5 up + P4
        self.top_down3 = C2f(c4 + c3, c3, n[3])                  # P4' up + P3 -> out P3
        if levels > 1:
            self.down3 = ConvBNAct(c3, c3, 3, 2)
            self.bottom_up4 = C2f(c3 + c4, c4, n[3])             # out P4
        if levels > 2:
            self.down4 = ConvBNAct(c4, c4, 3, 2)
            self.bottom_up5 = C2f(c4 + c5, c5, n[3])             # out P5
        self.head = DetectHead([c3, c4, c5][:levels], num_classes)

    def forward(self, x):
        p3 = self.stage2(self.stage1(self.stem(x)))
        p4 = self.stage3(p3)
        p5 = self.stage4(p4)
        t4 = self.top_down4(torch.cat([self.up(p5), p4], 1))
        n3 = self.top_down3(torch.cat([self.up(t4), p3], 1))
        feats = [n3]
        if self.levels > 1:
            n4 = self.bottom_up4(torch.cat([self.down3(n3), t4], 1))
            feats.append(n4)
            if self.levels > 2:
                feats.append(self.bottom_up5(torch.cat([self.down4(n4), p5], 1)))
        return self.head(feats)


def yolo_detector(num_classes: int, in_channels: int = 3, width: float = 0.25, depth: float = 0.34,
                  levels: int = 3) -> YOLODetector:
    return YOLODetector(num_classes, in_channels, width, depth, levels)
