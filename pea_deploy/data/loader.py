"""Batches for training and evaluation: seeded order, per-batch augmentation, normalisation.

Every random choice comes from a torch.Generator seeded with (seed, epoch), so an epoch's batches
are a pure function of the recipe and the epoch number: a resumed run sees the same data order and
the same crops as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import AUGMENTATIONS
from .images import FileImages, TensorImages


@dataclass(frozen=True)
class Normalize:
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, images_u8: Tensor) -> Tensor:
        mean = torch.tensor(self.mean, device=images_u8.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images_u8.device).view(1, -1, 1, 1)
        return (images_u8.float().div_(255.0) - mean) / std


def augment(batch: Tensor, names: tuple[str, ...], pad: int, gen: torch.Generator,
            masks: Tensor | None = None, mask_fill: int = 255, boxes: Tensor | None = None):
    """Random crop after zero padding by `pad` pixels (a random translation), and random horizontal
    flip, per sample. With `masks` (N, H, W) the same crop and flip move the masks, padded with
    `mask_fill` (unscored), and (images, masks) is returned; with `boxes` (packed detection targets,
    pea_deploy.detection.targets) they move the boxes, and (images, boxes) is returned."""
    for name in names:
        AUGMENTATIONS.check(name)
    n, _, h, w = batch.shape
    if "crop" in names and pad > 0:
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
        padded = F.pad(batch, (pad, pad, pad, pad))
        batch = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
        if masks is not None:
            padded = F.pad(masks, (pad, pad, pad, pad), value=mask_fill)
            masks = torch.stack([padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
        if boxes is not None:
            from ..detection.targets import shift_targets

            boxes = shift_targets(boxes, [pad - d for d in dx], [pad - d for d in dy], w, h)
    if "flip" in names:
        flip = torch.rand(n, generator=gen) < 0.5
        batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(3), batch)
        if masks is not None:
            masks = torch.where(flip.view(-1, 1, 1), masks.flip(2), masks)
        if boxes is not None:
            from ..detection.targets import flip_targets

            boxes = flip_targets(boxes, flip, w)
    if boxes is not None:
        return batch, boxes
    return batch if masks is None else (batch, masks)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def iterate(data: TensorImages | FileImages, batch_size: int, *, shuffle: bool,
            gen: torch.Generator | None = None, drop_last: bool = False, workers: int = 0,
            order: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (uint8 images, labels) batches: in `order` when given (e.g. a DistributedSampler's
    indices), else shuffled with `gen`, else in dataset order."""
    if order is None:
        order = torch.randperm(len(data), generator=gen) if shuffle else torch.arange(len(data))
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    if isinstance(data, TensorImages):
        for i in range(0, stop, batch_size):
            idx = order[i:i + batch_size]
            yield data.images[idx], data.labels[idx]
        return
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(data, order[:stop].tolist()), batch_size=batch_size,
        num_workers=workers, shuffle=False)
    yield from loader


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Training iterations per epoch (incomplete last batch dropped, at least one step)."""
    return max(1, n_train // batch_size)
