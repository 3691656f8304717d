"""PEA in a Lightning training run: `Trainer(callbacks=[PEACallback(initial_epochs=1, transition_end_epoch=8)])`.

The callback converts the LightningModule's networks at setup (before the optimizers are made;
act="keep" wraps their own activations, so no parameter changes identity), sets alpha before every
training batch from the schedule (in epochs of the trainer's batches per epoch, as the paper's
per-iteration Eq. 2), keeps the schedule's position in checkpoints (so a resumed fit continues it),
and at the end of training refuses (AlphaNotOneError) to finish below alpha 1, or re-estimates the
BatchNorm statistics at alpha 1 on training batches. Export the result with pea_deploy.export_model.
`lightning` is an optional extra (`pea-deploy[lightning]`).
"""

from __future__ import annotations

from torch import nn

from .errors import ConversionError
from .pea import AlphaSchedule, AlphaScheduler, convert, require_alpha_one

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as e:  # pragma: no cover - exercised where lightning is absent
    from .errors import MissingDependency

    raise MissingDependency("PEACallback needs lightning: pip install 'pea-deploy[lightning]'") from e

STATE_KEY = "pea_deploy"


class PEACallback(Callback):
    def __init__(self, initial_epochs: float, transition_end_epoch: float, *, act: str = "keep",
                 target: str = "relu", variant: str = "weighted", ramp: str = "linear", bn_batches: int = 50,
                 modules: list[str] | None = None):
        """`modules`: names of the LightningModule's children to convert (default: every child that
        holds an activation to convert)."""
        self.initial_epochs, self.transition_end_epoch = initial_epochs, transition_end_epoch
        self.act, self.target, self.variant, self.ramp = act, target, variant, ramp
        self.bn_batches, self.modules = bn_batches, modules
        self.scheduler: AlphaScheduler | None = None
        self._restored_step = 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or getattr(pl_module, "_pea_converted", False):
            return
        names = self.modules or [n for n, _ in pl_module.named_children()]
        converted = []
        for name in names:
            child = getattr(pl_module, name, None)
            if not isinstance(child, nn.Module):
                raise ConversionError(f"PEACallback: the LightningModule has no module {name!r}")
            try:
                setattr(pl_module, name, convert(child, act=self.act, target=self.target, variant=self.variant))
                converted.append(name)
            except ConversionError:
                if self.modules:
                    raise
        if not converted:
            raise ConversionError("PEACallback found no activation to convert in the LightningModule's modules")
        pl_module._pea_converted = True

    def on_train_start(self, trainer, pl_module) -> None:
        steps = int(trainer.num_training_batches)
        schedule = AlphaSchedule.from_epochs(self.initial_epochs, self.transition_end_epoch, steps, self.ramp)
        self.scheduler = AlphaScheduler(pl_module, schedule, step=self._restored_step)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        alpha = self.scheduler.step()
        pl_module.log("pea_alpha", alpha, on_step=True, on_epoch=False, prog_bar=False)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if self.scheduler is not None:
            checkpoint[STATE_KEY] = self.scheduler.state_dict()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._restored_step = int(checkpoint.get(STATE_KEY, {}).get("step", 0))

    def on_train_end(self, trainer, pl_module) -> None:
        if self.scheduler is not None:
            self.scheduler.apply()  # where the schedule stands after the last batch
        step = self.scheduler.step_count if self.scheduler else 0
        end = self.scheduler.schedule.transition_end if self.scheduler else "?"
        require_alpha_one(pl_module, f"the schedule reaches alpha 1 at step {end}, training stopped at step {step}: "
                                     f"train longer or end the transition earlier", "PEACallback")
        if self.bn_batches:
            from .train.bn import recalibrate_bn

            loader = trainer.train_dataloader
            recalibrate_bn(pl_module, loader, limit=self.bn_batches)
