"""report.json (the machine's record) and report.md (the person's summary) of one export.

`ExportReport` is the typed record; `to_dict` writes report.json's schema (version 3) and `from_dict`
reads versions 1 to 3, so every reader (report.md, benchmarks, a user's CI) goes through one class.

Version 3 added: `gate` on each parity row (false for the build machine's own onnxruntime int8
kernels, which are reported and never gate), `host` (this CPU's int8 ISA and notes), and
`artefacts[*].tflite_micro` (TFLite Micro's tensor arena bytes).

Version 4 added: the export of any module (export_model): `checkpoint.module` where no checkpoint
exists, parity rows whose `score`, `agreement` and `drop` are null without a metric, and `metric`
naming a user metric; per-output fidelity `parity[*].outputs` for a model with several outputs;
`settings.outputs` (names and ranks), `settings.tflite_io_layout` and
`artefacts["model.int8.tflite"].io_layout` (the file's input and output layouts). Rows may carry
`also`, the scores a metric reports beside `score`, each `{score, drop}` and gated like it
(detection: `also.map50`, mAP@0.5 beside mAP@0.5:0.95); optional, so still version 4.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from ..atomic import write_text
from ..metrics import METRIC_LABELS
from ..outcomes import ExitCode, Verdict
from .layer_error import TOP, TensorError, markdown_table
from .parity import ParityRow

SCHEMA_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)


class FailureKind(str, Enum):
    PARITY = "parity"   # an artefact lost more than --max-drop points
    VERIFY = "verify"   # an artefact breaks the target's rules, or Vela left an operator on the CPU

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARITY if self is FailureKind.PARITY else ExitCode.FAILED


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str

    def __str__(self) -> str:  # report.json keeps failures as "kind: message" strings
        return f"{self.kind.value}: {self.message}"

    @classmethod
    def parse(cls, text: str) -> "Failure":
        kind, _, message = text.partition(": ")
        return cls(FailureKind(kind), message)


def exit_code_of(failures: list[Failure]) -> ExitCode:
    """A rule violation outranks a parity loss (it is the harder stop for deployment)."""
    codes = {f.kind.exit_code for f in failures}
    for code in (ExitCode.FAILED, ExitCode.PARITY):
        if code in codes:
            return code
    return ExitCode.OK


@dataclass
class ExportReport:
    command: str
    created_utc: str
    failures: list[Failure]
    checkpoint: dict                 # path, sha256, epoch, global_step, recipe, task, classes
    alpha: dict                      # ensembles, all_one, values
    strip: dict                      # max_abs_diff, samples
    target: dict                     # the profile, as Profile.to_dict()
    settings: dict                   # formats, opset, activation_dtype, calibration, validation, ...
    parity: list[ParityRow]          # the torch fp32 reference first
    torch_latency_batch1_1thread: dict
    artefacts: dict[str, dict]       # file name -> bytes, sha256, runtime, latency, verify
    vela: dict | None
    versions: dict
    timings_s: dict = field(default_factory=dict)
    host: dict | None = None         # int8_isa, onnxruntime_int8_may_saturate, notes (schema 3)
    tool: str = "pea-export"
    schema_version: int = SCHEMA_VERSION

    @property
    def verdict(self) -> Verdict:
        return Verdict.FAILED if self.failures else Verdict.PASSED

    @property
    def exit_code(self) -> ExitCode:
        return exit_code_of(self.failures)

    @property
    def worst_cosine(self) -> tuple[str, float] | None:
        """(artefact, its mean output cosine to torch) of the artefact furthest from torch."""
        rows = [(r.artefact, r.cosine) for r in self.parity[1:] if r.cosine is not None]
        return min(rows, key=lambda r: r[1]) if rows else None

    def summary_line(self) -> str:
        """verdict, exit code and worst cosine: what a repr shows instead of every field."""
        worst = self.worst_cosine
        cosine = f"{worst[1]:.4f} ({worst[0]})" if worst else "n/a"
        return (f"verdict={self.verdict.value}, exit_code={int(self.exit_code)}, worst_cosine={cosine}, "
                f"failures={len(self.failures)}")

    def __repr__(self) -> str:
        return (f"ExportReport(target={self.target.get('name')!r}, {self.summary_line()}, "
                f"artefacts={len(self.artefacts)})")

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION, "tool": self.tool, "command": self.command,
            "created_utc": self.created_utc, "verdict": self.verdict.value, "exit_code": int(self.exit_code),
            "failures": [str(f) for f in self.failures], "checkpoint": self.checkpoint, "alpha": self.alpha,
            "strip": self.strip, "target": self.target, "settings": self.settings,
            "parity": [r.to_dict() for r in self.parity],
            "torch_latency_batch1_1thread": self.torch_latency_batch1_1thread, "artefacts": self.artefacts,
            "vela": self.vela, "versions": self.versions, "timings_s": self.timings_s, "host": self.host,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ExportReport":
        """Read report.json of schema 1 (top-1 only), 2 or 3."""
        version = d.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"report schema_version {version!r}; this pea-deploy reads "
                             f"{', '.join(map(str, READABLE_VERSIONS))}")
        return cls(d.get("command", ""), d.get("created_utc", ""), [Failure.parse(f) for f in d["failures"]],
                   d["checkpoint"], d["alpha"], d["strip"], d["target"], d["settings"],
                   [ParityRow.from_dict(r) for r in d["parity"]], d["torch_latency_batch1_1thread"],
                   d["artefacts"], d.get("vela"), d.get("versions", {}), d.get("timings_s", {}),
                   d.get("host"), d.get("tool", "pea-export"), version)


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def _qat(qat: dict | None) -> str:
    return f", then quantization-aware fine-tuning {qat['epochs']} epoch(s) at lr {qat['lr']:g}" if qat else ""


def layer_error_section(artefacts: dict) -> list[str]:
    """The worst-first per-layer int8 error table of each int8 artefact in report.json's artefacts."""
    lines = []
    for name, a in artefacts.items():
        if a.get("layer_errors"):
            lines += ["", f"## Per-layer int8 error: `{name}`", "",
                      "Median per-channel SQNR; local: this tensor's own scale alone; accumulated: the runtime's "
                      f"tensor after every layer before. Worst {min(TOP, len(a['layer_errors']))} of "
                      f"{len(a['layer_errors'])} quantized tensors:", ""]
            lines += markdown_table([TensorError(**e) for e in a["layer_errors"]])
    return lines


