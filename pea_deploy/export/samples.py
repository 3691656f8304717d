"""The real images an export runs on: calibration inputs for int8, validation inputs for parity.

Both are normalised with the checkpoint's own mean/std, so every artefact sees exactly what the
trained network saw. Calibration never uses random tensors: int8 ranges fitted to noise clip real
activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..data import Normalize, iterate
from ..data.folders import IMAGE_SUFFIXES
from ..data.images import DatasetSplits, load_image
from ..errors import DataError
from ..train.build import load_data
from .trained import TrainedModel


@dataclass
class LabelledInputs:
    images: Tensor   # float32 NCHW, normalised
    labels: Tensor   # class per image, or (N, H, W) class masks for segmentation
    source: str


def normalizer(trained: TrainedModel) -> Normalize:
    return Normalize(tuple(trained.dataset["mean"]), tuple(trained.dataset["std"]))


def _collect(data, limit: int | None, seed: int) -> tuple[Tensor, Tensor]:
    if limit is not None and limit < len(data):
        data = data.subset(torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:limit])
    batches = list(iterate(data, 512, shuffle=False))
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def _check_shape(images: Tensor, trained: TrainedModel, where: str) -> None:
    want = trained.input_shape[1:]
    if tuple(images.shape[1:]) != want:
        raise DataError(f"{where} gives images of shape {tuple(images.shape[1:])}, the model takes {want}")


def load_splits(trained: TrainedModel) -> DatasetSplits:
    """The run's dataset, as its recipe names it (a built-in set or the user's folder)."""
    return load_data(trained.recipe)


def validation_inputs(trained: TrainedModel, splits: DatasetSplits, limit: int | None = None,
                      seed: int = 0) -> LabelledInputs:
    """The run's validation split (a seeded subset of `limit` images when given)."""
    images, labels = _collect(splits.val, limit, seed)
    _check_shape(images, trained, f"dataset {splits.name!r}")
    return LabelledInputs(normalizer(trained)(images), labels, f"{splits.name} validation split")


def calibration_inputs(trained: TrainedModel, samples: int, *, splits: DatasetSplits | None = None,
                       data_dir: str | Path | None = None, seed: int = 0) -> tuple[Tensor, str]:
    """`samples` real images for int8 calibration: from `data_dir` (any image files under it,
    searched recursively; for a detection run letterboxed, and a data.yaml or YOLO-format folder
    gives its training images) or else a seeded sample of the run's training split."""
    if samples < 1:
        raise DataError(f"--calib-samples must be at least 1, got {samples}")
    channels, size = trained.input_shape[1], tuple(trained.input_shape[2:])
    if data_dir is not None and trained.task == "detection":  # letterboxed, as the run trained
        from ..detection.folder import letterboxed_images

        images, source = letterboxed_images(data_dir, "train", size[0], samples, seed)
        if len(images) < samples:
            raise DataError(f"calibration data {data_dir} holds {len(images)} image(s), --calib-samples asks "
                            f"for {samples}; add images or lower --calib-samples")
    elif data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise DataError(f"calibration directory {root} does not exist")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < samples:
            raise DataError(f"calibration directory {root} holds {len(files)} image(s), --calib-samples "
                            f"asks for {samples}; add images or lower --calib-samples")
        pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:samples]
        images = torch.stack([load_image(files[i], channels, size) for i in pick.tolist()])
        source = f"{samples} images from {root}"
    else:
        assert splits is not None
        if len(splits.train) < samples:
            raise DataError(f"the training split holds {len(splits.train)} image(s), --calib-samples asks "
                            f"for {samples}")
        images, _ = _collect(splits.train, samples, seed)
        source = f"{samples} images from the {splits.name} training split"
    _check_shape(images, trained, "calibration data")
    return normalizer(trained)(images), source
