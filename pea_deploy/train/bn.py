"""BatchNorm re-estimation: after activations change (a hard swap to ReLU, or alpha reaching 1) the
running statistics describe a network that no longer exists; recomputing them on a few dozen
training batches recovers much of the accuracy for free."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn



def batches_for(recipe) -> int:
    """The recipe's BatchNorm re-estimation batches: its own value, else DEFAULT_BN_BATCHES when the
    run starts from trained weights (a swap to re-estimate after), else 0."""
    from .recipe import DEFAULT_BN_BATCHES

    n = recipe.pea.bn_recalibration
    if n is not None:
        return n
    return DEFAULT_BN_BATCHES if recipe.train.init_from else 0


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable, limit: int | None = None) -> int:
    """Recompute every BatchNorm's running mean and variance as the plain average over `batches`
    (inputs ready for the model: tensors, or (input, target, ...) tuples as a DataLoader yields
    them; at most `limit` of them), with only the BatchNorms in train mode (dropout and stochastic
    ensembles stay in eval: the statistics are those of the network that is evaluated). No
    gradients, no other state changes. Returns the number of batches used (0: no BatchNorm)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    modes = {m: m.training for m in model.modules()}
    saved = {m: m.momentum for m in norms}
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
        m.train()
    n = 0
    try:
        device = next((p.device for p in model.parameters()), None)
        for x in batches:
            if limit is not None and n >= limit:
                break
            x = x[0] if isinstance(x, (tuple, list)) else x
            model(x.to(device) if device is not None else x)
            n += 1
    finally:
        for m, momentum in saved.items():
            m.momentum = momentum
        for m, was_training in modes.items():
            m.train(was_training)
    return n
