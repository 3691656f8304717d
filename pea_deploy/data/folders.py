"""Datasets a user brings: an image folder (one subfolder per class) and CIFAR-10/100 (python pickle)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .images import DatasetSplits, FileImages, TensorImages, seeded_split

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
IN_MEMORY_LIMIT = 60_000  # folders up to this many images are decoded once, up front


def require_dir(data_dir: str | None, what: str) -> Path:
    if not data_dir:
        raise DataError(f"dataset {what!r} needs --data-dir")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data dir {root} does not exist or is not a directory")
    return root


def _scan_classes(root: Path, classes: list[str] | None = None):
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = classes or found
    if not classes:
        raise DataError(f"{root} has no class subfolders (expected one folder per class)")
    paths, labels = [], []
    for idx, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [idx] * len(files)
    if not paths:
        raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return classes, paths, torch.tensor(labels, dtype=torch.int64)


def load_image_folder(data_dir: str | None = None, image_size: int = 32, channels: int = 3,
                      val_fraction: float = 0.2, split_seed: int = 0, **_) -> DatasetSplits:
    """`DIR/CLASS/*.png`, or `DIR/train/CLASS/...` with `DIR/val/CLASS/...` (or test/)."""
    root = require_dir(data_dir, "image-folder")
    val_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and val_dir is not None:
        classes, paths, labels = _scan_classes(root / "train")
        _, vpaths, vlabels = _scan_classes(val_dir, classes)
        train = FileImages(paths, labels, channels, image_size)
        val = FileImages(vpaths, vlabels, channels, image_size)
    else:
        classes, paths, labels = _scan_classes(root)
        train, val = seeded_split(FileImages(paths, labels, channels, image_size), val_fraction, split_seed)
    if len(train) + len(val) <= IN_MEMORY_LIMIT:
        train, val = train.load_all(), val.load_all()
    return DatasetSplits("image-folder", train, val, len(classes), channels, image_size, classes,
                         source=str(root))


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except FileNotFoundError:
        raise DataError(f"missing CIFAR file {path}") from None
    except Exception as e:  # a truncated or foreign pickle raises many different types
        raise DataError(f"cannot read CIFAR file {path}: {e}") from None


def _cifar_images(batch: dict, key: str, path: Path) -> TensorImages:
    try:
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[key], dtype=np.int64)
    except (KeyError, ValueError) as e:
        raise DataError(f"{path} is not a CIFAR python batch: {e}") from None
    return TensorImages(torch.from_numpy(data.copy()), torch.from_numpy(labels))


def load_cifar(data_dir: str | None = None, classes: int = 10, **_) -> DatasetSplits:
    """CIFAR-10 (`data_batch_1..5`, `test_batch`) or CIFAR-100 (`train`, `test`) pickle folders."""
    root = require_dir(data_dir, f"cifar{classes}")
    if classes == 10:
        parts = [_unpickle(root / f"data_batch_{i}") for i in range(1, 6)]
        train_parts = [_cifar_images(p, "labels", root) for p in parts]
        train = TensorImages(torch.cat([t.images for t in train_parts]), torch.cat([t.labels for t in train_parts]))
        val = _cifar_images(_unpickle(root / "test_batch"), "labels", root / "test_batch")
        meta = _unpickle(root / "batches.meta") if (root / "batches.meta").exists() else {}
        names = meta.get("label_names", [str(i) for i in range(10)])
    else:
        train = _cifar_images(_unpickle(root / "train"), "fine_labels", root / "train")
        val = _cifar_images(_unpickle(root / "test"), "fine_labels", root / "test")
        meta = _unpickle(root / "meta") if (root / "meta").exists() else {}
        names = meta.get("fine_label_names", [str(i) for i in range(100)])
    return DatasetSplits(f"cifar{classes}", train, val, classes, 3, 32, list(names), source=str(root))


def load_cifar10(data_dir: str | None = None, **_) -> DatasetSplits:
    return load_cifar(data_dir, classes=10)


def load_cifar100(data_dir: str | None = None, **_) -> DatasetSplits:
    return load_cifar(data_dir, classes=100)
