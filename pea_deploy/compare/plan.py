"""Which runs a comparison needs: the paper's Table 4 rows for one recipe, each over N seeds.

Rows: the ReLU baseline; per smooth activation its upper limit (Act only) and PEA with each variant
and transition end asked for. Each (setting, seed) is one ordinary `pea-train` run in its own
directory, so a comparison is resumable run by run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..registry import ACTIVATIONS, VARIANTS
from ..train.recipe import Recipe


@dataclass(frozen=True)
class Setting:
    mode: str                       # relu | act | pea
    act: str | None = None
    variant: str | None = None
    transition_end: float | None = None

    @property
    def label(self) -> str:
        if self.mode == "relu":
            return "ReLU baseline"
        if self.mode == "act":
            return f"{self.act} only (upper limit)"
        return f"PEA {self.variant} {self.act} T_end={self.transition_end:g}"

    @property
    def slug(self) -> str:
        if self.mode == "relu":
            return "relu"
        if self.mode == "act":
            return f"act-{self.act}"
        return f"pea-{self.variant}-{self.act}-t{self.transition_end:g}"

    def overrides(self, seed: int) -> dict:
        o = {"pea.mode": self.mode, "train.seed": seed}
        if self.act:
            o["pea.act"] = self.act
        if self.variant:
            o["pea.variant"] = self.variant
        if self.transition_end is not None:
            o["pea.transition_end"] = self.transition_end
        return o


def plan_settings(recipe: Recipe, acts=("gelu", "swish", "mish"), variants=None,
                  transition_ends=None) -> list[Setting]:
    """Baseline first, then per Act: upper limit, PEA rows. Variants default to every registered one,
    transition ends to the recipe's."""
    variants = VARIANTS.names() if variants is None else variants
    for a in acts:
        ACTIVATIONS.check(a)
    for v in variants:
        VARIANTS.check(v)
    if not acts or not variants:
        raise ConfigError("a comparison needs at least one activation and one variant")
    ends = list(transition_ends) if transition_ends else [recipe.pea.transition_end]
    for e in ends:
        if not recipe.pea.initial_epochs <= e <= recipe.train.epochs:
            raise ConfigError(f"transition end {e:g} must lie between initial_epochs "
                              f"({recipe.pea.initial_epochs:g}) and epochs ({recipe.train.epochs})")
    settings = [Setting("relu")]
    for a in acts:
        settings.append(Setting("act", a))
        settings += [Setting("pea", a, v, float(e)) for v in variants for e in ends]
    return settings
