"""MobileNet v1 (Howard et al. 2017) with a width multiplier; ReLU or ReLU6 after every conv."""

from __future__ import annotations

from torch import Tensor, nn

# (output channels at width 1.0, stride) of the 13 depthwise-separable blocks
_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
           (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


def _conv_bn_act(cin: int, cout: int, k: int, stride: int, groups: int, relu6: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True) if relu6 else nn.ReLU(inplace=True))


class MobileNetV1(nn.Module):
    """`stem="small"` uses stride 1 in the first conv and drops the first two stride-2 steps, so
    28x28 inputs still reach a 4x4 final map."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0,
                 relu6: bool = False, stem: str = "imagenet", dropout: float = 0.0):
        super().__init__()
        if not 0.1 <= width <= 1.0:
            raise ValueError(f"MobileNet width multiplier must be in [0.1, 1.0], got {width}")

        def ch(c: int) -> int:
            return max(8, int(c * width))

        small = stem == "small"
        layers = [_conv_bn_act(in_channels, ch(32), 3, 1 if small else 2, 1, relu6)]
        cin, skipped = ch(32), 0
        for cout, stride in _BLOCKS:
            if small and stride == 2 and skipped < 2:
                stride, skipped = 1, skipped + 1
            layers.append(_conv_bn_act(cin, cin, 3, stride, cin, relu6))  # depthwise
            layers.append(_conv_bn_act(cin, ch(cout), 1, 1, 1, relu6))    # pointwise
            cin = ch(cout)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.pool(self.features(x)).flatten(1)))


