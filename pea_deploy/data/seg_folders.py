"""Segmentation sets a user brings: paired image/mask folders, and Cityscapes in its own layout.

Masks are single-channel PNGs of class indices (255 = not scored). Images are resized bilinearly and
masks by nearest neighbour to `image_size` x `image_width`; sets up to IN_MEMORY_LIMIT pairs are
decoded once, up front, larger ones per batch.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from ..metrics import IGNORE_INDEX
from .folders import IMAGE_SUFFIXES, IN_MEMORY_LIMIT, require_dir
from .images import DatasetSplits, TensorImages, load_image, seeded_split


@dataclass
class PairedFiles:
    """Image files with their mask files, read on access; `lut` maps raw mask values to classes."""

    images: list[Path]
    masks: list[Path]
    channels: int
    size: tuple[int, int]
    lut: np.ndarray | None = None

    def __post_init__(self):
        if not self.images:
            raise DataError("dataset is empty")

    def __len__(self) -> int:
        return len(self.images)

    def _mask(self, i: int) -> Tensor:
        m = load_image(self.masks[i], 1, self.size, mask=True)[0]
        return torch.from_numpy(self.lut[m.numpy()]) if self.lut is not None else m

    def __getitem__(self, i):
        return load_image(self.images[i], self.channels, self.size), self._mask(i)

    def subset(self, index: Tensor) -> "PairedFiles":
        idx = index.tolist()
        return PairedFiles([self.images[i] for i in idx], [self.masks[i] for i in idx], self.channels,
                           self.size, self.lut)

    def load_all(self) -> TensorImages:
        pairs = [self[i] for i in range(len(self))]
        return TensorImages(torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]))


def _files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES}


def _pairs(root: Path) -> tuple[list[Path], list[Path]]:
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise DataError(f"{root} needs an images/ and a masks/ folder (masks named like their images)")
    images, masks = _files(root / "images"), _files(root / "masks")
    missing = sorted(set(images) - set(masks))
    if missing:
        raise DataError(f"{root}: {len(missing)} image(s) without a mask, e.g. masks/{missing[0]}.png")
    if not images:
        raise DataError(f"{root}/images holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    names = sorted(images)
    return [images[n] for n in names], [masks[n] for n in names]


def _splits(name: str, train: PairedFiles, val: PairedFiles, classes: list[str], source: str) -> DatasetSplits:
    if len(train) + len(val) <= IN_MEMORY_LIMIT:
        train, val = train.load_all(), val.load_all()
    h, w = train.size if isinstance(train, PairedFiles) else tuple(train.images.shape[-2:])
    return DatasetSplits(name, train, val, len(classes), train[0][0].shape[0], h, classes, source=source,
                         task="segmentation", ignore_index=IGNORE_INDEX, image_width=w)


def _classes_of(root: Path, masks: list[Path]) -> list[str]:
    listed = root / "classes.txt"
    if listed.exists():
        names = [ln.strip() for ln in listed.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if names:
            return names
    top = 0
    for path in masks[:500]:  # without classes.txt: the largest class index seen decides
        values = load_image(path, 1, 8, mask=True).unique()
        values = values[values != IGNORE_INDEX]
        top = max(top, int(values.max()) if len(values) else 0)
    return [str(i) for i in range(top + 1)]


def load_segmentation_folder(data_dir: str | None = None, image_size: int = 64, image_width: int | None = None,
                             channels: int = 3, val_fraction: float = 0.2, split_seed: int = 0,
                             **_) -> DatasetSplits:
    """`DIR/images/*.png` with `DIR/masks/*.png` (same names), or `DIR/train/{images,masks}` with
    `DIR/val/{images,masks}`; optional `DIR/classes.txt`, one class name per line."""
    root = require_dir(data_dir, "seg-folder")
    size = (image_size, image_width or image_size)
    if (root / "train").is_dir() and (root / "val").is_dir():
        train = PairedFiles(*_pairs(root / "train"), channels, size)
        val = PairedFiles(*_pairs(root / "val"), channels, size)
    else:
        train, val = seeded_split(PairedFiles(*_pairs(root), channels, size), val_fraction, split_seed)
    classes = _classes_of(root, train.masks)
    return _splits("seg-folder", train, val, classes, str(root))


def cityscapes_classes() -> tuple[list[str], np.ndarray]:
    """The 19 class names and the labelId -> trainId lookup table (255 for unscored labels)."""
    raw = tomllib.loads(resources.files("pea_deploy.data").joinpath("cityscapes.toml").read_text("utf-8"))
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for train_id, (_, label_id) in enumerate(raw["classes"]):
        lut[label_id] = train_id
    return [name for name, _ in raw["classes"]], lut


def _cityscapes_split(root: Path, split: str, size, lut) -> PairedFiles:
    folder = root / "leftImg8bit" / split
    if not folder.is_dir():
        raise DataError(f"Cityscapes not found: {folder} is missing (expected leftImg8bit/ and gtFine/)")
    images = sorted(folder.rglob("*_leftImg8bit.png"))
    masks = []
    for img in images:
        mask = root / "gtFine" / split / img.parent.name / img.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
        if not mask.exists():
            raise DataError(f"Cityscapes: {mask} is missing (for {img.name})")
        masks.append(mask)
    if not images:
        raise DataError(f"Cityscapes: {folder} holds no *_leftImg8bit.png files")
    return PairedFiles(images, masks, 3, size, lut)


def load_cityscapes(data_dir: str | None = None, image_size: int = 256, image_width: int | None = None,
                    **_) -> DatasetSplits:
    """Cityscapes fine annotations in the official layout (`leftImg8bit/{train,val}/CITY/...`,
    `gtFine/{train,val}/CITY/..._gtFine_labelIds.png`), scored on the 19 standard classes."""
    root = require_dir(data_dir, "cityscapes")
    classes, lut = cityscapes_classes()
    size = (image_size, image_width or 2 * image_size)  # the camera's 2:1 frame
    return _splits("cityscapes", _cityscapes_split(root, "train", size, lut),
                   _cityscapes_split(root, "val", size, lut), classes, str(root))
