"""From a recipe to the things a run trains: the network in its training form and the data.

Training, export and comparison all rebuild nets and data through here, so none of them depends on
another's internals (pea-export rebuilds a checkpoint's net without the training loop).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import load_dataset
from ..data.images import DatasetSplits
from ..errors import ConfigError
from ..nets import build_net, is_segmentation_net
from ..pea import convert, replace_relus_with_act
from ..registry import NETS, NORMALIZATIONS
from .recipe import Recipe


def build_model(recipe: Recipe, num_classes: int, in_channels: int, task: str = "classification") -> nn.Module:
    """The recipe's network in its training form: PEA ensembles, plain ReLU, or the Act upper limit."""
    m, p = recipe.model, recipe.pea
    if (task == "segmentation") != is_segmentation_net(m.name):
        nets = ", ".join(n for n in NETS.names() if is_segmentation_net(n))
        raise ConfigError(f"dataset {recipe.data.name!r} is a {task} set but model {m.name!r} is "
                          + ("not a segmentation net (use " + nets + ")" if task == "segmentation"
                             else "a segmentation net; use a classification dataset"))
    options = {"width": m.width, "stem": m.stem}
    if m.dropout is not None:
        options["dropout"] = m.dropout
    if m.relu6:
        options["relu6"] = True
    if m.norm != "batch":
        options["norm"] = m.norm
    net = build_net(m.name, num_classes, in_channels, **options)
    if p.mode == "pea":
        convert(net, act=p.act, variant=p.variant, target=p.target, swish_beta=p.swish_beta,
                granularity=p.granularity)
    elif p.mode == "act":
        replace_relus_with_act(net, p.act, swish_beta=p.swish_beta)
    return net


def load_data(recipe: Recipe) -> DatasetSplits:
    d = recipe.data
    splits = load_dataset(d.name, data_dir=d.dir, val_fraction=d.val_fraction, split_seed=d.split_seed,
                          image_size=d.image_size, image_width=d.image_width, channels=d.channels)
    fixed = NORMALIZATIONS.get(d.normalize).info
    if fixed:  # published statistics instead of the sample's
        if splits.channels != len(fixed["mean"]):
            raise ConfigError(f"data.normalize {d.normalize!r} is for {len(fixed['mean'])}-channel images; "
                              f"{d.name} has {splits.channels}")
        splits.mean, splits.std = tuple(fixed["mean"]), tuple(fixed["std"])
    if d.train_subset is not None:
        if not 0 < d.train_subset <= len(splits.train):
            raise ConfigError(f"data.train_subset must be in 1..{len(splits.train)}, got {d.train_subset}")
        pick = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(d.split_seed))
        splits.train = splits.train.subset(pick[:d.train_subset])
    return splits
