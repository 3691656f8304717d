"""Your own training loop, from a smooth (or ReLU) network to a plain ReLU/ReLU6 network, in a few lines:

    pea = relufy(model, act="keep", initial_epochs=1, transition_end_epoch=8, steps_per_epoch=len(loader))
    optimizer = torch.optim.SGD(pea.model.parameters(), lr=0.01)   # pea.model: the converted network
    for epoch in range(10):
        for x, y in loader:
            pea.step()                                  # alpha for this iteration (the paper's Eq. 2)
            loss = criterion(pea.model(x), y); ...
    relu_net = pea.finish(bn_data=loader)               # alpha 1 or refuse; BatchNorm re-estimated; stripped

and the baseline to measure it against (measured in docs/results.md: at CPU scale it is strong):

    relu_net = hard_swap(model, bn_data=loader)         # every activation to ReLU at once, BN re-estimated
"""

from __future__ import annotations

from torch import nn

from .convert import conversion_summary, convert, require_alpha_one, set_alpha, strip
from .schedule import AlphaSchedule, AlphaScheduler


def recalibrate_bn_on(model: nn.Module, data, batches: int) -> int:
    """BatchNorm statistics re-estimated on up to `batches` batches of `data` (tensors, (input, ...)
    tuples or a DataLoader); returns the batches used."""
    from ..train.bn import recalibrate_bn

    return recalibrate_bn(model, data, limit=batches)


def hard_swap(model: nn.Module, target: str = "relu", *, bn_data=None, bn_batches: int = 50) -> nn.Module:
    """Every activation of `model` (its own modules and activation calls in forward(), as
    convert(act="keep") finds them) replaced by `target` at once, then the BatchNorm statistics
    re-estimated on `bn_data` when given: the strong baseline PEA is measured against. Returns the
    ReLU network (use it: a model whose forward() calls activations comes back rewritten)."""
    model = convert(model, act="keep", target=target)
    rows = conversion_summary(model, target)
    set_alpha(model, 1.0)
    model = strip(model)
    model.pea_conversion = [{**r, "variant": "hard swap", "note": "replaced by the target at once"}
                            if "variant" in r else r for r in rows]
    if bn_data is not None:
        recalibrate_bn_on(model, bn_data, bn_batches)
    return model


class Relufier:
    """A converted network and its alpha schedule, stepped once per training iteration; `finish()`
    hands back the plain ReLU network once alpha is 1. `state_dict()` goes into your checkpoints."""

    def __init__(self, model: nn.Module, schedule: AlphaSchedule, target: str):
        self.model = model
        self.target = target
        self.scheduler = AlphaScheduler(model, schedule)

    @property
    def alpha(self) -> float:
        """The alpha the next iteration will use."""
        return self.scheduler.alpha

    def step(self) -> float:
        """Set this iteration's alpha on every ensemble and advance; returns it."""
        return self.scheduler.step()

    def summary(self) -> list[dict]:
        return conversion_summary(self.model, self.target)

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)

    def finish(self, *, bn_data=None, bn_batches: int = 50) -> nn.Module:
        """The trained network as plain ReLU/ReLU6: refuses (AlphaNotOneError) unless every alpha
        is exactly 1 where the schedule stands (the step after the last one taken); re-estimates
        BatchNorm on `bn_data` at alpha 1 when given; strips in place."""
        self.scheduler.apply()
        require_alpha_one(self.model, f"the schedule reaches alpha 1 at step {self.scheduler.schedule.transition_end}, "
                                      f"this is step {self.scheduler.step_count}", "relufy.finish")
        if bn_data is not None:
            recalibrate_bn_on(self.model, bn_data, bn_batches)
        return strip(self.model)


def relufy(model: nn.Module, *, initial_epochs: float, transition_end_epoch: float, steps_per_epoch: int,
           act: str = "keep", target: str = "relu", variant: str = "weighted", ramp: str = "linear",
           **convert_options) -> Relufier:
    """Convert `model` for PEA (act="keep": its own activations are the smooth branch; or a
    registered Act such as "gelu" for a ReLU network) and schedule alpha: 0 for `initial_epochs`,
    rising per iteration to 1 at `transition_end_epoch` (epochs of `steps_per_epoch` iterations)."""
    converted = convert(model, act=act, variant=variant, target=target, **convert_options)
    schedule = AlphaSchedule.from_epochs(initial_epochs, transition_end_epoch, steps_per_epoch, ramp)
    return Relufier(converted, schedule, target)
