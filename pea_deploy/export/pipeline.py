"""The export core: a checked model -> alpha gate -> strip -> ONNX fp32/int8, TFLite int8, ExecuTorch
-> parity on real inputs -> op verification (and Vela for Ethos-U) -> report.json/.md. What it starts
from (a pea-train run, or any module) is sources.py's business; what the user sets, options.py's.

Artefacts are built in a hidden staging directory inside the output directory and moved into place
only after every step has run, so an error leaves no partial artefact behind. A parity or
verification failure still delivers the complete artefacts and reports, for inspection, with a
FAILED verdict and a non-zero exit code.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..metrics import METRIC_LABELS
from ..outcomes import ExitCode, Verdict
from ..pea import require_alpha_one
from ..verify import Profile, load_profile, verify_model
from ..verify.report import model_to_dict
from .host_cpu import int8_isa
from .layer_error import ranked, rename_modules
from .onnx_export import export_onnx
from .onnx_quant import quantize_onnx
from .options import ExportOptions
from .outputs import OutputSpec
from .parity import NO_METRIC, ParityEntry, ParityRow, TaskMetric, run_parity
from .report import ExportReport, Failure, FailureKind
from .runtimes import OnnxRunner, TFLiteRunner, TorchRunner, latency_ms
from .samples import LabelledInputs
from .staging import make_staging
from .target import ExportSettings
from .tflm import TFLMRunner
from .trained import strip_and_compare
from .versions import package_version, versions

FP32_ONNX, INT8_ONNX, INT8_TFLITE, INT8_PTE = "model.fp32.onnx", "model.int8.onnx", "model.int8.tflite", "model.int8.pte"
ARTEFACTS = (FP32_ONNX, INT8_ONNX, INT8_TFLITE, INT8_PTE)
PTE_PROFILE = "xnnpack"  # the .pte runs on a CPU: checked against this unless the target has [pte] rules
PTE_QUANTIZER = "XNNPACKQuantizer, symmetric per-channel, its histogram observers"
REPORTS = ("report.json", "report.md")


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

    def __repr__(self) -> str:  # the report holds every figure of the export: tens of thousands of characters
        return f"ExportResult(out_dir={str(self.out_dir)!r}, {self.report.summary_line()})"


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


def sha256_of(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ExportInputs:
    """The checked inputs of one export (export_checkpoint and export_model build them)."""

    example: torch.Tensor   # batch 1: the artefacts' static input
    calibration: torch.Tensor
    calibration_source: str
    validation: LabelledInputs
    outputs: OutputSpec


def run_export(model: nn.Module, profile: Profile, out, options: ExportOptions, inputs: ExportInputs, metric,
               provenance: dict, subject: str, command: str, log, retrain, t_start: float,
               timings: dict[str, float]) -> ExportResult:
    """The export of a checked model and its checked inputs, every step (sources.py's export_checkpoint
    and export_model call it): `metric` a TaskMetric, a UserMetric or None; `provenance` what the
    report records of the model's origin; `retrain(stripped, calibration, say)` the PT2E graph of a
    quantization-aware TFLite, else None (post-training)."""
    say = log or (lambda msg: None)

    def timed(name, fn, *args, **kwargs):
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[name] = round(time.perf_counter() - t0, 3)
        return value

    settings = ExportSettings.from_profile(profile)
    alphas = require_alpha_one(model)
    vela_config = settings.vela_accelerator if "tflite" in options.formats else None
    tflm = "tflite" in options.formats and "tflite-micro" in settings.parity_runtimes
    opset = options.opset or settings.opset
    act_dtype = options.activation_dtype or settings.activation_dtype
    onnx_method = options.calib_method or "minmax"
    tflite_method = options.calib_method or "histogram"
    val, calib, calib_source = inputs.validation, inputs.calibration, inputs.calibration_source
    out = Path(out)
    fresh = not out.exists()
    staging = make_staging(out)
    placed = None
    try:
        found = f"{len(alphas)} ensemble(s), all alpha = 1" if alphas else "no ensembles (ReLU network)"
        say(f"{subject}: {found}")
        stripped, strip_diff = timed("strip_s", strip_and_compare, model, val.images)
        say(f"stripped to ReLU-only: max |stripped - trained| = {strip_diff:g} on {len(val.images)} images")
        made: list[str] = []
        example = inputs.example
        if "onnx" in options.formats:
            names = None if inputs.outputs.single else [onnx_name(n) for n in inputs.outputs.names]
            timed("onnx_fp32_s", export_onnx, stripped, example, staging / FP32_ONNX, opset, names)
            timed("onnx_int8_s", quantize_onnx, staging / FP32_ONNX, staging / INT8_ONNX, calib,
                  method=onnx_method, activation_dtype=act_dtype)
            made += [FP32_ONNX, INT8_ONNX]
            say(f"ONNX: {FP32_ONNX}, {INT8_ONNX} (opset {opset}, {act_dtype} activations)")
        quantized = None
        if "tflite" in options.formats:
            from .tflite_export import pt2e_quantize, write_tflite

            quantized = (timed("tflite_int8_s", retrain, stripped, calib, say) if retrain else
                         timed("tflite_int8_s", pt2e_quantize, stripped, calib, tflite_method))
            timed("tflite_write_s", write_tflite, quantized, staging / INT8_TFLITE, options.tflite_io_layout)
            made.append(INT8_TFLITE)
            how = f"quantization-aware, {options.qat_epochs} epoch(s)" if options.qat_epochs else "post-training"
            io = _tflite_layout(example, inputs.outputs, options.tflite_io_layout)
            outs = ", ".join(f"{n} {lay}" for n, lay in io["outputs"].items())
            say(f"TFLite: {INT8_TFLITE} (full integer, {how}; input {io['input']}, output {outs})")
        if "pte" in options.formats:
            from .executorch_pte import export_pte_int8

            timed("pte_int8_s", export_pte_int8, stripped, calib, staging / INT8_PTE)
            made.append(INT8_PTE)
            say(f"ExecuTorch: {INT8_PTE} (XNNPACK delegate, int8, float NCHW input)")

        entries, timed_runners = _parity_runners(stripped, staging, made, tflm, options.tflite_io_layout == "nhwc")
        t0 = time.perf_counter()
        if isinstance(metric, TaskMetric):
            rows = run_parity(entries, val, metric.task, metric.num_classes, metric.ignore_index)
        else:
            rows = run_parity(entries, val, None, metric=metric, output_names=inputs.outputs.names)
        timings["parity_s"] = round(time.perf_counter() - t0, 3)
        say(_parity_line(rows))
        host = _host_section(rows)
        for note in host["notes"]:
            say(f"note: {note}")

        t0 = time.perf_counter()
        layer_errors = _layer_errors(made, staging, quantized, val.images[:options.diagnose_samples].numpy(),
                                     options.tflite_io_layout == "nhwc", stripped)
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
                            "sha256": sha256_of(staging / name), "runtime": timed_runners[name].kind,
                            "latency_batch1_1thread": latency[name],
                            **({"tflite_micro": tflm_report} if tflm_report and name == INT8_TFLITE else {}),
                            **({"io_layout": _tflite_layout(example, inputs.outputs, options.tflite_io_layout)}
                               if name == INT8_TFLITE else {}),
                            "verify": {**model_to_dict(checks[name]), "path": name,
                                       "profile": checked_against[name].name},
                            **({"layer_errors": [e.to_dict() for e in ranked(layer_errors[name])]}
                               if name in layer_errors else {})}
                     for name in made}
        report = ExportReport(
            command=command, created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), failures=failures,
            checkpoint=provenance,
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
                      "max_drop": options.max_drop, "min_cosine": options.min_cosine, "input_shape_nchw": list(example.shape),
                      "outputs": [{"name": n, "rank": r} for n, r in zip(inputs.outputs.names, inputs.outputs.ranks)],
                      "tflite_io_layout": options.tflite_io_layout},
            parity=rows, torch_latency_batch1_1thread=latency["torch fp32"], artefacts=artefacts,
            vela=vela.to_dict() if vela else None, versions=versions(), timings_s=timings, host=host)
        from .report import write_reports

        write_reports(staging, report)
        placed = _commit(staging, out, made + list(REPORTS))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if placed is None and fresh:
            shutil.rmtree(out, ignore_errors=True)  # an error leaves no output directory it made
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


def onnx_name(name: str) -> str:
    """An output's name as an ONNX graph output: `scores.0` -> `scores_0`, `1` -> `output_1`."""
    name = re.sub(r"\W", "_", name)
    return name if name[:1].isalpha() else f"output_{name}"


