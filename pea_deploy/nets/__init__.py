"""Network architectures by name: `build_net(name, num_classes, in_channels, **options)`."""

from __future__ import annotations

import inspect

from torch import nn

from ..errors import ConfigError, unknown_name
from .alexnet import AlexNetBN
from .erfnet import ERFNetClassifier, ERFNetSegmentation
from .mobilenet import MobileNetV1
from .resnet import BasicBlock, Bottleneck, ResNet


def _resnet(block, layers):
    def build(num_classes, in_channels=3, **kw):
        return ResNet(block, layers, num_classes, in_channels, **kw)
    build.options = ResNet
    return build


# name -> constructor(num_classes, in_channels, **options)
NETS = {
    "resnet18": _resnet(BasicBlock, [2, 2, 2, 2]),
    "resnet50": _resnet(Bottleneck, [3, 4, 6, 3]),
    "mobilenet-v1": MobileNetV1,
    "alexnet-bn": AlexNetBN,
    "erfnet": ERFNetClassifier,
    "erfnet-seg": ERFNetSegmentation,
}
SEGMENTATION_NETS = {"erfnet-seg"}  # per-pixel logits (N, classes, H, W): train on segmentation sets


def build_net(name: str, num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    """Build architecture `name`; options (width, stem, dropout, relu6) go to its constructor."""
    if name not in NETS:
        raise unknown_name("model", name, NETS)
    ctor = NETS[name]
    accepted = set(inspect.signature(getattr(ctor, "options", ctor).__init__).parameters)
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        raise ConfigError(f"model {name!r} does not take option(s): {', '.join(unknown)}")
    try:
        return ctor(num_classes, in_channels, **options)
    except ValueError as e:
        raise ConfigError(f"model {name!r}: {e}") from None
