"""What an export starts from: a pea-train run (`export_checkpoint`: its network, images and task
metric) or any module (`export_model`: your inputs, your metric). Both check every input, then hand
the core (pipeline.run_export) the same thing."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..metrics import IGNORE_INDEX
from ..pea import require_alpha_one
from ..verify import Profile, load_profile
from .inputs import gather_inputs, gather_labelled
from .options import ExportOptions
from .outputs import FlatOutputs, output_spec
from .parity import TaskMetric, UserMetric
from .pipeline import ExportInputs, ExportResult, run_export, sha256_of
from .samples import LabelledInputs, calibration_inputs, load_splits, validation_inputs
from .steps import require
from .target import ExportSettings, check_vela_config
from .trained import load_trained, require_deployable


def export_checkpoint(source: str | Path, target: str | Profile, out: str | Path,
                      options: ExportOptions | None = None, *, command: str = "", log=None) -> ExportResult:
    """Run the whole export for the checkpoint or run directory `source` against `target` (a built-in
    profile name or a Profile) into `out`: the export of any module, with the run's network, its
    calibration and validation images and its task metric. Raises PeaError subclasses for bad input and failed steps;
    returns the result (verdict, exit code, report dict) once every artefact was built and checked."""
    options = options or ExportOptions()
    options.validate()
    t_start = time.perf_counter()
    profile = target if isinstance(target, Profile) else load_profile(target)
    trained = load_trained(source, options.checkpoint, options.model_file)
    require_deployable(trained)
    _require_tools(profile, options)
    # Every input is checked before the first progress line, so bad input reads as one line.
    t0 = time.perf_counter()
    splits = load_splits(trained)
    timings = {"load_data_s": round(time.perf_counter() - t0, 3)}
    val = validation_inputs(trained, splits, options.parity_samples, options.seed)
    calib, calib_source = calibration_inputs(trained, options.calib_samples, splits=splits,
                                             data_dir=options.calib_dir, seed=options.seed)
    ignore = int(trained.dataset.get("ignore_index") or IGNORE_INDEX)
    provenance = {"path": str(trained.checkpoint), "sha256": sha256_of(trained.checkpoint),
                  "epoch": trained.epoch, "global_step": trained.global_step,
                  "recipe": trained.recipe.to_dict(), "task": trained.task,
                  "classes": trained.dataset.get("classes")}

    def retrain(stripped, calibration, say):
        return _qat_graph(stripped, calibration, options, trained, splits, say)

    example = val.images[:1].contiguous()
    outputs = output_spec(trained.model, example)
    if trained.task == "detection":
        from ..detection.metric import map_metric

        metric = UserMetric(map_metric(tuple(example.shape[2:])), name="map", unflatten=outputs.unflatten)
    else:
        metric = TaskMetric(trained.task, trained.num_classes, ignore)
    return run_export(trained.model, profile, out, options, ExportInputs(example, calib, calib_source, val, outputs),
                      metric, provenance,
                      f"checkpoint {trained.checkpoint} (epoch {trained.epoch})", command, log,
                      retrain if options.qat_epochs else None, t_start, timings)


def export_model(model: nn.Module, target: str | Profile, out: str | Path, *, example_inputs, calibration,
                 validation=None, metric: Callable | None = None, options: ExportOptions | None = None,
                 command: str = "", log=None, provenance: dict | None = None) -> ExportResult:
    """Export any nn.Module (plain ReLU/ReLU6, or with PEA ensembles all at alpha 1) against `target`
    into `out`, with every step export_checkpoint runs: alpha gate, strip proof, the artefacts of
    `options.formats`, parity, per-layer int8 error, op check, Vela, reports.

    example_inputs: one input of batch 1 (the artefacts' static shape). calibration: real inputs as
    the model takes them (normalised): a tensor, an iterable of batches or a DataLoader (a tuple
    batch gives its first element). validation: the same, with targets as second element where
    `metric` needs them; None scores output fidelity on the calibration inputs. metric:
    `fn(outputs, targets) -> float`, computed per artefact over the whole split and named in the
    report, or `-> {name: float}` (the first the row's score, the others beside it, each held to
    --max-drop); without one, parity gates on output cosine and --max-drop does not apply. provenance:
    what report.json records of where the model came from (weights file, builder), beside its class."""
    options = options or ExportOptions()
    options.validate()
    t_start = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"export_model needs an nn.Module, got {type(model).__name__}")
    if options.qat_epochs:
        raise ConfigError("--qat-epochs needs a pea-train run (it fine-tunes on the run's training split)")
    if options.calib_dir is not None:
        raise ConfigError("calib_dir reads a pea-train run's images; give export_model its calibration inputs")
    profile = target if isinstance(target, Profile) else load_profile(target)
    model = copy.deepcopy(model).eval().cpu()  # your model stays where it is, in its mode
    require_alpha_one(model, "train until every alpha reaches 1", "refusing to export the model")
    _require_tools(profile, options)
    example = example_inputs[0] if isinstance(example_inputs, (tuple, list)) and len(example_inputs) == 1 else example_inputs
    if not isinstance(example, torch.Tensor) or example.dim() < 2 or len(example) != 1:
        raise DataError("example_inputs must be one float tensor of batch 1, e.g. torch.zeros(1, 3, 224, 224)")
    example = example.detach().float().contiguous()
    shape = tuple(example.shape[1:])
    module_name = f"{type(model).__module__}.{type(model).__qualname__}"
    outputs = output_spec(model, example)
    if not outputs.single and not outputs.flat:
        model = FlatOutputs(model)  # every format writes the outputs as one flat tuple, in this order
    calib = gather_inputs(calibration, "calibration data", shape, options.calib_samples)
    if validation is None:
        val = LabelledInputs(calib, None, f"the {len(calib)} calibration inputs (no validation data given)")
    else:
        val = gather_labelled(validation, "validation data", shape, options.parity_samples)
    if metric is not None and not callable(metric):
        raise ConfigError(f"metric must be a function (outputs, targets) -> float, got {type(metric).__name__}")
    if metric is not None and val.labels is None:
        raise DataError("a metric needs targets: give validation batches as (input, target)")
    user_metric = UserMetric(metric, unflatten=outputs.unflatten) if metric is not None else None
    provenance = {"path": None, "module": module_name, "task": user_metric.name if user_metric else None,
                  "classes": None, **(provenance or {})}
    subject = f"module {provenance.get('weights', {}).get('model') or module_name}"
    return run_export(model, profile, out, options, ExportInputs(example, calib, f"{len(calib)} given inputs", val, outputs),
                      user_metric, provenance, subject, command, log, None, t_start, {})


def _require_tools(profile: Profile, options: ExportOptions) -> None:
    """Each optional extra the export will use, asked for before any work starts."""
    settings = ExportSettings.from_profile(profile)
    if "tflite" in options.formats:
        require("litert_torch", "the int8 TFLite export (--formats tflite)", "tflite")
    if "pte" in options.formats:
        require("executorch", "the ExecuTorch export (--formats pte)", "executorch")
    if "tflite" in options.formats and settings.vela_accelerator:
        require("ethosu", f"target {profile.name} (Vela compilation for {settings.vela_accelerator})", "vela")
        check_vela_config(options.vela_system_config, options.vela_memory_mode)
    if "tflite" in options.formats and "tflite-micro" in settings.parity_runtimes:
        require("tflite_micro", f"target {profile.name} (parity in TFLite Micro, the device's runtime)", "tflm")


def _qat_graph(stripped, calib, options: ExportOptions, trained, splits, say):
    """The PT2E graph the TFLite file is written from, quantization-aware fine-tuned on the run's
    training split (--qat-epochs)."""
    from ..data.loader import epoch_generator, iterate
    from ..train.task import task_named
    from .qat import qat_finetune
    from .samples import normalizer

    normalize = normalizer(trained)
    task = task_named(trained.task, trained.num_classes, int(trained.dataset.get("ignore_index") or IGNORE_INDEX))

    def batches(epoch: int):
        for images, targets in iterate(splits.train, options.qat_batch, shuffle=True, drop_last=True,
                                       gen=epoch_generator(options.seed, epoch)):
            yield normalize(images), targets

    return qat_finetune(stripped, calib, batches, task.loss, epochs=options.qat_epochs, lr=options.qat_lr, log=say)
