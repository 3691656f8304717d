"""The training run behind `pea-train`: recipe -> net -> PEA convert -> train -> checkpoints.

`train(recipe)` is the whole run; a user with their own loop needs only `pea_deploy.pea`.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import Normalize, epoch_generator, iterate, steps_per_epoch
from ..data.images import DatasetSplits
from ..data.loader import Augmentation, training_batches
from ..errors import CheckpointError, ConfigError, TrainingDiverged
from ..pea import AlphaSchedule, AlphaScheduler, alphas, conversion_summary, describe_conversion
from . import distributed as dist_
from .bn import batches_for, recalibrate_bn
from .build import build_run_model, load_data
from .distill import distillation_loss
from .checkpoint import load_checkpoint, save_checkpoint
from .history import plot_history, write_json, write_metrics_csv
from .optim import LRSchedule, build_optimizer
from .recipe import Recipe
from .resume_rules import check_resumable, restore_rng
from .task import check_outputs, task_for

def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None


@dataclass
class RunPaths:
    root: Path

    @property
    def last(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "checkpoints" / "best.pt"


class Trainer:
    """One run: owns the model, optimizer, schedules and run directory; `fit()` trains to the end.

    Under torchrun it joins the process group when built and leaves it on `close()`; use it as a
    context manager (`with Trainer(recipe, out) as t: t.fit()`) so the group never outlives the run.
    """

    def __init__(self, recipe: Recipe, out: str | Path | None = None, *, resume: bool = False,
                 progress: bool | None = None, log=None, data: DatasetSplits | None = None):
        self.recipe = recipe
        self.paths = RunPaths(Path(out or recipe.train.out or f"runs/{recipe.name}"))
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.dist = dist_.context_from_env()
        self.device = resolve_device(recipe.train.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        joined_before = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.dist = dist_.init_process_group(self.dist, self.device)
        self._owns_group = self.dist.enabled and not joined_before  # a caller's own group stays theirs
        self.local_batch = dist_.local_batch_size(recipe.data.batch_size, self.dist)
        if not self.dist.is_main:
            self.log = lambda msg: None  # one set of outputs: rank 0 speaks and writes
        torch.manual_seed(recipe.train.seed)
        self.data = data if data is not None else load_data(recipe)  # given: runs sharing one dataset
        self.normalize = Normalize(self.data.mean, self.data.std)
        self.task = task_for(self.data, recipe.optim.label_smoothing)
        if resume and not self.paths.last.exists():
            raise CheckpointError(f"cannot resume: {self.paths.last} does not exist")
        saved = load_checkpoint(self.paths.last, map_location=self.device) if resume else None  # read once
        built = build_run_model(recipe, self.data, fresh=not resume,
                                recorded_source=saved.get("model_source") if saved else None)
        self.model, self.source, self.init_from = built.model.to(self.device), built.source, built.init_from
        self.teacher = built.teacher.to(self.device) if built.teacher is not None else None
        sample = self.normalize(torch.stack([self.data.val[i][0] for i in range(min(2, len(self.data.val)))])
                                .to(self.device))
        check_outputs(self.model, self.task, sample, self.data.num_classes)  # one line before any step
        t = recipe.train
        if t.amp == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.amp fp16 needs CUDA; use bf16 on CPU")
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.amp == "fp16")
        # The module the training step runs: DDP around the model when distributed. Weights are
        # shared, so checkpoints, alphas and evaluation use self.model directly.
        self.trained = dist_.wrap_model(self.model, self.dist, self.device)
        if t.compile:  # the step's module only: checkpoints, alphas and evaluation keep self.model
            self.trained = torch.compile(self.trained)
        if self.dist.rank > 0:  # own stochastic masks and dropout per rank; rank 0 = single process
            torch.manual_seed(recipe.train.seed + 1_000_003 * self.dist.rank)
        self.alpha_checks = 0
        self.steps_per_epoch = steps_per_epoch(len(self.data.train), recipe.data.batch_size)
        self.optimizer = build_optimizer(self.model, recipe.optim)
        self.lr_schedule = LRSchedule.from_config(recipe.optim, self.steps_per_epoch, recipe.train.epochs)
        p = recipe.pea
        self.alpha_schedule = AlphaSchedule.from_epochs(p.initial_epochs, p.transition_end,
                                                        self.steps_per_epoch, p.ramp)
        self.alpha_scheduler = AlphaScheduler(self.model, self.alpha_schedule) if p.mode == "pea" else None
        self.conversion = (conversion_summary(self.model, p.target) if p.mode == "pea"
                           else getattr(self.model, "pea_conversion", []))
        if self.conversion and not resume:
            self.log(f"converted: {describe_conversion(self.conversion)}")
        self.epoch, self.global_step, self.history = 0, 0, []
        self._recalibrated_at: int | None = None
        self.start_scores: dict | None = None
        self.best: dict = {}
        self.wall_time = 0.0
        if saved is not None:
            self._resume(saved)

    def close(self) -> None:
        """Leave the process group this trainer joined (nothing when not distributed)."""
        if getattr(self, "_owns_group", False):
            dist_.shutdown(self.dist)
            self._owns_group = False

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.dist.enabled:  # every rank's own stream, so a resumed run draws what it would have
            states = [None] * self.dist.world_size
            torch.distributed.all_gather_object(states, torch.get_rng_state())
            rng["torch_per_rank"] = states
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "recipe": self.recipe.to_dict(), "dataset": self.data.describe(), "epoch": self.epoch,
            "global_step": self.global_step, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "grad_scaler": self.scaler.state_dict(),
            "alpha_scheduler": self.alpha_scheduler.state_dict() if self.alpha_scheduler else None,
            "alpha_schedule": self.alpha_schedule.to_dict(), "steps_per_epoch": self.steps_per_epoch,
            "rng": rng, "history": self.history, "best": self.best, "wall_time_s": self.wall_time,
            "model_source": self.source.to_dict() if self.source else None, "init_from": self.init_from,
            "start_scores": self.start_scores,
        }

    def _resume(self, state: dict) -> None:
        check_resumable(state["recipe"], self.recipe, self.paths.root)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("grad_scaler"):
                self.scaler.load_state_dict(state["grad_scaler"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{self.paths.last} does not match the recipe's model: "
                                  f"{str(e).splitlines()[0]}") from None
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.history, self.best = list(state.get("history", [])), dict(state.get("best", {}))
        self.wall_time = float(state.get("wall_time_s", 0.0))
        self.init_from, self.start_scores = state.get("init_from"), state.get("start_scores")
        if self.alpha_scheduler and state.get("alpha_scheduler"):
            self.alpha_scheduler.load_state_dict(state["alpha_scheduler"])
        restore_rng(state["rng"], self.dist, self.paths.root)
        self.log(f"resumed {self.paths.root} at epoch {self.epoch} (step {self.global_step})")

    # -- training ------------------------------------------------------------------------------
    @property
    def relu_form_from(self) -> int | None:
        """The first step at which the network is in its ReLU form: step 0 of a hard swap, the end
        of the transition for PEA; None when there is no swap (a from-scratch baseline, Act only)."""
        p = self.recipe.pea
        if p.mode == "pea":
            return self.alpha_schedule.transition_end
        swapped = self.conversion or self.recipe.train.init_from  # a ReLU net started from smooth weights
        return 0 if p.mode == "relu" and swapped else None

    def _score_the_start(self) -> None:
        """Validate the converted network before any step (after the BatchNorm re-estimation a hard
        swap gets): what the swap alone costs, and what fine-tuning then buys back."""
        if self.relu_form_from == 0 and batches_for(self.recipe):
            self.recalibrate_bn("after the hard swap")
            self._recalibrated_at = 0
        if self.alpha_scheduler:
            self.alpha_scheduler.apply()
        scores = self.task.evaluate(self.model, self.data.val, self.normalize, self.device,
                                    self.recipe.train.eval_batch_size)
        self.start_scores = {k: round(v, 3) for k, v in scores.items() if isinstance(v, float)}
        self.log(f"before fine-tuning: val {self.task.label} {scores[self.task.metric]:.2f}%")

    def recalibrate_bn(self, why: str) -> None:
        """Re-estimate BatchNorm statistics on `batches_for(recipe)` training batches (seeded by the
        step, so a resumed run draws the same ones), leaving the training RNG untouched."""
        r = self.recipe
        gen = torch.Generator().manual_seed(r.train.seed * 7_919 + self.global_step)
        batches = iterate(self.data.train, self.local_batch, shuffle=True, gen=gen, drop_last=True)
        inputs = (self.normalize(images.to(self.device)).contiguous(memory_format=self.memory_format)
                  for images, _ in itertools.islice(batches, batches_for(r)))
        used = recalibrate_bn(self.model, inputs)
        if used:
            self.log(f"BatchNorm statistics re-estimated on {used} batches ({why}, step {self.global_step})")

    def _train_epoch(self) -> dict:
        from tqdm import tqdm

        r = self.recipe
        self.model.train()
        gen = epoch_generator(r.train.seed + 1_000_003 * self.dist.rank, self.epoch)
        pad = r.data.crop_padding if r.data.crop_padding is not None else max(1, self.data.image_size // 8)
        order = dist_.epoch_indices(len(self.data.train), r.train.seed, self.epoch, self.dist,
                                    r.data.batch_size)
        moved = {"segmentation": "masks", "detection": "boxes"}.get(self.data.task, "class")  # with the images
        fill = self.data.ignore_index if self.data.ignore_index is not None else 255
        augmentation = Augmentation(tuple(r.data.augment), pad, moved, fill)
        batches = training_batches(self.data.train, self.local_batch, order, augmentation, gen, r.data.workers)
        bar = tqdm(batches, total=self.steps_per_epoch, disable=not self.progress, leave=False,
                   desc=f"epoch {self.epoch + 1}/{r.train.epochs}", file=sys.stderr, dynamic_ncols=True)
        loss_sum, correct, n, lr, alpha = 0.0, 0, 0, 0.0, 1.0
        pin = self.device.type == "cuda"  # pinned host memory: the copy overlaps the compute
        for images, labels in bar:
            if pin:
                images, labels = images.pin_memory(), labels.pin_memory()
            x = self.normalize(images.to(self.device, non_blocking=pin))
            x = x.contiguous(memory_format=self.memory_format)
            y = labels.to(self.device, non_blocking=pin)
            if self.alpha_scheduler:
                alpha = self.alpha_scheduler.step()
            if self.global_step == self.relu_form_from and batches_for(r) and \
                    self._recalibrated_at != self.global_step:
                self.recalibrate_bn("the first step in ReLU form")
            lr = self.lr_schedule.apply(self.optimizer, self.global_step)
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                enabled=self.autocast_dtype is not None):
                logits = self.trained(x)
                loss = self.task.loss(logits, y)
                if self.teacher is not None:
                    with torch.no_grad():
                        teacher_logits = self.teacher(x)
                    w = r.distill.weight
                    distill = getattr(self.task, "distill", distillation_loss)
                    loss = (1 - w) * loss + w * distill(logits, teacher_logits, r.distill.temperature)
            if not math.isfinite(loss.item()):
                kept = (f"last good checkpoint kept: {self.paths.last} (epoch {self.epoch})"
                        if self.paths.last.exists() else "no checkpoint was written (it diverged before "
                        "the first epoch ended); lower --lr or check the data")
                raise TrainingDiverged(
                    f"loss became {loss.item()} at step {self.global_step} (epoch {self.epoch + 1}, "
                    f"alpha {alpha:.4f}, lr {lr:.4g}); {kept}")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()  # the scaler is a pass-through unless amp is fp16
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.global_step += 1
            hit, counted = self.task.hits(logits, y)
            loss_sum += loss.item() * counted
            correct += hit
            n += counted
            bar.set_postfix(loss=f"{loss_sum / max(n, 1):.3f}", acc=f"{100 * correct / max(n, 1):.1f}",
                            alpha=f"{alpha:.3f}")
        bar.close()
        if self.dist.enabled:  # epoch statistics over every rank's share of the batches
            totals = torch.tensor([loss_sum, correct, n], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(totals)
            loss_sum, correct, n = totals.tolist()
            if not dist_.same_on_all_ranks([float(self.global_step), alpha], self.dist):
                raise RuntimeError(f"alpha schedule out of step across ranks at step {self.global_step}")
            self.alpha_checks += 1
        return {"lr": lr, "train_loss": loss_sum / max(n, 1),
                f"train_{self.task.train_metric}": 100.0 * correct / max(n, 1)}

    def fit(self, until_epoch: int | None = None) -> dict:
        """Train to the recipe's last epoch, or stop after `until_epoch` (a resumable pause, e.g.
        for a time-limited job); returns the summary."""
        r = self.recipe
        stop = r.train.epochs if until_epoch is None else min(until_epoch, r.train.epochs)
        if self.global_step == 0 and self.init_from and self.start_scores is None:
            self._score_the_start()
        while self.epoch < stop:
            t0 = time.perf_counter()
            final_form = self.in_final_form(self.epoch + 1)
            stats = self._train_epoch()
            self.epoch += 1
            alpha = self.alpha_scheduler.apply() if self.alpha_scheduler else 1.0
            scores = self.task.evaluate(self.model, self.data.val, self.normalize, self.device,
                                        r.train.eval_batch_size)
            dt = time.perf_counter() - t0
            self.wall_time += dt
            key, train_key = f"val_{self.task.metric}", f"train_{self.task.train_metric}"
            row = {"epoch": self.epoch, "step": self.global_step, "alpha": round(alpha, 6),
                   "lr": stats["lr"], "train_loss": round(stats["train_loss"], 5),
                   train_key: round(stats[train_key], 3), "val_loss": round(scores["loss"], 5),
                   **{f"val_{k}": round(v, 3) if isinstance(v, float) else v
                      for k, v in scores.items() if k != "loss"},
                   "final_form": final_form, "epoch_time_s": round(dt, 3)}
            self.history.append(row)
            relu_only = r.pea.mode != "act" and final_form
            state = self.state_dict()  # a collective when distributed: every rank builds it
            if relu_only and row[key] > self.best.get(key, -1.0):
                self.best = {"epoch": self.epoch, key: row[key]}
                if self.dist.is_main:
                    save_checkpoint(self.paths.best, state)
            if self.dist.is_main:
                save_checkpoint(self.paths.last, state)
                write_metrics_csv(self.paths.root / "metrics.csv", self.history)
            dist_.barrier(self.dist)
            self.log(f"epoch {self.epoch}/{r.train.epochs}  alpha {alpha:.4f}  lr {stats['lr']:.4g}  "
                     f"train {stats[train_key]:.2f}%  val {self.task.label} {row[key]:.2f}%  ({dt:.1f}s)")
        return self.finish()

    def in_final_form(self, epoch: int) -> bool:
        """Whether (1-based) `epoch` trains the net in its final form from its first step on: PEA's
        final phase (alpha == 1; the epoch that ends the transition trained below 1 up to its last
        step), every epoch of a ReLU baseline or Act-only run. The paper selects models among these."""
        return self.alpha_scheduler is None or \
            self.alpha_schedule.alpha_at((epoch - 1) * self.steps_per_epoch) == 1.0

    def finish(self) -> dict:
        r = self.recipe
        key = f"val_{self.task.metric}"
        if self.history and self.dist.is_main:
            plot_history(self.paths.root / "history.png", self.history,
                         f"{r.name}: {r.model.name} on {r.data.name}, mode={r.pea.mode}",
                         self.task.train_metric, self.task.metric, self.task.label)
        final_alphas = alphas(self.model)
        selectable = [h for h in self.history if self.in_final_form(h["epoch"])]
        best_row = max(selectable, key=lambda h: h[key], default=None)
        summary = {
            "recipe_name": r.name, "mode": r.pea.mode, "epochs": self.epoch, "steps": self.global_step,
            "task": self.data.task, "metric": key,
            f"final_{key}": self.history[-1][key] if self.history else None,
            f"best_{key}": best_row[key] if best_row else None,
            "best_epoch": best_row["epoch"] if best_row else None,
            **{f"{when}_val_{m}": row.get(f"val_{m}") if row else None  # e.g. mAP@0.5 beside mAP@0.5:0.95
               for m in getattr(self.task, "also_reported", ())
               for when, row in (("final", self.history[-1] if self.history else None), ("best", best_row))},
            "best_is_over": "epochs trained entirely in the final form (PEA: alpha == 1, the paper's final "
                            "phase; baseline and upper limit: every epoch)",
            "best_relu_only": self.best or None,
            "conversion": self.conversion,
            "model_source": self.source.to_dict() if self.source else None, "init_from": self.init_from,
            f"start_{key}": self.start_scores.get(self.task.metric) if self.start_scores else None,
            "distill": r.distill.enabled,
            "final_alphas": final_alphas,
            "all_alphas_one": all(a == 1.0 for a in final_alphas.values()),
            "wall_time_s": round(self.wall_time, 2), "device": str(self.device),
            "batch_size": r.data.batch_size, "steps_per_epoch": self.steps_per_epoch,
            "distributed": {
                "world_size": self.dist.world_size, "backend": self.dist.backend,
                "global_batch": r.data.batch_size, "per_process_batch": self.local_batch,
                "lr_scaling": "none: batch_size is the global batch, the same as a single-process run",
                "alpha_checked_across_ranks": self.alpha_checks},
            "alpha_schedule": self.alpha_schedule.to_dict() if r.pea.mode == "pea" else None,
            **({"final_val_iou_per_class": dict(zip(self.data.classes, self.history[-1]["val_iou"]))}
               if self.history and "val_iou" in self.history[-1] else {}),
            "dataset": self.data.describe(), "checkpoint": str(self.paths.last),
            "recipe": r.to_dict(),
        }
        if self.dist.is_main:
            write_json(self.paths.root / "summary.json", summary)
        return summary


def train(recipe: Recipe, out: str | Path | None = None, *, resume: bool = False,
          progress: bool | None = None, log=None, until_epoch: int | None = None) -> dict:
    """Train `recipe` into run directory `out` (resume from its last checkpoint if asked), to the
    end or until `until_epoch`; return the summary that is also written to `out/summary.json`."""
    with Trainer(recipe, out, resume=resume, progress=progress, log=log) as trainer:
        return trainer.fit(until_epoch)


def resume(run_dir: str | Path, *, device: str | None = None, progress: bool | None = None,
           log=None, until_epoch: int | None = None, workers: int | None = None) -> dict:
    """Continue the run in `run_dir` from its last checkpoint, with the run's own recipe (on
    `device`, with `workers` loader processes when given: neither changes the result)."""
    state = load_checkpoint(run_dir)
    recipe = Recipe.from_dict(state["recipe"], source=f"{run_dir} checkpoint")
    if device:
        recipe = recipe.with_overrides({"train.device": device})
    if workers is not None:
        recipe = recipe.with_overrides({"data.workers": workers})
    with Trainer(recipe, run_dir, resume=True, progress=progress, log=log) as trainer:
        return trainer.fit(until_epoch)