def _tflite_layout(example: torch.Tensor, outputs: OutputSpec, io_layout: str) -> dict:
    """The TFLite file's I/O layouts as report.json records them: NHWC or NCHW for 4-D tensors,
    "as torch" for the others (no layout to choose)."""
    four_d = "NHWC" if io_layout == "nhwc" else "NCHW"
    return {"input": four_d if example.dim() == 4 else "as torch",
            "outputs": {n: four_d if r == 4 else "as torch" for n, r in zip(outputs.names, outputs.ranks)},
            "runner_returns": "torch's layout (TFLiteRunner transposes 4-D outputs back)"}


def _parity_runners(stripped, staging: Path, made: list[str], tflm: bool, nhwc: bool = True
                    ) -> tuple[list[ParityEntry], dict]:
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
            timed[name] = TFLiteRunner(staging / name, kernels="xnnpack", channels_last=nhwc)
            entries.append(ParityEntry(name, TFLiteRunner(staging / name, kernels="reference", channels_last=nhwc)))
            if tflm:
                entries.append(ParityEntry(name, TFLMRunner(staging / name, channels_last=nhwc)))
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
            here, there = (f"{host_row.cosine:.4f}", f"{ref.cosine:.4f}") if host_row.agreement is None else \
                (f"{host_row.cosine:.4f}, agreement {host_row.agreement:.2f} %", f"{ref.cosine:.4f}, {ref.agreement:.2f} %")
            notes.append(f"{why}: {host_row.artefact} measures output cosine {here} here, against {there} "
                         "in the QDQ reference semantics the gates use (what an NPU computes); for x86 "
                         "deployment use a CPU with VNNI (AVX-512 VNNI or AVX-VNNI)")
    return {"int8_isa": isa.name, "onnxruntime_int8_may_saturate": isa.saturates, "notes": notes}


