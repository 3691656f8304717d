"""A model's outputs as the exporters see them: one tensor, or a tuple/list/dict of tensors (a
detector's boxes and scores, a multi-head net), flattened in pytree order into a tuple that every
format writes as its outputs in that order, with names a person recognises ("['boxes']", "[1]").

Parity compares artefacts output by output in this order; a user metric receives the outputs in the
structure the model returns them (`unflatten`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import TreeSpec, keystr, tree_flatten, tree_flatten_with_path, tree_unflatten

from ..errors import ConfigError


@dataclass(frozen=True)
class OutputSpec:
    names: tuple[str, ...]   # one per flattened output, in order: "boxes", "scores.0", "1" ("output" alone)
    spec: TreeSpec           # the structure the model returns them in
    ranks: tuple[int, ...]   # each output's rank (4: a per-pixel map, in NCHW)
    flat: bool = False       # already a flat tuple of tensors: exporters take it as it is

    @property
    def single(self) -> bool:
        return len(self.names) == 1 and self.spec.num_leaves == 1 and self.spec.is_leaf()

    def unflatten(self, outputs: list):
        return tree_unflatten(list(outputs), self.spec)


def output_spec(model: nn.Module, example: torch.Tensor) -> OutputSpec:
    """Run `model` once on `example` and describe what it returns; anything but tensors (in tuples,
    lists and dicts) is refused in one line."""
    try:
        with torch.no_grad():
            y = model(example)
    except Exception as e:  # noqa: BLE001 - the user's model: one line, never a traceback
        raise ConfigError(f"the model fails on an input of shape {tuple(example.shape)}: {type(e).__name__}: "
                          f"{' '.join(str(e).split())[:200]}") from None
    leaves = tree_flatten_with_path(y)
    paths, values = [p for p, _ in leaves[0]], [v for _, v in leaves[0]]
    bad = [_name(p) or "the output" for p, v in zip(paths, values) if not isinstance(v, torch.Tensor)]
    if bad or not values:
        what = f"{type(y).__name__} with non-tensor {', '.join(bad[:3])}" if bad else f"no tensor ({type(y).__name__})"
        raise ConfigError(f"the model returns {what}; pea-export exports models that return a tensor, or a "
                          "tuple, list or dict of tensors")
    names = tuple(_name(p) for p in paths) if len(values) > 1 or paths[0] else ("output",)
    flat = isinstance(y, tuple) and all(isinstance(v, torch.Tensor) for v in y)
    return OutputSpec(names, leaves[1], tuple(v.dim() for v in values), flat)


def _name(path) -> str:
    """`boxes`, `scores.0`, `1`: a pytree path as a person writes it."""
    parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
    return ".".join(parts) or keystr(path)


class FlatOutputs(nn.Module):
    """`model` returning its outputs as one flat tuple (pytree order): what every exporter can
    write. The wrapped model is the `model` child; reports name modules below it (`wrapper_of`,
    layer_error.module_namer), as the user's network does."""

    wrapper_of = "model"

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return tuple(tree_flatten(self.model(x))[0])


def as_output_list(y) -> list[np.ndarray]:
    """A runner's result (one array, or a list of arrays) as a list."""
    return list(y) if isinstance(y, (list, tuple)) else [y]


def one_or_list(arrays: list[np.ndarray]):
    """The runners' convention: a lone output is an array, several are a list in pytree order."""
    return arrays[0] if len(arrays) == 1 else arrays
