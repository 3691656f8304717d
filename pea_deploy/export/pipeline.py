"""`pea-export` end to end: checkpoint -> alpha gate -> strip -> ONNX fp32/int8, TFLite int8 ->
parity on real validation images -> op verification (and Vela for Ethos-U) -> report.json/.md.

Artefacts are built in a hidden staging directory inside the output directory and moved into place
only after every step has run, so an error leaves no partial artefact behind. A parity or
verification failure still delivers the complete artefacts and reports, for inspection, with a
FAILED verdict and a non-zero exit code.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path


from ..errors import ConfigError, unknown_name
from ..metrics import IGNORE_INDEX, METRIC_LABELS
from ..outcomes import ExitCode, Verdict
from ..verify import Profile, load_profile, verify_model
from ..verify.report import model_to_dict
from .onnx_export import export_onnx
from .onnx_quant import ACTIVATION_DTYPES, CALIBRATION_METHODS, quantize_onnx
from .tflite_quantizer import TFLITE_CALIBRATION_METHODS
from .layer_error import ranked
from .parity import ParityEntry, ParityRow, run_parity
from .report import ExportReport, Failure, FailureKind
from .host_cpu import int8_isa
from .runtimes import OnnxRunner, TFLiteRunner, TorchRunner, latency_ms
from .tflm import TFLMRunner
from .samples import calibration_inputs, load_splits, validation_inputs
from .staging import make_staging
from .steps import require
from .target import ExportSettings, check_vela_config
from .trained import load_trained, require_deployable, strip_and_compare
from .versions import package_version, versions

FORMATS = ("onnx", "tflite", "pte")
DEFAULT_FORMATS = ("onnx", "tflite")  # pte (ExecuTorch) on request: it needs its own extra
FP32_ONNX, INT8_ONNX, INT8_TFLITE, INT8_PTE = "model.fp32.onnx", "model.int8.onnx", "model.int8.tflite", "model.int8.pte"
ARTEFACTS = (FP32_ONNX, INT8_ONNX, INT8_TFLITE, INT8_PTE)
PTE_PROFILE = "xnnpack"
PTE_QUANTIZER = "XNNPACKQuantizer, symmetric per-channel, its histogram observers"  # the .pte runs on a CPU: checked against this unless the target has [pte] rules
REPORTS = ("report.json", "report.md")
# Healthy int8 artefacts of the project's nets measure 0.999+; issue 16's third-party ImageNet
# MobileNet measured 0.995 (int8 ONNX, 89 % top-1 agreement) and 0.888 (TFLite, 67 %).
MIN_COSINE = 0.99


@dataclass
class ExportOptions:
    formats: tuple[str, ...] = DEFAULT_FORMATS
    calib_dir: str | Path | None = None
    calib_samples: int = 256
    calib_method: str | None = None       # None: minmax for ONNX, histogram for TFLite
    activation_dtype: str | None = None   # None: the profile's
    opset: int | None = None              # None: the profile's
    max_drop: float = 1.0                 # points of top-1 (mIoU for segmentation) an artefact may lose
    min_cosine: float = MIN_COSINE        # least mean output cosine to torch an artefact may have
    parity_samples: int | None = None     # None: the whole validation split
    checkpoint: str = "best"              # for a run directory: best or last
    model_file: str | None = None         # your network's PATH.py:FUNCTION, when the run's file moved
    latency_runs: int = 50
    diagnose_samples: int = 16            # validation images for the per-layer int8 error report
    vela_system_config: str | None = None  # None: the profile's (else Vela's internal default)
    vela_memory_mode: str | None = None
    qat_epochs: int = 0                   # > 0: the TFLite file comes from quantization-aware fine-tuning
    qat_lr: float = 1e-3
    qat_batch: int = 64
    seed: int = 0

    def validate(self) -> None:
        for f in self.formats:
            if f not in FORMATS:
                raise unknown_name("format", f, FORMATS)
        if not self.formats:
            raise ConfigError("--formats is empty; give one or more of onnx, tflite, pte")
        if self.calib_method is not None:
            known = tuple(dict.fromkeys(CALIBRATION_METHODS + TFLITE_CALIBRATION_METHODS))
            if self.calib_method not in known:
                raise unknown_name("calibration method", self.calib_method, known)
            for fmt, methods in (("onnx", CALIBRATION_METHODS), ("tflite", TFLITE_CALIBRATION_METHODS)):
                if fmt in self.formats and self.calib_method not in methods:
                    raise ConfigError(f"--calib-method {self.calib_method} does not apply to {fmt} "
                                      f"({fmt} takes {', '.join(methods)}); choose one both take or set --formats")
        if self.activation_dtype is not None and self.activation_dtype not in ACTIVATION_DTYPES:
            raise unknown_name("activation dtype", self.activation_dtype, ACTIVATION_DTYPES)
        if not self.max_drop >= 0:
            raise ConfigError(f"--max-drop must be >= 0 points, got {self.max_drop}")
        if not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"--min-cosine must be between -1 and 1, got {self.min_cosine}")
        if self.parity_samples is not None and self.parity_samples < 1:
            raise ConfigError(f"--parity-samples must be at least 1, got {self.parity_samples}")
        if self.checkpoint not in ("best", "last"):
            raise unknown_name("checkpoint", self.checkpoint, ("best", "last"))
        if self.qat_epochs < 0 or (self.qat_epochs and "tflite" not in self.formats):
            raise ConfigError(f"--qat-epochs must be >= 0 and needs --formats tflite, got {self.qat_epochs}")
        if not self.qat_lr > 0 or self.qat_batch < 2:
            raise ConfigError(f"--qat-lr must be > 0 and --qat-batch >= 2, got {self.qat_lr} and {self.qat_batch}")
        if self.diagnose_samples < 1:
            raise ConfigError(f"--diagnose-samples must be at least 1, got {self.diagnose_samples}")
        if self.latency_runs < 1:
            raise ConfigError(f"--latency-runs must be at least 1, got {self.latency_runs}")


@dataclass
class ExportResult:
    out_dir: Path
    report: ExportReport
    artefacts: dict[str, Path] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        return self.report.verdict

    @property
    def exit_code(self) -> ExitCode:
        return self.report.exit_code

    @property
    def failures(self) -> list[Failure]:
        return self.report.failures


def _commit(staging: Path, out: Path, names: list[str]) -> dict[str, Path]:
    """Move the finished artefacts into `out`; drop artefacts of an earlier export that this one did
    not make, so the directory never mixes two exports."""
    placed = {}
    for name in ARTEFACTS:
        if name not in names and (out / name).exists():
            (out / name).unlink()
    for name in names:
        os.replace(staging / name, out / name)
        placed[name] = out / name
    return placed


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_checkpoint(source: str | Path, target: str | Profile, out: str | Path,
                      options: ExportOptions | None = None, *, command: str = "", log=None) -> ExportResult:
    """Run the whole export for the checkpoint or run directory `source` against `target` (a built-in
    profile name or a Profile) into `out`. Raises PeaError subclasses for bad input and failed steps;
    returns the result (verdict, exit code, report dict) once every artefact was built and checked."""
    options = options or ExportOptions()
    options.validate()
    say = log or (lambda msg: None)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[name] = round(time.perf_counter() - t0, 3)
        return value

    profile = target if isinstance(target, Profile) else load_profile(target)
    settings = ExportSettings.from_profile(profile)
    trained = load_trained(source, options.checkpoint, options.model_file)
    alphas = require_deployable(trained)
    if "tflite" in options.formats:
        require("litert_torch", "the int8 TFLite export (--formats tflite)", "tflite")
    if "pte" in options.formats:
        require("executorch", "the ExecuTorch export (--formats pte)", "executorch")
    vela_config = settings.vela_accelerator if "tflite" in options.formats else None
    if vela_config:
        require("ethosu", f"target {profile.name} (Vela compilation for {vela_config})", "vela")
        check_vela_config(options.vela_system_config, options.vela_memory_mode)
    tflm = "tflite" in options.formats and "tflite-micro" in settings.parity_runtimes
    if tflm:
        require("tflite_micro", f"target {profile.name} (parity in TFLite Micro, the device's runtime)", "tflm")
    opset = options.opset or settings.opset
    act_dtype = options.activation_dtype or settings.activation_dtype
    onnx_method = options.calib_method or "minmax"
    tflite_method = options.calib_method or "histogram"
    # Every input is checked before the first progress line, so bad input reads as one line.
    splits = timed("load_data_s", load_splits, trained)
    val = validation_inputs(trained, splits, options.parity_samples, options.seed)
    calib, calib_source = calibration_inputs(trained, options.calib_samples, splits=splits,
                                             data_dir=options.calib_dir, seed=options.seed)
    out = Path(out)
    staging = make_staging(out)
    try:
        found = f"{len(alphas)} ensemble(s), all alpha = 1" if alphas else "no ensembles (ReLU baseline)"
        say(f"checkpoint {trained.checkpoint} (epoch {trained.epoch}): {found}")
        stripped, strip_diff = timed("strip_s", strip_and_compare, trained.model, val.images)
        say(f"stripped to ReLU-only: max |stripped - trained| = {strip_diff:g} on {len(val.images)} images")
        made: list[str] = []
        example = val.images[:1].contiguous()
        if "onnx" in options.formats:
            timed("onnx_fp32_s", export_onnx, stripped, example, staging / FP32_ONNX, opset)
            timed("onnx_int8_s", quantize_onnx, staging / FP32_ONNX, staging / INT8_ONNX, calib,
                  method=onnx_method, activation_dtype=act_dtype)
            made += [FP32_ONNX, INT8_ONNX]
            say(f"ONNX: {FP32_ONNX}, {INT8_ONNX} (opset {opset}, {act_dtype} activations)")
        quantized = None
        if "tflite" in options.formats:
            from .tflite_export import write_tflite

            quantized = timed("tflite_int8_s", _tflite_graph, stripped, calib, tflite_method, options, trained,
                              splits, say)
            timed("tflite_write_s", write_tflite, quantized, staging / INT8_TFLITE)
            made.append(INT8_TFLITE)
            how = f"quantization-aware, {options.qat_epochs} epoch(s)" if options.qat_epochs else "post-training"
            say(f"TFLite: {INT8_TFLITE} (full integer, NHWC input, {how})")
        if "pte" in options.formats:
            from .executorch_pte import export_pte_int8

            timed("pte_int8_s", export_pte_int8, stripped, calib, staging / INT8_PTE)
            made.append(INT8_PTE)
            say(f"ExecuTorch: {INT8_PTE} (XNNPACK delegate, int8, float NCHW input)")

        entries, timed_runners = _parity_runners(stripped, staging, made, tflm)
        t0 = time.perf_counter()
        rows = run_parity(entries, val, trained.task, trained.num_classes,
                          int(trained.dataset.get("ignore_index") or IGNORE_INDEX))
        timings["parity_s"] = round(time.perf_counter() - t0, 3)
        repeated = {r.artefact for r in rows if sum(o.artefact == r.artefact for o in rows) > 1}
        say(f"parity ({METRIC_LABELS[rows[0].metric]}): " + ", ".join(
            f"{r.artefact}{f' ({r.runtime})' if r.artefact in repeated else ''} {r.score:.2f}%" for r in rows))
        host = _host_section(rows)
        for note in host["notes"]:
            say(f"note: {note}")

        t0 = time.perf_counter()
        layer_errors = _layer_errors(made, staging, quantized, val.images[:options.diagnose_samples].numpy())
        timings["layer_errors_s"] = round(time.perf_counter() - t0, 3)

        t0 = time.perf_counter()
        checks, checked_against = {}, {}
        for name in made:
            checked_against[name] = applied = _check_profile(name, profile)
            checks[name] = verify_model(staging / name, applied)
        vela = None
        if vela_config and INT8_TFLITE in made:
            from .vela import compile_for_ethos_u

            vela = compile_for_ethos_u(staging / INT8_TFLITE, vela_config,
                                       system_config=options.vela_system_config or settings.vela_system_config,
                                       memory_mode=options.vela_memory_mode or settings.vela_memory_mode)
            say(f"Vela {vela_config}: {vela.npu_operators} NPU / {vela.cpu_operators} CPU operator(s)")
        timings["verify_s"] = round(time.perf_counter() - t0, 3)

        x1 = example.numpy()
        latency = {name: latency_ms(r, x1, runs=options.latency_runs) for name, r in timed_runners.items()}
        tflm_runner = next((e.runner for e in entries if isinstance(e.runner, TFLMRunner)), None)
        tflm_report = ({"arena_bytes": tflm_runner.arena_bytes(), "version": package_version("tflite-micro")}
                       if tflm_runner is not None else None)
        if tflm_report:
            say(f"TFLite Micro: tensor arena {tflm_report['arena_bytes']} bytes")

        # a quantization-aware TFLite was retrained: its outputs moved from torch's on purpose, so it
        # answers to the top-1 gate, and its per-layer report shows its fidelity to its own graph
        retrained = {INT8_TFLITE} if options.qat_epochs else set()
        failures = _failures(rows, checks, vela, options.max_drop, options.min_cosine, retrained)
        timings["total_s"] = round(time.perf_counter() - t_start, 3)
        artefacts = {name: {"file": name, "bytes": (staging / name).stat().st_size,
                            "sha256": _sha256(staging / name), "runtime": timed_runners[name].kind,
                            "latency_batch1_1thread": latency[name],
                            **({"tflite_micro": tflm_report} if tflm_report and name == INT8_TFLITE else {}),
                            "verify": {**model_to_dict(checks[name]), "path": name,
                                       "profile": checked_against[name].name},
                            **({"layer_errors": [e.to_dict() for e in ranked(layer_errors[name])]}
                               if name in layer_errors else {})}
                     for name in made}
        report = ExportReport(
            command=command, created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), failures=failures,
            checkpoint={"path": str(trained.checkpoint), "sha256": _sha256(trained.checkpoint),
                        "epoch": trained.epoch, "global_step": trained.global_step,
                        "recipe": trained.recipe.to_dict(), "task": trained.task,
                        "classes": trained.dataset.get("classes")},
            alpha={"ensembles": len(alphas), "all_one": True, "values": alphas},
            strip={"max_abs_diff": strip_diff, "samples": len(val.images)},
            target=profile.to_dict(),
            settings={"formats": list(options.formats), "opset": opset, "activation_dtype": act_dtype,
                      "calibration": {"source": calib_source, "samples": len(calib),
                                      "onnx_method": onnx_method, "tflite_observer": tflite_method,
                                      **({"pte_quantizer": PTE_QUANTIZER} if INT8_PTE in made else {}),
                                      "tflite_qat": ({"epochs": options.qat_epochs, "lr": options.qat_lr,
                                                      "batch": options.qat_batch} if options.qat_epochs else None)},
                      "validation": {"source": val.source, "samples": len(val.images)},
                      "max_drop": options.max_drop, "min_cosine": options.min_cosine, "input_shape_nchw": list(trained.input_shape)},
            parity=rows, torch_latency_batch1_1thread=latency["torch fp32"], artefacts=artefacts,
            vela=vela.to_dict() if vela else None, versions=versions(), timings_s=timings, host=host)
        from .report import write_reports

        write_reports(staging, report)
        placed = _commit(staging, out, made + list(REPORTS))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out, report, {k: v for k, v in placed.items() if k in ARTEFACTS})


def _check_profile(name: str, profile: Profile) -> Profile:
    """The rules an artefact answers to. The fp32 ONNX is the reference artefact, not a deployable
    one: every rule of the target except int8. The .pte runs on a CPU through XNNPACK, not on the
    target's accelerator: the xnnpack profile, held to the target's activations."""
    if name == FP32_ONNX:
        return dataclasses.replace(profile, int8=False)
    if name == INT8_PTE and not profile.pte.ops:
        return dataclasses.replace(load_profile(PTE_PROFILE), activations=profile.activations)
    return profile


def _parity_runners(stripped, staging: Path, made: list[str], tflm: bool) -> tuple[list[ParityEntry], dict]:
    """(the parity rows' runners, the runner each artefact is timed with). Gates use the host-
    independent int8 semantics (runtimes.py); onnxruntime's fused int8 kernels of this CPU get a row
    that never gates, and time the file, as a host deployment runs it."""
    entries = [ParityEntry("torch fp32", TorchRunner(stripped))]
    timed = {"torch fp32": entries[0].runner}
    for name in made:
        if name == FP32_ONNX:
            timed[name] = OnnxRunner(staging / name, semantics="fused")
            entries.append(ParityEntry(name, timed[name]))
        elif name == INT8_ONNX:
            timed[name] = OnnxRunner(staging / name, semantics="fused")
            entries += [ParityEntry(name, OnnxRunner(staging / name, semantics="reference")),
                        ParityEntry(name, timed[name], gate=False)]
        elif name == INT8_PTE:
            from .executorch_pte import ExecuTorchRunner

            timed[name] = ExecuTorchRunner(staging / name)
            entries.append(ParityEntry(name, timed[name]))
        else:
            timed[name] = TFLiteRunner(staging / name, kernels="xnnpack")
            entries.append(ParityEntry(name, TFLiteRunner(staging / name, kernels="reference")))
            if tflm:
                entries.append(ParityEntry(name, TFLMRunner(staging / name)))
    return entries, timed


def _host_section(rows: list[ParityRow]) -> dict:
    """This build machine's int8 ISA, and a plain note where its fused onnxruntime kernels compute
    other numbers than the artefact's reference semantics."""
    isa = int8_isa()
    notes = []
    for host_row in (r for r in rows if not r.gate):
        ref = next(r for r in rows if r.gate and r.artefact == host_row.artefact)
        # float reassociation alone moves the cosine by ~1e-6; 1e-3 is a different computation
        if abs(host_row.cosine - ref.cosine) > 1e-3 or host_row.agreement != ref.agreement:
            why = (f"onnxruntime's x86 int8 kernels saturate on this CPU ({isa}: u8*s8 pairs summed in int16)"
                   if isa.saturates else f"onnxruntime's fused int8 kernels differ on this CPU ({isa})")
            notes.append(f"{why}: {host_row.artefact} measures output cosine {host_row.cosine:.4f}, "
                         f"agreement {host_row.agreement:.2f} % here, against {ref.cosine:.4f}, {ref.agreement:.2f} % "
                         "in the QDQ reference semantics the gates use (what an NPU computes); for x86 "
                         "deployment use a CPU with VNNI (AVX-512 VNNI or AVX-VNNI)")
    return {"int8_isa": isa.name, "onnxruntime_int8_may_saturate": isa.saturates, "notes": notes}


def _tflite_graph(stripped, calib, method: str, options: ExportOptions, trained, splits, say):
    """The PT2E graph the TFLite file is written from: post-training, or quantization-aware
    fine-tuned on the run's training split when --qat-epochs is set."""
    from .tflite_export import pt2e_quantize

    if not options.qat_epochs:
        return pt2e_quantize(stripped, calib, method)
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


def _layer_errors(made: list[str], staging: Path, quantized, images) -> dict:
    """Per-tensor int8 error of every int8 artefact (layer_error), on `images`."""
    errors = {}
    if INT8_ONNX in made:
        from .onnx_layer_error import onnx_layer_errors

        errors[INT8_ONNX] = onnx_layer_errors(staging / FP32_ONNX, staging / INT8_ONNX, images)
    if INT8_TFLITE in made:
        from .tflite_layer_error import tflite_layer_errors

        errors[INT8_TFLITE] = tflite_layer_errors(quantized, staging / INT8_TFLITE, images)
    return errors


def _failures(rows: list[ParityRow], checks: dict, vela, max_drop: float, min_cosine: float,
              retrained: set[str]) -> list[Failure]:
    failures = []
    for r in rows[1:]:
        if not r.gate:
            continue
        if r.drop > max_drop:
            failures.append(Failure(FailureKind.PARITY, f"{r.artefact} ({r.runtime}) {METRIC_LABELS[r.metric]} {r.score:.2f}% is {r.drop:.2f} points "
                            f"below torch fp32 ({rows[0].score:.2f}%), more than --max-drop {max_drop:g}"))
        if r.cosine is not None and r.cosine < min_cosine and r.artefact not in retrained:
            failures.append(Failure(FailureKind.PARITY, f"{r.artefact} ({r.runtime}) output cosine to torch fp32 is {r.cosine:.4f} "
                                    f"(SQNR {r.sqnr_db:.1f} dB), below --min-cosine {min_cosine:g}"))
    for name, check in checks.items():
        if not check.passed:
            codes = sorted({v.reason_code for v in check.violations})
            failures.append(Failure(FailureKind.VERIFY, f"{name} has {len(check.violations)} violation(s) "
                                    f"of target rules ({', '.join(codes)})"))
    if vela is not None and not vela.all_on_npu:
        failures.append(Failure(FailureKind.VERIFY, f"Vela places {vela.cpu_operators} operator(s) on the CPU "
                                f"for {vela.accelerator}: {'; '.join(vela.cpu_fallback[:5])}"))
    return failures
