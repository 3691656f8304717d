"""Datasets by name. Nothing here downloads: built-in sets ship inside installed packages, the rest
are folders the user points to. The names live in `pea_deploy.registry.DATASETS` (add your own with
`register_dataset`)."""

from __future__ import annotations

from ..errors import DataError
from ..registry import DATASETS
from .images import DatasetSplits, FileImages, TensorImages
from .loader import Normalize, augment, epoch_generator, iterate, steps_per_epoch


def dataset_task(name: str) -> str:
    """classification or segmentation."""
    return DATASETS.get(name).info["task"]


def load_dataset(name: str, **options) -> DatasetSplits:
    """Load dataset `name`; options: data_dir, val_fraction, split_seed, image_size, image_width,
    channels."""
    splits = DATASETS.get(name).load()(**options)
    if not isinstance(splits, DatasetSplits):
        raise DataError(f"dataset {name!r}: its loader returned {type(splits).__name__}, not DatasetSplits")
    return splits


__all__ = ["dataset_task", "load_dataset", "DatasetSplits", "TensorImages", "FileImages",
           "Normalize", "augment", "epoch_generator", "iterate", "steps_per_epoch"]
