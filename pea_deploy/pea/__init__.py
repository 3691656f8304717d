"""PEA itself: ensembles, their schedule, and the convert/strip steps."""

from .activations import SMOOTH_NAMES, TARGET_NAMES, smooth_activation, target_activation
from .convert import (alphas, convert, ensembles, replace_relus_with_act, require_alpha_one,
                      set_alpha, strip)
from .ensemble import (GRANULARITIES, VARIANTS, PEAEnsemble, StochasticEnsemble, WeightedEnsemble,
                       ensemble)
from .schedule import RAMPS, AlphaSchedule, AlphaScheduler, alpha_at

__all__ = [
    "SMOOTH_NAMES", "TARGET_NAMES", "smooth_activation", "target_activation", "alphas", "convert",
    "ensembles", "replace_relus_with_act", "require_alpha_one", "set_alpha", "strip", "GRANULARITIES",
    "VARIANTS", "PEAEnsemble", "StochasticEnsemble", "WeightedEnsemble", "ensemble", "RAMPS",
    "AlphaSchedule", "AlphaScheduler", "alpha_at",
]
