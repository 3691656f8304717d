"""Print the export table of docs/results.md from pea-export report.json files (numbers are never typed in).

    python benchmarks/export_table.py runs/default/export/ethos-u55/report.json runs/fm/export/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pea_deploy.export.report import ExportReport
from pea_deploy.metrics import METRIC_LABELS
from pea_deploy.registry import NETS


def rows(report: ExportReport) -> list[str]:
    rec = report.checkpoint["recipe"]
    uses_stem = rec["model"]["name"] in NETS and "stem" in NETS.get(rec["model"]["name"]).options
    stem = f" {rec['model']['stem']} stem" if uses_stem and rec["model"].get("stem") else ""
    net = f"{rec['model']['name']} w{rec['model']['width']:g}{stem}"
    torch_row = report.parity[0]
    where = f"{rec['data']['name']} {report.settings['input_shape_nchw'][2]}px, {net} ({METRIC_LABELS.get(torch_row.metric, torch_row.metric)})"
    out = [f"| {where} | torch fp32 | | {torch_row.score:.2f} | | | "
           f"{report.torch_latency_batch1_1thread['median_ms']:.3f} | |"]
    parity = {}
    for r in report.parity:  # each artefact's gated row (its file's own semantics), not this CPU's
        if r.gate:
            parity.setdefault(r.artefact, r)
    for name, a in report.artefacts.items():
        p = parity[name]
        agreement = "" if p.agreement is None else f"{p.agreement:.2f}"
        out.append(f"| | {name} | {a['bytes'] / 1024:.0f} KiB | {p.score:.2f} | {agreement} | "
                   f"{p.cosine:.4f} ({p.sqnr_db:.1f}) | "
                   f"{a['latency_batch1_1thread']['median_ms']:.3f} ({a['runtime']}) | {a['verify']['verdict']} |")
    t = report.timings_s
    vela = report.vela
    extra = (f"; Vela {vela['accelerator']}: {vela['npu_operators']} NPU / {vela['cpu_operators']} CPU ops, "
             f"{vela['inference_time_ms']:.3f} ms estimated" if vela else "")
    out.append(f"| | export wall time {t['total_s']:.1f} s (TFLite {t.get('tflite_int8_s', 0) + t.get('tflite_write_s', 0):.1f} s), "
               f"{torch_row.samples} val images{extra} | | | | | | |")
    return out


def main(paths: list[str]) -> None:
    print("| model (score) | artefact | size | score % | agreement % | worst output's cosine to torch (SQNR dB) "
          "| latency ms (batch 1, 1 thread) | ops check |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for path in paths:
        for line in rows(ExportReport.from_dict(json.loads(Path(path).read_text()))):
            print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
