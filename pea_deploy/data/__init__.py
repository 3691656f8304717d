"""Datasets by name. Nothing here downloads: built-in sets ship inside installed packages, the rest
are folders the user points to."""

from __future__ import annotations

from ..errors import unknown_name
from .builtin import load_digits, load_fashion_mnist
from .folders import load_cifar, load_image_folder
from .images import DatasetSplits, FileImages, TensorImages
from .loader import AUGMENTATIONS, Normalize, augment, epoch_generator, iterate, steps_per_epoch
from .seg_folders import load_cityscapes, load_segmentation_folder
from .segmentation import load_shapes

DATASETS = {
    "digits": load_digits,
    "fashion-mnist": load_fashion_mnist,
    "image-folder": load_image_folder,
    "cifar10": lambda **kw: load_cifar(classes=10, **kw),
    "cifar100": lambda **kw: load_cifar(classes=100, **kw),
    "shapes": load_shapes,
    "seg-folder": load_segmentation_folder,
    "cityscapes": load_cityscapes,
}
SEGMENTATION_DATASETS = ("shapes", "seg-folder", "cityscapes")


def load_dataset(name: str, **options) -> DatasetSplits:
    """Load dataset `name`; options: data_dir, val_fraction, split_seed, image_size, image_width,
    channels."""
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    return DATASETS[name](**options)


__all__ = ["DATASETS", "SEGMENTATION_DATASETS", "load_dataset", "DatasetSplits", "TensorImages", "FileImages", "AUGMENTATIONS",
           "Normalize", "augment", "epoch_generator", "iterate", "steps_per_epoch"]
