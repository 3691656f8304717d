"""A network built the way TensorFlow ports are (issue 16): MobileNetV2-style inverted residual
blocks with ReLU6, linear bottlenecks, and TF "same" padding done by an explicit ZeroPad2d before each
stride-2 depthwise conv. Trained briefly on Fashion-MNIST for the int8 tests and benchmark."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

MEAN, STD = 0.286, 0.353  # Fashion-MNIST's pixel statistics (0..1 scale)


def _block(cin: int, cout: int, stride: int, expand: int = 4) -> nn.Sequential:
    hidden = cin * expand
    layers = OrderedDict(expand=nn.Conv2d(cin, hidden, 1, bias=False), expand_bn=nn.BatchNorm2d(hidden),
                         expand_act=nn.ReLU6())
    if stride == 2:  # TF "same" for a 3x3/2 conv on an even size: nothing before, one row/column after
        layers["same_pad"] = nn.ZeroPad2d((0, 1, 0, 1))
    layers.update(depthwise=nn.Conv2d(hidden, hidden, 3, stride, 0 if stride == 2 else 1, groups=hidden, bias=False),
                  depthwise_bn=nn.BatchNorm2d(hidden), depthwise_act=nn.ReLU6(),
                  project=nn.Conv2d(hidden, cout, 1, bias=False), project_bn=nn.BatchNorm2d(cout))
    return nn.Sequential(layers)


class TFStyleNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6())
        self.blocks = nn.Sequential(_block(width, 24, 2), _block(24, 32, 2), _block(32, 48, 1))
        self.head = nn.Sequential(nn.Conv2d(48, 96, 1, bias=False), nn.BatchNorm2d(96), nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(96, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.head(self.blocks(self.stem(x)))).flatten(1))


def fashion_images(split, count: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = (split.images[start:start + count].float() / 255 - MEAN) / STD
    return x, split.labels[start:start + count]


def trained_tf_style_net(data, images: int = 12000, seed: int = 0) -> TFStyleNet:
    """One pass of Adam over `images` training images: about 79 % top-1, 10 s on 2 cores."""
    torch.manual_seed(seed)
    net = TFStyleNet()
    x, y = fashion_images(data.train, images)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for i in range(0, len(x), 128):
        loss = nn.functional.cross_entropy(net(x[i:i + 128]), y[i:i + 128])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def with_activation_outlier(net: TFStyleNet, value: float = 300.0) -> tuple[TFStyleNet, str]:
    """A copy whose block-1 bottleneck carries `value` (plus a hundredth of its old signal) on
    channel 0, which the next block ignores (its weights for that channel zeroed): the float
    function of the other channels is unchanged, but an int8 scale must now span `value`. Returns
    the copy and the broken module."""
    import copy

    broken = copy.deepcopy(net)
    with torch.no_grad():
        bn = broken.blocks[1].project_bn
        bn.weight[0] *= 0.01  # not 0: a zero weight channel gives QAT's fake-quantizer a zero scale
        bn.bias[0] = value
        broken.blocks[2].expand.weight[:, 0] = 0.0
    return broken, "blocks.1.project"
