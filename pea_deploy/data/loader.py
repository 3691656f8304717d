"""Batches for training and evaluation: seeded order, augmentation, normalisation.

Every random choice comes from a torch.Generator seeded with (seed, epoch), so an epoch's batches
are a pure function of the recipe and the epoch number: a resumed run sees the same data order and
the same crops as an uninterrupted one. Sets in memory are augmented per batch; file-backed sets per
item in the loader's worker processes, with the same draws (training_batches).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DataError
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


@dataclass(frozen=True)
class Draws:
    """The random augmentation choices for a batch: crop offsets (dy, dx) into the padded image, in
    pixels (None: no crop), and which images flip (None: no flip). Plain lists: they travel to the
    loader's workers with each item's index."""

    dy: list[int] | None = None
    dx: list[int] | None = None
    flip: list[bool] | None = None

    def item(self, k: int) -> "Draws":
        """Sample k's choices alone (for augmenting it on its own, in a loader worker)."""
        return Draws(None if self.dy is None else self.dy[k:k + 1], None if self.dx is None else self.dx[k:k + 1],
                     None if self.flip is None else self.flip[k:k + 1])


def draw_augmentation(n: int, names: tuple[str, ...], pad: int, gen: torch.Generator) -> Draws:
    for name in names:
        AUGMENTATIONS.check(name)
    dy = dx = flip = None
    if "crop" in names and pad > 0:
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    if "flip" in names:
        flip = (torch.rand(n, generator=gen) < 0.5).tolist()
    return Draws(dy, dx, flip)


def apply_augmentation(batch: Tensor, draws: Draws, pad: int, masks: Tensor | None = None, mask_fill: int = 255,
                       boxes: Tensor | None = None):
    """`draws` applied to `batch` (N, C, H, W), and to its masks or boxes as `augment` does."""
    n, _, h, w = batch.shape
    if draws.dy is not None:
        dy, dx = draws.dy, draws.dx
        padded = F.pad(batch, (pad, pad, pad, pad))
        batch = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
        if masks is not None:
            padded = F.pad(masks, (pad, pad, pad, pad), value=mask_fill)
            masks = torch.stack([padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
        if boxes is not None:
            from ..detection.targets import shift_targets

            boxes = shift_targets(boxes, [pad - d for d in dx], [pad - d for d in dy], w, h)
    if draws.flip is not None:
        flip = torch.tensor(draws.flip, dtype=torch.bool)
        batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(3), batch)
        if masks is not None:
            masks = torch.where(flip.view(-1, 1, 1), masks.flip(2), masks)
        if boxes is not None:
            from ..detection.targets import flip_targets

            boxes = flip_targets(boxes, flip, w)
    if boxes is not None:
        return batch, boxes
    return batch if masks is None else (batch, masks)


def augment(batch: Tensor, names: tuple[str, ...], pad: int, gen: torch.Generator,
            masks: Tensor | None = None, mask_fill: int = 255, boxes: Tensor | None = None):
    """Random crop after zero padding by `pad` pixels (a random translation), and random horizontal
    flip, per sample. With `masks` (N, H, W) the same crop and flip move the masks, padded with
    `mask_fill` (unscored), and (images, masks) is returned; with `boxes` (packed detection targets,
    pea_deploy.detection.targets) they move the boxes, and (images, boxes) is returned."""
    return apply_augmentation(batch, draw_augmentation(len(batch), names, pad, gen), pad, masks, mask_fill, boxes)


@dataclass(frozen=True)
class Augmentation:
    """What the training batches get: `names` (crop, flip) with `pad`, moving the labels as their
    kind needs: "class" (nothing to move), "masks" (padded with `mask_fill`) or "boxes"."""

    names: tuple[str, ...]
    pad: int
    labels: str = "class"
    mask_fill: int = 255

    def __call__(self, images: Tensor, labels: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        if self.labels == "masks":
            return apply_augmentation(images, draws, self.pad, masks=labels, mask_fill=self.mask_fill)
        if self.labels == "boxes":
            return apply_augmentation(images, draws, self.pad, boxes=labels)
        return apply_augmentation(images, draws, self.pad), labels


class _Augmented(torch.utils.data.Dataset):
    """Items of a file-backed set, augmented one by one where they are read (a loader worker). A
    key is (index, that sample's Draws), drawn in the main process, so the result does not depend
    on how many workers there are. A DataError is returned, not raised: it crosses the worker
    boundary as itself, one line naming the file (`_collate` hands it on, `_file_batches` raises)."""

    def __init__(self, data, augmentation: Augmentation | None):
        self.data, self.augmentation = data, augmentation

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key):
        index, draws = key if isinstance(key, tuple) else (key, None)
        try:
            image, label = self.data[index]
        except DataError as e:
            return e
        if draws is None:
            return image, label
        images, labels = self.augmentation(image[None], label[None], draws)
        return images[0], labels[0]


def _collate(items):
    failed = next((i for i in items if isinstance(i, DataError)), None)
    return failed if failed is not None else torch.utils.data.default_collate(items)


def _file_batches(data, keys: list, batch_size: int, augmentation: Augmentation | None, workers: int | None):
    batches = [keys[i:i + batch_size] for i in range(0, len(keys), batch_size)]
    workers = getattr(data, "workers", 0) if workers is None else workers
    loader = torch.utils.data.DataLoader(_Augmented(data, augmentation), batch_sampler=batches,
                                         num_workers=workers, collate_fn=_collate)
    for batch in loader:
        if isinstance(batch, DataError):
            raise batch
        yield batch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def _order(n: int, batch_size: int, shuffle: bool, gen, drop_last: bool, order: Tensor | None) -> Tensor:
    if order is None:
        order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    return order[:stop]


def iterate(data: TensorImages | FileImages, batch_size: int, *, shuffle: bool,
            gen: torch.Generator | None = None, drop_last: bool = False, workers: int | None = None,
            order: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (uint8 images, labels) batches: in `order` when given (e.g. a DistributedSampler's
    indices), else shuffled with `gen`, else in dataset order. A file-backed set is read by
    `workers` loader processes (default: the set's own `workers`, else 0)."""
    order = _order(len(data), batch_size, shuffle, gen, drop_last, order)
    if isinstance(data, TensorImages):
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            yield data.images[idx], data.labels[idx]
        return
    yield from _file_batches(data, order.tolist(), batch_size, None, workers)


def training_batches(data, batch_size: int, order: Tensor, augmentation: Augmentation, gen: torch.Generator,
                     workers: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Augmented (uint8 images, labels) batches in `order` (incomplete last batch dropped). Every
    random choice is drawn from `gen` in the main process, batch after batch, so a set in memory
    (augmented per batch) and the same set read from files (augmented per item in the workers) give
    the same batches, bit for bit, with any number of workers."""
    order = _order(len(data), batch_size, False, None, True, order)
    if isinstance(data, TensorImages):
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            yield augmentation(data.images[idx], data.labels[idx],
                               draw_augmentation(len(idx), augmentation.names, augmentation.pad, gen))
        return
    keys = []
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size].tolist()
        draws = draw_augmentation(len(idx), augmentation.names, augmentation.pad, gen)
        keys += [(index, draws.item(k)) for k, index in enumerate(idx)]
    yield from _file_batches(data, keys, batch_size, augmentation, workers)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Training iterations per epoch (incomplete last batch dropped, at least one step)."""
    return max(1, n_train // batch_size)
