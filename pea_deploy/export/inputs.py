"""The inputs a user hands `export_model`: a tensor, an iterable of batches, or a DataLoader, gathered
into the tensors the export steps run on. A batch that is a tuple or list gives its first element as
the model's input (and its second as the targets of a validation batch), as a DataLoader yields them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import DataError
from .samples import LabelledInputs


def _split(batch):
    if isinstance(batch, (tuple, list)) and batch:
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def _checked(x, what: str, shape: tuple[int, ...] | None) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise DataError(f"{what} must give float tensors (or (input, target) batches), got {type(x).__name__}")
    x = x.detach().float().cpu()
    if x.dim() < 2:
        raise DataError(f"{what} gives a tensor of shape {tuple(x.shape)}; it needs a batch dimension")
    if shape is not None and tuple(x.shape[1:]) != shape:
        raise DataError(f"{what} gives inputs of shape {tuple(x.shape[1:])}, the model takes {shape}")
    return x


def gather_inputs(data, what: str, shape: tuple[int, ...] | None = None, limit: int | None = None) -> Tensor:
    """`data` (a tensor, or batches of tensors / (input, ...) tuples) as one (N, ...) float tensor of
    at most `limit` samples."""
    if isinstance(data, Tensor):
        x = _checked(data, what, shape)
        return x[:limit] if limit else x
    return gather_labelled(data, what, shape, limit).images


def gather_labelled(data, what: str, shape: tuple[int, ...] | None = None, limit: int | None = None) -> LabelledInputs:
    """Validation data with its targets where batches carry them: tensors are concatenated, other
    targets (a detector's list of box dicts) kept as one list; no targets gives labels None."""
    if isinstance(data, LabelledInputs):
        return data
    if isinstance(data, Tensor):
        return LabelledInputs(gather_inputs(data, what, shape, limit), None, f"{what} (a tensor)")
    images, targets = [], []
    count = 0
    for batch in data if not isinstance(data, (str, bytes)) else ():
        x, y = _split(batch)
        x = _checked(x, what, shape)
        images.append(x)
        targets.append(y)
        count += len(x)
        if limit and count >= limit:
            break
    if not images:
        raise DataError(f"{what} is empty: give a tensor, an iterable of batches or a DataLoader")
    x = torch.cat(images)
    if all(t is None for t in targets):
        labels = None
    elif all(isinstance(t, Tensor) for t in targets):
        labels = torch.cat(targets)
    else:
        labels = [item for t in targets for item in (t if isinstance(t, (list, tuple)) else [t])]
    if limit:
        x, labels = x[:limit], (labels[:limit] if labels is not None else None)
    return LabelledInputs(x, labels, f"{what} ({len(x)} samples)")
