"""AlexNet-BN: AlexNet (Krizhevsky et al. 2012) with local response normalisation replaced by batch
normalisation after every conv, as in the paper (Sec. 4.1, following Simon et al.)."""

from __future__ import annotations

from torch import Tensor, nn


def _conv(cin: int, cout: int, k: int, stride: int, pad: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class AlexNetBN(nn.Module):
    """`stem="small"` (for <= 64 px inputs): a 3x3/1 first conv and 2x2 pools instead of 11x11/4."""

    def __init__(self, num_classes: int, in_channels: int = 3, stem: str = "imagenet",
                 width: float = 1.0, dropout: float = 0.5):
        super().__init__()
        c = [max(8, int(v * width)) for v in (64, 192, 384, 256, 256)]
        hidden = max(64, int(4096 * width))
        if stem == "small":
            first, pool = _conv(in_channels, c[0], 3, 1, 1), (2, 2)
        else:
            first, pool = _conv(in_channels, c[0], 11, 4, 2), (3, 2)
        self.features = nn.Sequential(
            *first, nn.MaxPool2d(*pool, ceil_mode=True),
            *_conv(c[0], c[1], 5, 1, 2), nn.MaxPool2d(*pool, ceil_mode=True),
            *_conv(c[1], c[2], 3, 1, 1), *_conv(c[2], c[3], 3, 1, 1), *_conv(c[3], c[4], 3, 1, 1),
            nn.MaxPool2d(*pool, ceil_mode=True))
        side = 2 if stem == "small" else 6
        self.pool = nn.AdaptiveAvgPool2d(side)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c[4] * side * side, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


