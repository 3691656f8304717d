"""The PEA alpha schedule: initial phase (alpha = 0), transition (Eq. 2), final phase (alpha = 1).

Phases are given in epochs and resolved to iterations, because the paper updates alpha every
iteration: alpha_t = t / T_trans, t counting iterations since the transition began. `alpha_at` is a
pure function of the global step; `AlphaScheduler` is the stateful wrapper for a training loop.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from torch import nn

from ..errors import ConfigError
from ..registry import RAMPS
from .convert import set_alpha


def linear_ramp(frac: float) -> float:
    """The paper's Eq. 2: alpha grows linearly with the iterations of the transition."""
    return frac


def cosine_ramp(frac: float) -> float:
    return 0.5 * (1.0 - math.cos(math.pi * frac))


@dataclass(frozen=True)
class AlphaSchedule:
    """Alpha as a function of the global iteration (0-based step about to be taken).

    transition_start: first iteration of the transition phase (= initial epochs * steps per epoch).
    transition_end: first iteration of the final phase, where alpha is 1 and stays 1.
    ramp: "linear" (the paper's Eq. 2) or "cosine" ((1 - cos(pi t / T)) / 2).
    """

    transition_start: int
    transition_end: int
    ramp: str = "linear"

    def __post_init__(self):
        RAMPS.check(self.ramp)
        if not 0 <= self.transition_start <= self.transition_end:
            raise ConfigError(
                f"schedule needs 0 <= transition_start <= transition_end, got "
                f"{self.transition_start} and {self.transition_end}")

    @classmethod
    def from_epochs(cls, initial_epochs: float, transition_end_epoch: float, steps_per_epoch: int,
                    ramp: str = "linear") -> "AlphaSchedule":
        """Phases in epochs: alpha = 0 for the first `initial_epochs`, 1 from `transition_end_epoch`."""
        if steps_per_epoch <= 0:
            raise ConfigError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
        return cls(round(initial_epochs * steps_per_epoch),
                   round(transition_end_epoch * steps_per_epoch), ramp)

    def alpha_at(self, step: int) -> float:
        """alpha for iteration `step`: 0, then t / T_trans (t = step - start), then exactly 1."""
        if step >= self.transition_end:
            return 1.0
        if step < self.transition_start:
            return 0.0
        frac = (step - self.transition_start) / (self.transition_end - self.transition_start)
        return RAMPS.get(self.ramp).load()(frac)

    def phase_at(self, step: int) -> str:
        if step < self.transition_start:
            return "initial"
        return "transition" if step < self.transition_end else "final"

    def to_dict(self) -> dict:
        return asdict(self)


def alpha_at(step: int, schedule: AlphaSchedule) -> float:
    """Pure function form of `schedule.alpha_at(step)`."""
    return schedule.alpha_at(step)


class AlphaScheduler:
    """Applies an AlphaSchedule to a model's ensembles, one `step()` per training iteration.

    Usage in a user's loop::

        sched = AlphaScheduler(model, AlphaSchedule.from_epochs(5, 90, len(loader)))
        for x, y in loader:
            sched.step()          # sets alpha for this iteration, then advances
            loss = ...; loss.backward(); opt.step()
    """

    def __init__(self, model: nn.Module, schedule: AlphaSchedule, step: int = 0):
        self.model = model
        self.schedule = schedule
        self.step_count = int(step)
        self.apply()

    @property
    def alpha(self) -> float:
        """alpha that the next iteration will use."""
        return self.schedule.alpha_at(self.step_count)

    def apply(self) -> float:
        """Set the current alpha on every ensemble without advancing; returns it."""
        value = self.alpha
        set_alpha(self.model, value)
        return value

    def step(self) -> float:
        """Set alpha for the current iteration on every ensemble, then advance; returns that alpha."""
        value = self.apply()
        self.step_count += 1
        return value

    def state_dict(self) -> dict:
        return {"step": self.step_count, "schedule": self.schedule.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step"])
        self.apply()
