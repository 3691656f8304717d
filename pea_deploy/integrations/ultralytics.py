"""PEA inside Ultralytics' own trainer: `add_pea_callbacks(YOLO("yolov8n.yaml"))`, then `model.train(...)`.

    from ultralytics import YOLO
    from pea_deploy.integrations.ultralytics import add_pea_callbacks

    model = YOLO("yolov8n.yaml")                       # SiLU everywhere: one shared nn.SiLU instance
    add_pea_callbacks(model, initial_epochs=0, transition_end=60)
    model.train(data="data.yaml", epochs=100)          # best.pt / last.pt: plain nn.ReLU checkpoints

What the trainer does behind a plain callback's back, and how each is handled here:
- it builds the optimizer and an EMA copy of the model before training. act="keep" wraps the model's
  own activation modules (no parameter changes identity), so converting the model and, separately,
  its EMA copy once both exist (on_pretrain_routine_end) leaves the optimizer valid;
- ModelEMA.update lerps every floating tensor of the state_dict, the ensembles' alpha buffers
  included: the same alpha is set on model and EMA before every batch and again after it (after
  the EMA update), so alpha is never an average;
- it validates and saves the EMA and picks best.pt by fitness from any epoch: an epoch counts only
  when the schedule stands at alpha 1 at its end. Then model and EMA are stripped to nn.ReLU in
  place (exactly the trained function: at alpha 1 an ensemble computes its target bit for bit),
  the EMA's BatchNorm statistics are re-estimated on training batches, and every checkpoint written
  from then on is a plain Ultralytics checkpoint. Before that, best.pt is never written;
- a run that ends below alpha 1 (too few epochs, early stopping) raises AlphaNotOneError.

`add_hard_swap_callbacks` is the measured alternative for a trained SiLU checkpoint: every
activation becomes ReLU at once, BatchNorm is re-estimated, and the trainer fine-tunes the ReLU net
(pass Ultralytics' own `distill_model="silu.pt"` to model.train to distil from the smooth net).
Ultralytics is an optional extra: `pip install 'pea-deploy[ultralytics]'`.
"""

from __future__ import annotations

import math

from torch import nn

from ..errors import AlphaNotOneError, ConfigError, ConversionError
from ..pea import AlphaSchedule, AlphaScheduler, convert, hard_swap, require_alpha_one, set_alpha, strip

EVENTS = ("on_pretrain_routine_end", "on_train_start", "on_train_batch_start", "on_train_batch_end",
          "on_train_epoch_end", "on_fit_epoch_end", "on_train_end")


def _networks(trainer) -> tuple[nn.Module, nn.Module | None]:
    """(the trained network, its EMA copy) with DDP/compile wrappers and a DistillationModel's
    teacher left out: the modules whose activations are converted."""
    from ultralytics.utils.torch_utils import unwrap_model

    def student(m):
        inner = getattr(m, "student_model", None)
        return m if inner is None else inner

    ema = getattr(trainer, "ema", None)
    return student(unwrap_model(trainer.model)), (student(ema.ema) if ema is not None and ema.ema is not None else None)


def _convert_in_place(net: nn.Module, **options) -> None:
    converted = convert(net, **options)
    if converted is not net:  # its root forward() called an activation: torch.fx rewrote the root
        raise ConversionError(f"{type(net).__name__}.forward() calls an activation function; the Ultralytics "
                              "integration converts activation modules only")


def _image_batches(trainer, limit: int):
    """Up to `limit` training batches as the model takes them (preprocessed, on the device). The
    trainer's loader repeats without end: the next epoch still gets its full count of batches."""
    for n, batch in enumerate(trainer.train_loader):
        if n >= limit:
            return
        yield trainer.preprocess_batch(batch)["img"]


def _recalibrate(trainer, net: nn.Module, batches: int) -> int:
    from ..train.bn import recalibrate_bn

    return recalibrate_bn(net, _image_batches(trainer, min(batches, len(trainer.train_loader))))


def _refuse_resume(trainer, who: str) -> None:
    if getattr(trainer.args, "resume", False):
        raise ConfigError(f"{who}: resuming an Ultralytics run is not supported yet; start the run again")


