"""`shapes-det`: the built-in detection set, drawn like `shapes` (pea_deploy.data.segmentation): filled
circles, squares and triangles of random colour on a noisy two-colour gradient, seeded, the same on
every machine. Each object's box is the bounding box of its *visible* pixels (later shapes cover
earlier ones); an object less than a third visible is dropped from the targets, as an annotator
would. Classes: 0 circle, 1 square, 2 triangle.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..data.segmentation import shape_mask

DET_CLASSES = ["circle", "square", "triangle"]
MIN_VISIBLE = 1 / 3


def make_shapes_det(count: int, size: int = 64, seed: int = 0, max_objects: int = 4) -> tuple[Tensor, list[dict]]:
    """(`count` RGB uint8 images (N, 3, size, size), one target dict per image: "boxes" (M, 4) float
    x1 y1 x2 y2 in pixels (x2, y2 exclusive), "labels" (M,) long)."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, 3, size, size), np.uint8)
    targets = []
    ramp = np.linspace(0.0, 1.0, size)
    for i in range(count):
        a, b = rng.uniform(0, 110, 3), rng.uniform(0, 110, 3)
        grad = ramp[None, :, None] if rng.random() < 0.5 else ramp[None, None, :]
        img = a[:, None, None] * (1 - grad) + b[:, None, None] * grad
        img = img + rng.normal(0, 8, (3, size, size))
        owner = np.full((size, size), -1)
        drawn = []
        for k in range(int(rng.integers(1, max_objects + 1))):
            kind = int(rng.integers(1, 4))
            m = shape_mask(kind, size, rng)
            img[:, m] = rng.uniform(150, 255, 3)[:, None]
            owner[m] = k
            drawn.append((kind - 1, int(m.sum())))
        boxes, labels = [], []
        for k, (label, area) in enumerate(drawn):
            ys, xs = np.nonzero(owner == k)
            if area == 0 or len(ys) < MIN_VISIBLE * area:
                continue
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            labels.append(label)
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        "labels": torch.tensor(labels, dtype=torch.long)})
    return torch.from_numpy(images), targets
