"""report.json (the machine's record) and report.md (the person's summary) of one export."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text
from ..metrics import METRIC_LABELS


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def to_markdown(report: dict) -> str:
    s = report["settings"]
    ck = report["checkpoint"]
    lines = [
        f"# pea-export: {report['verdict']} for target `{report['target']['name']}`", "",
        f"- checkpoint: `{ck['path']}` (epoch {ck['epoch']}, recipe `{ck['recipe']['name']}`)",
        f"- alpha: {report['alpha']['ensembles']} ensemble(s), all exactly 1; stripped to ReLU-only, "
        f"max |stripped - trained| = {report['strip']['max_abs_diff']:g} on {report['strip']['samples']} images",
        f"- validation: {s['validation']['source']}, {s['validation']['samples']} images",
        f"- calibration: {s['calibration']['source']} (ONNX: {s['calibration']['onnx_method']}, "
        f"{s['activation_dtype']} activations; TFLite: {s['calibration']['tflite_observer']})",
        f"- ONNX opset {s['opset']}, input NCHW {s['input_shape_nchw']}, max allowed drop {s['max_drop']:g} points",
        "",
    ]
    if report["failures"]:
        lines += ["## Failures", ""] + [f"- {f}" for f in report["failures"]] + [""]
    metric = METRIC_LABELS[report["parity"][0]["metric"]]
    unit = "pixels" if report["parity"][0]["metric"] == "miou" else "images"
    lines += ["## Parity", "", f"| artefact | runtime | {metric} % | drop (points) | agreement with torch "
              f"(% of {unit}) | max abs logit diff |", "|---|---|---:|---:|---:|---:|"]
    for r in report["parity"]:
        lines.append(f"| {r['artefact']} | {r['runtime']} | {r['score']:.2f} | {r['drop']:.2f} | "
                     f"{r['agreement']:.2f} | {r['max_abs_diff']:.4g} |")
    classes = report["checkpoint"].get("classes")
    if report["parity"][0].get("iou") and classes:
        lines += ["", "Per-class IoU %:", "", "| artefact | " + " | ".join(classes) + " |",
                  "|---|" + "---:|" * len(classes)]
        for r in report["parity"]:
            cells = ["n/a" if v is None else f"{v:.2f}" for v in r["iou"]]
            lines.append(f"| {r['artefact']} | " + " | ".join(cells) + " |")
    lines += ["", "## Artefacts", "", "| file | size | latency batch 1, 1 thread (median / p90 ms) | ops check "
              "| sha256 |", "|---|---:|---:|---|---|"]
    t = report["torch_latency_batch1_1thread"]
    lines.append(f"| torch fp32 (reference) | | {t['median_ms']:.3f} / {t['p90_ms']:.3f} | | |")
    for name, a in report["artefacts"].items():
        lat = a["latency_batch1_1thread"]
        lines.append(f"| `{name}` | {_kib(a['bytes'])} | {lat['median_ms']:.3f} / {lat['p90_ms']:.3f} "
                     f"({a['runtime']}) | {a['verify']['verdict']} | `{a['sha256'][:16]}...` |")
    lines += ["", "## Operators per artefact", ""]
    for name, a in report["artefacts"].items():
        v = a["verify"]
        scope = " (reference: all rules but int8)" if name.endswith("fp32.onnx") else ""
        lines.append(f"- `{name}`{scope}: {v['verdict']}, {v['nodes']} nodes: {v['op_summary']}")
        for viol in v["violations"][:10]:
            lines.append(f"  - {viol['op']} `{viol['node_name']}`: {viol['message']} [{viol['reason_code']}]")
    vela = report.get("vela")
    if vela:
        lines += ["", f"## Vela ({vela['accelerator']}, ethos-u-vela {vela['version']})", "",
                  f"- operators: {vela['npu_operators']} on the NPU, {vela['cpu_operators']} on the CPU",
                  f"- estimate: {vela['inference_time_ms']} ms per inference "
                  f"({vela['inferences_per_second']:.0f}/s), {vela['total_cycles']} cycles, "
                  f"{vela['macs']} MACs; SRAM {vela['sram_kib']} KiB, off-chip flash {vela['off_chip_flash_kib']:.1f} KiB"]
        lines += [f"- CPU fallback: {op}" for op in vela["cpu_fallback"]]
    tm = report["timings_s"]
    lines += ["", "## Environment", "",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v),
              "- wall time: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in tm.items()),
              f"- command: `{report['command']}`" if report["command"] else "", ""]
    return "\n".join(lines)


def write_reports(directory: str | Path, report: dict) -> None:
    directory = Path(directory)
    write_text(directory / "report.json", json.dumps(report, indent=2) + "\n")
    write_text(directory / "report.md", to_markdown(report))
