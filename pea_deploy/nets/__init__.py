"""Network architectures by name: `build_net(name, num_classes, in_channels, **options)`.

The names live in `pea_deploy.registry.NETS` (register your own with `register_net`)."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..registry import NETS


def is_segmentation_net(name: str) -> bool:
    """True for nets with per-pixel logits (N, classes, H, W): they train on segmentation sets."""
    return net_task(name) == "segmentation"


def net_task(name: str) -> str:
    """The task a registered net's outputs serve: classification, segmentation or detection."""
    return NETS.get(name).info["task"]


def build_net(name: str, num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    """Build architecture `name`; options (width, stem, dropout, relu6, norm) go to its builder."""
    entry = NETS.get(name)
    unknown = sorted(k for k in options if k not in entry.options)
    if unknown:
        raise ConfigError(f"model {name!r} does not take option(s): {', '.join(unknown)}")
    try:
        net = entry.load()(num_classes, in_channels, **options)
    except ValueError as e:
        raise ConfigError(f"model {name!r}: {e}") from None
    if not isinstance(net, nn.Module):
        raise ConfigError(f"model {name!r}: its builder returned {type(net).__name__}, not an nn.Module")
    return net