def _ensembles(n: int) -> str:
    return f"{n} ensemble(s), all exactly 1" if n else "no ensembles (a ReLU network)"


def _drop_gate(row: dict, max_drop: float) -> str:
    metrics = [row["metric"]] + list(row.get("also") or {})
    if row["metric"] in METRIC_LABELS:
        named = " or its ".join(METRIC_LABELS.get(m, f"`{m}`") for m in metrics)
        return f"its {named} is more than {max_drop:g} points below torch's, or "
    if row["metric"] != "none":
        named = " or its ".join(f"`{m}`" for m in metrics)
        return f"its {named} is more than {max_drop:g} below torch's, or "
    return ""


def to_markdown(report: ExportReport) -> str:
    report = report.to_dict()
    s = report["settings"]
    ck = report["checkpoint"]
    lines = [
        f"# pea-export: {report['verdict']} for target `{report['target']['name']}`", "",
        (f"- checkpoint: `{ck['path']}` (epoch {ck['epoch']}, recipe `{ck['recipe']['name']}`)" if ck.get("recipe")
         else f"- module: `{ck.get('module')}` (export_model)"),
        f"- alpha: {_ensembles(report['alpha']['ensembles'])}; stripped to ReLU-only, "
        f"max |stripped - trained| = {report['strip']['max_abs_diff']:g} on {report['strip']['samples']} images",
        f"- validation: {s['validation']['source']}, {s['validation']['samples']} images",
        f"- calibration: {s['calibration']['source']} (ONNX: {s['calibration']['onnx_method']}, "
        f"{s['activation_dtype']} activations; TFLite: {s['calibration']['tflite_observer']}"
        f"{_qat(s['calibration'].get('tflite_qat'))}"
        f"{'; ExecuTorch: ' + s['calibration']['pte_quantizer'] if s['calibration'].get('pte_quantizer') else ''})",
        f"- gates: an artefact fails when {_drop_gate(report['parity'][0], s['max_drop'])}its output "
        f"cosine to torch is below {s.get('min_cosine', 0):g}",
        f"- ONNX opset {s['opset']}, input NCHW {s['input_shape_nchw']}",
        "",
    ]
    if report["failures"]:
        lines += ["## Failures", ""] + [f"- {f}" for f in report["failures"]] + [""]
    key = report["parity"][0]["metric"]
    also = list(report["parity"][0].get("also") or {})  # scores beside the first (detection: mAP@0.5)
    metric = f"{METRIC_LABELS[key]} %" if key in METRIC_LABELS else "no metric" if key == "none" else f"`{key}`"
    beside = "".join(f" {METRIC_LABELS[k]} % | drop |" if k in METRIC_LABELS else f" `{k}` | drop |" for k in also)
    unit = "pixels" if key == "miou" else "images"
    lines += ["## Parity", "", f"| artefact | runtime | {metric} | drop |{beside} agreement with torch "
              f"(% of {unit}) | output cosine to torch | output SQNR dB | max abs output diff |",
              "|---|---|---:|---:|" + "---:|---:|" * len(also) + "---:|---:|---:|---:|"]
    figure = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    style = lambda m: ".2f" if m in METRIC_LABELS else ".4g"  # noqa: E731
    for r in report["parity"]:
        runtime = r["runtime"] if r.get("gate", True) else f"{r['runtime']}, not gated"
        beside_r = r.get("also") or {}
        scores = "".join(f" {figure(beside_r[k]['score'], style(k))} | {figure(beside_r[k]['drop'], style(k))} |"
                         if k in beside_r else " | |" for k in also)
        lines.append(f"| {r['artefact']} | {runtime} | {figure(r['score'], style(key))} | "
                     f"{figure(r['drop'], style(key))} |{scores} {figure(r['agreement'], '.2f')} | "
                     f"{figure(r.get('cosine'), '.4f')} | {figure(r.get('sqnr_db'), '.1f')} | {r['max_abs_diff']:.4g} |")
    if any(r.get("outputs") for r in report["parity"]):
        lines += ["", "Per output (a row's cosine and SQNR above are its worst output's):", "",
                  "| artefact | runtime | output | cosine to torch | SQNR dB | max abs diff |", "|---|---|---|---:|---:|---:|"]
        for r in report["parity"][1:]:  # the torch reference matches itself
            for o in r.get("outputs") or []:
                lines.append(f"| {r['artefact']} | {r['runtime']} | `{o['name']}` | {o['cosine']:.4f} | "
                             f"{figure(o.get('sqnr_db'), '.1f')} | {o['max_abs_diff']:.4g} |")
    if any(not r.get("gate", True) for r in report["parity"]):
        lines += ["", "Gates use the int8 semantics of the file, the same on every build machine: "
                  "onnxruntime's QDQ reference (Q/DQ unfused), LiteRT's reference kernels and, for a .pte, "
                  "ExecuTorch's XNNPACK kernels (the same bytes on AVX2 and AVX-512 hosts). The fused "
                  "onnxruntime int8 kernels of this CPU are reported beside them and never gate."]
    host = report.get("host") or {}
    lines += [f"- note: {n}" for n in host.get("notes", [])]
    classes = report["checkpoint"].get("classes")
    if report["parity"][0].get("iou") and classes:
        lines += ["", "Per-class IoU %:", "", "| artefact | " + " | ".join(classes) + " |",
                  "|---|" + "---:|" * len(classes)]
        for r in report["parity"]:
            cells = ["n/a" if v is None else f"{v:.2f}" for v in r["iou"]]
            lines.append(f"| {r['artefact']} | " + " | ".join(cells) + " |")
    lines += layer_error_section(report["artefacts"])
    lines += ["", "## Artefacts", "", "| file | size | latency batch 1, 1 thread (median / p90 ms) | ops check "
              "| sha256 |", "|---|---:|---:|---|---|"]
    t = report["torch_latency_batch1_1thread"]
    lines.append(f"| torch fp32 (reference) | | {t['median_ms']:.3f} / {t['p90_ms']:.3f} | | |")
    for name, a in report["artefacts"].items():
        lat = a["latency_batch1_1thread"]
        lines.append(f"| `{name}` | {_kib(a['bytes'])} | {lat['median_ms']:.3f} / {lat['p90_ms']:.3f} "
                     f"({a['runtime']}) | {a['verify']['verdict']} | `{a['sha256'][:16]}...` |")
    for name, a in report["artefacts"].items():
        if a.get("io_layout"):
            io = a["io_layout"]
            outs = ", ".join(f"`{n}` {lay}" for n, lay in io["outputs"].items())
            lines += ["", f"`{name}` layouts: input {io['input']}; outputs {outs} (compare in the file's layout, or "
                      "let TFLiteRunner return torch's)"]
    lines += ["", "## Operators per artefact", ""]
    for name, a in report["artefacts"].items():
        v = a["verify"]
        scope = (" (reference: all rules but int8)" if name.endswith("fp32.onnx") else
                 f" (against the {v['profile']} profile: it runs on a CPU)" if v.get("profile") not in (None, report["target"]["name"]) else "")
        lines.append(f"- `{name}`{scope}: {v['verdict']}, {v['nodes']} nodes: {v['op_summary']}")
        for viol in v["violations"][:10]:
            lines.append(f"  - {viol['op']} `{viol['node_name']}`: {viol['message']} [{viol['reason_code']}]")
    vela = report.get("vela")
    if vela:
        lines += ["", f"## Vela ({vela['accelerator']}, ethos-u-vela {vela['version']}, system config "
                  f"{vela.get('system_config', 'Internal-Default')}, memory mode {vela.get('memory_mode', 'Internal-Default')})", "",
                  f"- operators: {vela['npu_operators']} on the NPU, {vela['cpu_operators']} on the CPU",
                  f"- estimate: {vela['inference_time_ms']} ms per inference "
                  f"({vela['inferences_per_second']:.0f}/s), {vela['total_cycles']} cycles, "
                  f"{vela['macs']} MACs; SRAM {vela['sram_kib']} KiB, off-chip flash {vela['off_chip_flash_kib']:.1f} KiB"]
        lines += [f"- CPU fallback: {op}" for op in vela["cpu_fallback"]]
    for name, a in report["artefacts"].items():
        if a.get("tflite_micro"):
            m = a["tflite_micro"]
            lines += ["", f"## TFLite Micro (`{name}`, tflite-micro {m.get('version')})", "",
                      f"- tensor arena: {m['arena_bytes']} bytes ({_kib(m['arena_bytes'])}): the SRAM the "
                      "device's interpreter must be given (Vela's SRAM figure above is the NPU's own working set)"]
    tm = report["timings_s"]
    lines += ["", "## Environment", "",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v),
              f"- build machine's int8 ISA: {host['int8_isa']}" if host.get("int8_isa") else "",
              "- wall time: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in tm.items()),
              f"- command: `{report['command']}`" if report["command"] else "", ""]
    return "\n".join(lines)


def write_reports(directory: str | Path, report: ExportReport) -> None:
    directory = Path(directory)
    write_text(directory / "report.json", json.dumps(report.to_dict(), indent=2) + "\n")
    write_text(directory / "report.md", to_markdown(report))
