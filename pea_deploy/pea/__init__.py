"""PEA itself: ensembles, their schedule, and the convert/strip steps."""

from .activations import smooth_activation, target_activation
from .convert import (alphas, conversion_summary, convert, describe_conversion, ensembles,
                      replace_relus_with_act, require_alpha_one, set_alpha, strip)
from .ensemble import PEAEnsemble, StochasticEnsemble, WeightedEnsemble, ensemble, stochastic_ensemble
from .schedule import AlphaSchedule, AlphaScheduler, alpha_at
from .relufy import Relufier, hard_swap, relufy

__all__ = [
    "smooth_activation", "target_activation", "alphas", "convert", "conversion_summary", "describe_conversion",
    "ensembles", "replace_relus_with_act", "require_alpha_one", "set_alpha", "strip",
    "PEAEnsemble", "StochasticEnsemble", "WeightedEnsemble", "ensemble", "stochastic_ensemble",
    "AlphaSchedule", "AlphaScheduler", "alpha_at", "Relufier", "hard_swap", "relufy",
]
