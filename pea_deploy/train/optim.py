"""Optimizer with weight-decay exemptions, and the learning-rate schedule as a pure function of step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .recipe import OptimConfig


def param_groups(model: nn.Module, weight_decay: float, no_decay: list[str]) -> list[dict]:
    """Split parameters into decayed and exempt groups (bn: norm weights/biases; bias: every bias;
    depthwise: weights of convs with groups == in_channels, as MobileNet recipes exempt them)."""
    exempt: set[int] = set()
    for module in model.modules():
        if "bn" in no_decay and isinstance(module, nn.modules.batchnorm._NormBase):
            exempt.update(id(p) for p in module.parameters(recurse=False))
        if ("depthwise" in no_decay and isinstance(module, nn.Conv2d)
                and module.groups > 1 and module.groups == module.in_channels):
            exempt.add(id(module.weight))
        if "bias" in no_decay and getattr(module, "bias", None) is not None:
            exempt.add(id(module.bias))
    decay, no = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no if id(p) in exempt else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no:
        groups.append({"params": no, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.no_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    # RAdam with decoupled weight decay: our choice (the paper gives RAdam and wd 1e-4 for ERFNet, not how
    # the decay is applied); decoupled decay does not interact with the adaptive step size
    return torch.optim.RAdam(groups, lr=cfg.lr, decoupled_weight_decay=True)


@dataclass(frozen=True)
class LRSchedule:
    """Learning rate at a global step: linear warm-up, then step / cosine / constant."""

    base_lr: float
    steps_per_epoch: int
    total_epochs: int
    kind: str = "step"
    warmup_epochs: float = 0.0
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    min_lr: float = 0.0

    @classmethod
    def from_config(cls, cfg: OptimConfig, steps_per_epoch: int, total_epochs: int) -> "LRSchedule":
        return cls(cfg.lr, steps_per_epoch, total_epochs, cfg.lr_schedule, cfg.warmup_epochs,
                   tuple(cfg.lr_steps), cfg.lr_gamma, cfg.min_lr)

    def lr_at(self, step: int) -> float:
        warm = self.warmup_epochs * self.steps_per_epoch
        if step < warm:
            return self.base_lr * (step + 1) / warm
        epoch = step / self.steps_per_epoch
        if self.kind == "step":
            return self.base_lr * self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        if self.kind == "cosine":
            total = self.total_epochs * self.steps_per_epoch
            frac = min(1.0, (step - warm) / max(1.0, total - warm))
            return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * frac))
        return self.base_lr

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
