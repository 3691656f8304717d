"""Which runs a comparison needs: the paper's Table 4 rows for one recipe, each over N seeds.

Rows: the ReLU baseline; per smooth activation its upper limit (Act only) and PEA with each variant
and transition end asked for. Each (setting, seed) is one ordinary `pea-train` run in its own
directory, so a comparison is resumable run by run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, unknown_name
from ..registry import ACTIVATIONS, VARIANTS
from ..train.recipe import DEFAULT_BN_BATCHES, Recipe


# What a run adds to its method: nothing, BatchNorm re-estimation, or that plus distillation.
EXTRAS = {"plain": (False, False), "bn": (True, False), "bn+kd": (True, True)}


@dataclass(frozen=True)
class Setting:
    mode: str                       # relu | act | pea
    act: str | None = None
    variant: str | None = None
    transition_end: float | None = None
    bn: int = 0                     # BatchNorm re-estimation batches (0: off)
    distill: bool = False
    keep: bool = False              # the user's own activations (act "keep")
    swap: bool = False              # started from trained smooth weights: the relu row is the hard swap

    @property
    def extras(self) -> str:
        return (" + BN" if self.bn else "") + (" + KD" if self.distill else "")

    @property
    def label(self) -> str:
        if self.mode == "relu":
            return ("hard swap" if self.keep or self.swap else "ReLU baseline") + self.extras
        if self.mode == "act":
            return ("own activations, fine-tuned (upper limit)" if self.keep
                    else f"{self.act} only (upper limit)") + self.extras
        act = "own activations" if self.keep else self.act
        return f"PEA {self.variant} {act} T_end={self.transition_end:g}{self.extras}"

    @property
    def slug(self) -> str:
        extras = ("-bn" if self.bn else "") + ("-kd" if self.distill else "")
        if self.mode == "relu":
            return ("hard" if self.keep or self.swap else "relu") + extras
        if self.mode == "act":
            return f"act-{self.act}" + extras
        return f"pea-{self.variant}-{self.act}-t{self.transition_end:g}" + extras

    def overrides(self, seed: int) -> dict:
        o = {"pea.mode": self.mode, "train.seed": seed}
        if self.bn or self.distill or self.keep or self.swap:  # a classic plain row keeps the recipe's
            o |= {"pea.bn_recalibration": self.bn, "distill.enabled": self.distill}
        if self.act:
            o["pea.act"] = self.act
        if self.variant:
            o["pea.variant"] = self.variant
        if self.transition_end is not None:
            o["pea.transition_end"] = self.transition_end
        return o


def plan_settings(recipe: Recipe, acts=("gelu", "swish", "mish"), variants=None,
                  transition_ends=None, extras=None) -> list[Setting]:
    """Baseline first, then per Act: upper limit, PEA rows, each with every asked-for extra (plain,
    bn, bn+kd). With act "keep" (the user's own network) the baseline is the hard swap, and the
    extras default to all three; otherwise to plain. Variants default to every registered one,
    transition ends to the recipe's."""
    variants = VARIANTS.names() if variants is None else variants
    for a in acts:
        ACTIVATIONS.check(a)
    for v in variants:
        VARIANTS.check(v)
    if not acts or not variants:
        raise ConfigError("a comparison needs at least one activation and one variant")
    keep = any(ACTIVATIONS.get(a).info.get("keep") for a in acts)
    if keep and len(acts) > 1:
        raise ConfigError("--acts keep compares your network's own activations; give it alone")
    extras = list(extras) if extras else (list(EXTRAS) if keep else ["plain"])
    for e in extras:
        if e not in EXTRAS:
            raise unknown_name("extra", e, EXTRAS)
    if any(EXTRAS[e][1] for e in extras) and not recipe.train.init_from:
        raise ConfigError("the bn+kd extra distils from the original network: give --init-from")
    ends = list(transition_ends) if transition_ends else [recipe.pea.transition_end]
    for e in ends:
        if not recipe.pea.initial_epochs <= e <= recipe.train.epochs:
            raise ConfigError(f"transition end {e:g} must lie between initial_epochs "
                              f"({recipe.pea.initial_epochs:g}) and epochs ({recipe.train.epochs})")
    bn = recipe.pea.bn_recalibration or DEFAULT_BN_BATCHES
    with_extras = [(bn if EXTRAS[e][0] else 0, EXTRAS[e][1]) for e in extras]
    act0 = acts[0] if keep else None
    swap = keep or bool(recipe.train.init_from)
    settings = [Setting("relu", act0, bn=b, distill=d, keep=keep, swap=swap) for b, d in with_extras]
    for a in acts:
        settings.append(Setting("act", a, keep=keep))
        settings += [Setting("pea", a, v, float(e), bn=b, distill=d, keep=keep)
                     for v in variants for e in ends for b, d in with_extras]
    return settings
