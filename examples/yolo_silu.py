"""A SiLU detector as YOLOv8 users have it: pea-deploy's YOLOv8-style detector with YOLOv8's own
activation (SiLU) in every block, for the question detection users ask: what does the move to ReLU
cost, and what wins it back?

    pea-train shapes-det-yolo-pea-weighted-silu --model-file examples/yolo_silu.py:build --act keep \
        --upper-limit --out runs/det-silu                                  # the trained SiLU detector
    pea-compare shapes-det-yolo-pea-weighted-silu --model-file examples/yolo_silu.py:build --acts keep \
        --init-from runs/det-silu --epochs 1 --initial-epochs 0 --transition-end 0.5
"""

from __future__ import annotations

from torch import nn

from pea_deploy.nets.yolo import yolo_detector


def build(num_classes: int, in_channels: int = 3, width: float = 0.125) -> nn.Module:
    net = yolo_detector(num_classes, in_channels, width=width)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, nn.SiLU())
    return net
