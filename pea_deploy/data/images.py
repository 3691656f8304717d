"""The two dataset shapes the trainer reads: images held in memory, and images read lazily from files.

Both yield uint8 CHW images and int64 labels; normalisation and augmentation happen per batch in
`loader.py`, so every dataset gets the same treatment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError


@dataclass
class TensorImages:
    """Images (N, C, H, W) uint8 and labels (N,) int64, all in memory."""

    images: Tensor
    labels: Tensor

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")
        if len(self.images) == 0:
            raise DataError("dataset is empty")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def subset(self, index: Tensor) -> "TensorImages":
        return TensorImages(self.images[index], self.labels[index])


def load_image(path: Path, channels: int, size: int | tuple[int, int], *, mask: bool = False) -> Tensor:
    """Read one Pillow-readable image as a uint8 (C, H, W) tensor resized to `size` (square, or
    (H, W)); a `mask` (class indices) is read as one channel and resized by nearest neighbour."""
    from PIL import Image, UnidentifiedImageError

    h, w = (size, size) if isinstance(size, int) else size
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 or mask else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.NEAREST if mask else Image.BILINEAR)
            arr = np.array(im, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on read-only
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


@dataclass
class FileImages:
    """Image files read on access (for sets too large for memory), resized to `size` x `size`."""

    paths: list[Path]
    labels: Tensor
    channels: int = 3
    size: int = 224

    def __post_init__(self):
        if len(self.paths) == 0:
            raise DataError("dataset is empty")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        return load_image(self.paths[i], self.channels, self.size), self.labels[i]

    def subset(self, index: Tensor) -> "FileImages":
        idx = index.tolist()
        return FileImages([self.paths[i] for i in idx], self.labels[index], self.channels, self.size)

    def load_all(self) -> TensorImages:
        """Read every file now (small sets): unreadable files are found before training starts."""
        return TensorImages(torch.stack([load_image(p, self.channels, self.size) for p in self.paths]),
                            self.labels)


@dataclass
class DatasetSplits:
    """What a dataset loader returns: the two splits and what the network must know about them."""

    name: str
    train: TensorImages | FileImages
    val: TensorImages | FileImages
    num_classes: int
    channels: int
    image_size: int
    classes: list[str]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    source: str = ""
    # Segmentation sets: labels are (H, W) uint8 class masks, `ignore_index` marks unscored pixels,
    # and images may be wider than high (`image_width`; None = square).
    task: str = "classification"
    ignore_index: int | None = None
    image_width: int | None = None

    def __post_init__(self):
        if not self.mean:
            self.mean, self.std = channel_stats(self.train)

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.image_size, self.image_width or self.image_size

    def describe(self) -> dict:
        info = {"name": self.name, "source": self.source, "train": len(self.train), "val": len(self.val),
                "num_classes": self.num_classes, "channels": self.channels, "image_size": self.image_size,
                "mean": list(self.mean), "std": list(self.std), "classes": self.classes, "task": self.task}
        if self.task == "segmentation":
            info.update(ignore_index=self.ignore_index, image_width=self.input_hw[1])
        return info


def channel_stats(data: TensorImages | FileImages, max_images: int = 5000, seed: int = 0) -> tuple[tuple, tuple]:
    """Per-channel mean and std in [0, 1] units, from a seeded random sample of at most `max_images`
    training images (512 for file-backed sets) drawn across the whole set: a folder is stored in
    class order, so its first images are one class."""
    limit = max_images if isinstance(data, TensorImages) else min(max_images, 512)
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    if isinstance(data, TensorImages):
        x = data.images[pick]
    else:
        x = torch.stack([data[int(i)][0] for i in pick])
    x = x.float().div_(255.0)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


def seeded_split(data: TensorImages | FileImages, val_fraction: float, seed: int):
    """Split one labelled set into train/val with a fixed permutation (same split for every run)."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(data), generator=g)
    n_val = max(1, int(round(len(data) * val_fraction)))
    if n_val >= len(data):
        raise DataError(f"too few images ({len(data)}) to split off a validation set")
    return data.subset(perm[n_val:]), data.subset(perm[:n_val])