def _metric_label(row: ParityRow) -> str:
    return METRIC_LABELS.get(row.metric, row.metric if row.metric != NO_METRIC else "output cosine to torch")


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _figure(metric: str, score: float) -> str:
    return f"{score:.2f}%" if metric in METRIC_LABELS else f"{score:.4g}"


def _row_figure(row: ParityRow) -> str:
    return f"{row.cosine:.4f}" if row.score is None else _figure(row.metric, row.score)


def _parity_line(rows: list[ParityRow]) -> str:
    """`parity (mAP@0.5:0.95 / mAP@0.5): torch fp32 65.00% / 91.20%, ...`: every score of every row."""
    repeated = {r.artefact for r in rows if sum(o.artefact == r.artefact for o in rows) > 1}
    labels = [_metric_label(rows[0])] + [_label(n) for n in rows[0].also or {}]

    def figures(r: ParityRow) -> str:
        return " / ".join([_row_figure(r)] + [_figure(n, a["score"]) for n, a in (r.also or {}).items()])

    return f"parity ({' / '.join(labels)}): " + ", ".join(
        f"{r.artefact}{f' ({r.runtime})' if r.artefact in repeated else ''} {figures(r)}" for r in rows)


def _layer_errors(made: list[str], staging: Path, quantized, images, channels_last: bool = True,
                  network: nn.Module | None = None) -> dict:
    """Per-tensor int8 error of every int8 artefact (layer_error), on `images`; modules named as
    `network` (the exported one) names them."""
    errors = {}
    if INT8_ONNX in made:
        from .onnx_layer_error import onnx_layer_errors

        errors[INT8_ONNX] = onnx_layer_errors(staging / FP32_ONNX, staging / INT8_ONNX, images, network)
    if INT8_TFLITE in made:
        from .tflite_layer_error import tflite_layer_errors

        errors[INT8_TFLITE] = tflite_layer_errors(quantized, staging / INT8_TFLITE, images, channels_last)
    if network is not None:
        errors = {name: rename_modules(rows, network) for name, rows in errors.items()}
    return errors


def _failures(rows: list[ParityRow], checks: dict, vela, max_drop: float, min_cosine: float,
              retrained: set[str]) -> list[Failure]:
    failures = []
    for r in rows[1:]:
        if not r.gate:
            continue
        # every score the metric reports is held to --max-drop: detection's mAP@0.5 can fall (lost
        # low-confidence boxes) while mAP@0.5:0.95 holds, and the other way round (shifted box edges)
        scores = [(r.metric, r.score, r.drop, rows[0].score)] + [
            (n, a["score"], a["drop"], rows[0].also[n]["score"]) for n, a in (r.also or {}).items()]
        for metric, score, drop, ref in scores:
            if drop is not None and drop > max_drop:
                unit = "points" if metric in METRIC_LABELS else "(the metric's units)"
                failures.append(Failure(FailureKind.PARITY, f"{r.artefact} ({r.runtime}) {_label(metric)} "
                                        f"{_figure(metric, score)} is {drop:.4g} {unit} below torch fp32 "
                                        f"({_figure(metric, ref)}), more than --max-drop {max_drop:g}"))
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
