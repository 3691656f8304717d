"""From a recipe to the things a run trains: the network in its training form and the data.

Training, export and comparison all rebuild nets and data through here, so none of them depends on
another's internals (pea-export rebuilds a checkpoint's net without the training loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data import load_dataset
from ..data.images import DatasetSplits
from ..errors import ConfigError
from ..nets import build_net, net_task
from ..nets.user import ModelSource, build_user_net, resolve_source
from ..pea import convert, replace_relus_with_act
from ..pea.relufy import hard_swap
from ..registry import ACTIVATIONS, NETS, NORMALIZATIONS, is_reference
from .init_weights import load_init_weights, read_init_weights
from .recipe import Recipe


def model_source(recipe: Recipe, recorded: dict | None = None, file_override: str | None = None) -> ModelSource | None:
    """Where the recipe's own network comes from (None for a registered net). `recorded` is the
    source a run saved: pea-export rebuilds from it and refuses a file whose sha256 changed."""
    m = recipe.model
    if not m.file and not is_reference(m.name):
        return None
    if recorded and recorded.get("kind") == "file" and not file_override:
        file_override = f"{recorded['location']}:{recorded['function']}"
    if file_override:
        where = file_override.rpartition(":")[0]
        if not Path(where).expanduser().is_file():
            raise ConfigError(f"model file {where} (the network this run was trained with) does not exist; "
                              f"point --model-file PATH.py:FUNCTION at it")
    source = resolve_source(file_override or m.file, None if (file_override or m.file) else m.name, m.args)
    if recorded and recorded.get("sha256") and source.sha256 != recorded["sha256"]:
        raise ConfigError(f"model file {source.location} changed since training (sha256 {source.sha256[:12]}..., "
                          f"the run recorded {recorded['sha256'][:12]}...); point --model-file at the file the "
                          f"run was trained with")
    return source


def build_model(recipe: Recipe, num_classes: int, in_channels: int, task: str = "classification", *,
                init_state: dict | None = None, init_where: str = "", source: ModelSource | None = None
                ) -> nn.Module:
    """The recipe's network in its training form: PEA ensembles, plain ReLU, or the Act upper limit;
    with `act = "keep"`, the network's own activations as the Act (mode relu: the hard swap, every one
    replaced by the target at once; mode act: the network unchanged). `init_state` (trained weights
    of the unconverted network) is loaded before the conversion."""
    p = recipe.pea
    source = source or model_source(recipe)
    if source is not None:
        net = build_user_net(source, num_classes, in_channels)
    else:
        net = _builtin_net(recipe, num_classes, in_channels, task)
    if init_state is not None:
        load_init_weights(net, init_state, init_where)
    keep = ACTIVATIONS.get(p.act).info.get("keep", False)
    if p.mode == "pea":
        net = convert(net, act=p.act, variant=p.variant, target=p.target, swish_beta=p.swish_beta,
                      granularity=p.granularity)
    elif p.mode == "act" and not keep:
        replace_relus_with_act(net, p.act, swish_beta=p.swish_beta)
    elif p.mode == "relu" and keep:  # the hard swap: what users do today, all at once
        net = hard_swap(net, p.target)  # BatchNorm is re-estimated by the run (pea.bn_recalibration)
    return net


def teacher_model(recipe: Recipe, num_classes: int, in_channels: int, task: str, init_state: dict,
                  init_where: str, source: ModelSource | None = None) -> nn.Module:
    """The original network for distillation: the recipe's net in its smooth form (the user's net
    unchanged with act keep, else the Act-only upper limit), with the --init-from weights, frozen."""
    smooth = recipe.with_overrides({"pea.mode": "act"})
    teacher = build_model(smooth, num_classes, in_channels, task, init_state=init_state, init_where=init_where,
                          source=source)
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher.eval()


def _builtin_net(recipe: Recipe, num_classes: int, in_channels: int, task: str) -> nn.Module:
    m = recipe.model
    if net_task(m.name) != task:
        nets = ", ".join(n for n in NETS.names() if net_task(n) == task)
        raise ConfigError(f"dataset {recipe.data.name!r} is a {task} set but model {m.name!r} is a "
                          f"{net_task(m.name)} net (use {nets or 'your own network'})")
    options = {"width": m.width, **({"stem": m.stem} if "stem" in NETS.get(m.name).options else {})}
    if m.dropout is not None:
        options["dropout"] = m.dropout
    if m.relu6:
        options["relu6"] = True
    if m.norm != "batch":
        options["norm"] = m.norm
    return build_net(m.name, num_classes, in_channels, **options)


def load_data(recipe: Recipe) -> DatasetSplits:
    d = recipe.data
    splits = load_dataset(d.name, data_dir=d.dir, val_fraction=d.val_fraction, split_seed=d.split_seed,
                          image_size=d.image_size, image_width=d.image_width, channels=d.channels)
    for split in (splits.train, splits.val):  # a set read from files reads itself with the recipe's workers
        if hasattr(split, "workers"):
            split.workers = d.workers
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


@dataclass
class RunModel:
    """What a training run starts from: its network, the frozen teacher (distillation), where the
    network's code and initial weights came from (recorded in checkpoints and the summary)."""

    model: nn.Module
    teacher: nn.Module | None = None
    source: ModelSource | None = None
    init_from: dict | None = None


def build_run_model(recipe: Recipe, data: DatasetSplits, *, fresh: bool = True,
                    recorded_source: dict | None = None) -> RunModel:
    """The network of a run (`fresh`: with the --init-from weights; a resumed run takes its weights
    from its checkpoint), and the teacher when distilling. `recorded_source`: the model source a
    resumed run saved, so a changed model file is refused."""
    source = model_source(recipe, recorded_source)
    init_state, init_info, where = None, None, ""
    if recipe.train.init_from and (fresh or recipe.distill.enabled):
        init_state, init_info = read_init_weights(recipe.train.init_from)
        where = recipe.train.init_from
    args = (recipe, data.num_classes, data.channels, data.task)
    model = build_model(*args, init_state=init_state if fresh else None, init_where=where, source=source)
    teacher = teacher_model(*args, init_state, where, source) if recipe.distill.enabled else None
    return RunModel(model, teacher, source, init_info)