class PEACallbacks:
    """The callbacks `add_pea_callbacks` registers; `history` lists per epoch its alpha at the end and
    whether it was eligible for best.pt."""

    def __init__(self, *, act: str, target: str, variant: str, ramp: str, initial_epochs: float,
                 transition_end: float, bn_reestimate: bool, bn_batches: int):
        if not 0 <= initial_epochs <= transition_end:
            raise ConfigError(f"add_pea_callbacks needs 0 <= initial_epochs <= transition_end, got "
                              f"{initial_epochs} and {transition_end}")
        self.convert_options = {"act": act, "target": target, "variant": variant}
        self.ramp, self.initial_epochs, self.transition_end = ramp, initial_epochs, transition_end
        self.bn_reestimate, self.bn_batches = bn_reestimate, bn_batches
        self.scheduler: AlphaScheduler | None = None
        self.batch_alpha = 0.0
        self.stripped = False
        self.history: list[dict] = []
        self._held = None  # (best_fitness, args.save) while a transition epoch is validated and saved

    def on_pretrain_routine_end(self, trainer) -> None:
        _refuse_resume(trainer, "add_pea_callbacks")
        model, ema = _networks(trainer)
        _convert_in_place(model, **self.convert_options)
        if ema is not None:  # a separate deep copy: its own ensembles, set to the same alpha below
            _convert_in_place(ema, **self.convert_options)

    def on_train_start(self, trainer) -> None:
        if self.transition_end > trainer.epochs:
            raise AlphaNotOneError(f"add_pea_callbacks: alpha reaches 1 at epoch {self.transition_end:g}, the run "
                                   f"trains {trainer.epochs} epochs: give transition_end <= epochs")
        schedule = AlphaSchedule.from_epochs(self.initial_epochs, self.transition_end, len(trainer.train_loader),
                                             self.ramp)
        self.scheduler = AlphaScheduler(_networks(trainer)[0], schedule)
        self._set_ema(trainer, self.scheduler.alpha)

    def _set_ema(self, trainer, alpha: float) -> None:
        ema = _networks(trainer)[1]
        if ema is not None:
            set_alpha(ema, alpha)

    def on_train_batch_start(self, trainer) -> None:
        if not self.stripped:
            self.batch_alpha = self.scheduler.step()
            self._set_ema(trainer, self.batch_alpha)

    def on_train_batch_end(self, trainer) -> None:
        if not self.stripped:  # undo ModelEMA.update's average of the alpha buffers
            self._set_ema(trainer, self.batch_alpha)

    def on_train_epoch_end(self, trainer) -> None:
        """Before validation and saving: strip at alpha 1, else keep this epoch out of best.pt."""
        alpha = 1.0 if self.stripped else self.scheduler.apply()  # where the schedule stands now
        self._set_ema(trainer, alpha)
        if alpha == 1.0:
            self._strip(trainer)
        elif trainer.epoch + 1 >= trainer.epochs:  # the trainer saves a final epoch whatever args.save says
            self._refuse(trainer)
        else:
            # validate() keeps fitness > best_fitness and save_model() writes best.pt when they are
            # equal: with +inf held as the best neither happens. No last.pt either: below alpha 1 the
            # network is no deployable ReLU net (and the ensembles do not pickle). Both are put back
            # after the trainer's save.
            self._held = (trainer.best_fitness, trainer.args.save)
            trainer.best_fitness, trainer.args.save = math.inf, False
        self.history.append({"epoch": trainer.epoch + 1, "alpha": alpha, "eligible": alpha == 1.0})

    def _strip(self, trainer) -> None:
        model, ema = _networks(trainer)
        if not self.stripped:
            for net in (model, ema):
                if net is not None:
                    strip(net)  # refuses below alpha 1
            self.stripped = True
        if self.bn_reestimate and ema is not None:
            # the EMA's running statistics average those of past weights, some at alpha < 1; the
            # checkpoint gets the statistics of its own weights at alpha 1
            _recalibrate(trainer, ema, self.bn_batches)

    def on_fit_epoch_end(self, trainer) -> None:
        if self._held is not None:
            (trainer.best_fitness, trainer.args.save), self._held = self._held, None

    def on_train_end(self, trainer) -> None:
        if not self.stripped:
            self._refuse(trainer)

    def _refuse(self, trainer) -> None:
        step = self.scheduler.step_count if self.scheduler else 0
        require_alpha_one(_networks(trainer)[0], f"alpha reaches 1 at epoch {self.transition_end:g}, training "
                          f"stopped at step {step} (early stopping or a time limit?): no checkpoint was written",
                          "add_pea_callbacks")


class HardSwapCallbacks:
    """The callbacks `add_hard_swap_callbacks` registers."""

    def __init__(self, *, target: str, bn_batches: int):
        self.target, self.bn_batches = target, bn_batches
        self.bn_batches_used = 0

    def on_pretrain_routine_end(self, trainer) -> None:
        _refuse_resume(trainer, "add_hard_swap_callbacks")
        model, ema = _networks(trainer)
        swapped = hard_swap(model, self.target)
        if swapped is not model:
            raise ConversionError(f"{type(model).__name__}.forward() calls an activation function; the Ultralytics "
                                  "integration swaps activation modules only")
        if self.bn_batches:
            self.bn_batches_used = _recalibrate(trainer, model, self.bn_batches)
        if ema is not None:
            hard_swap(ema, self.target)
            ema.load_state_dict(model.state_dict())  # the EMA starts from the swapped, re-estimated net


def _register(model, callbacks) -> None:
    if not hasattr(model, "add_callback"):
        raise ConfigError(f"expected an ultralytics YOLO model (with add_callback), got {type(model).__name__}")
    for event in EVENTS:
        fn = getattr(callbacks, event, None)
        if fn is not None:
            model.add_callback(event, fn)


def add_pea_callbacks(model, *, initial_epochs: float, transition_end: float, act: str = "keep",
                      target: str = "relu", variant: str = "weighted", ramp: str = "linear",
                      bn_reestimate: bool = True, bn_batches: int = 50) -> PEACallbacks:
    """Make `model.train(...)` (an ultralytics YOLO) train with PEA: alpha 0 for `initial_epochs`,
    rising per batch to 1 at epoch `transition_end` (<= the run's epochs). act="keep": the model's
    own activations are the smooth branch. Returns the callbacks (their `history`)."""
    callbacks = PEACallbacks(act=act, target=target, variant=variant, ramp=ramp, initial_epochs=initial_epochs,
                             transition_end=transition_end, bn_reestimate=bn_reestimate, bn_batches=bn_batches)
    _register(model, callbacks)
    return callbacks


def add_hard_swap_callbacks(model, *, target: str = "relu", bn_batches: int = 50) -> HardSwapCallbacks:
    """Make `model.train(...)` fine-tune the hard swap of `model`: every activation replaced by
    `target` at once before the first batch, BatchNorm re-estimated on `bn_batches` training batches."""
    callbacks = HardSwapCallbacks(target=target, bn_batches=bn_batches)
    _register(model, callbacks)
    return callbacks
