"""docs/ultralytics.md's table: YOLOv8n (and YOLO11n) in Ultralytics' trainer on a generated
YOLO-format set: SiLU, ReLU from scratch, PEA from scratch, and from the trained SiLU net the hard
swap and PEA; each ReLU net exported for ethos-u55 (raw head, int8 TFLite: its mAP, Vela's split).

    YOLO_OFFLINE=1 python benchmarks/ultralytics_table.py --out /tmp/ultra-table   # the Ultralytics venv

Writes OUT/results.json (a rerun skips the rows it holds); `--table OUT/results.json` prints the
markdown table. CPU, 2 threads: about 45 minutes on 2 shared cores."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ultralytics"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--finetune-epochs", type=int, default=8)
    ap.add_argument("--models", default="yolov8n,yolo11n")
    ap.add_argument("--train-images", type=int, default=384)
    args = ap.parse_args()

    import torch
    from ultralytics import YOLO
    from yolo_set import write_yolo_set

    from pea_deploy.export import ExportOptions
    from pea_deploy.integrations.ultralytics import add_hard_swap_callbacks, add_pea_callbacks
    from pea_deploy.integrations.ultralytics_export import export_ultralytics

    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    data = write_yolo_set(args.out / "set", train=args.train_images, val=128, size=64, seed=1)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    train = {"data": str(data), "imgsz": 64, "batch": 32, "workers": 0, "device": "cpu", "amp": False, "plots": False,
             "verbose": False, "exist_ok": True, "seed": 0, "project": str(args.out / "runs")}

    def run(key, start, epochs, setup=None, export=True):
        if key in results:
            return
        t0 = time.time()
        best = args.out / "runs" / key / "weights" / "best.pt"
        csv = best.parent.parent / "results.csv"
        if not (best.exists() and csv.exists() and len(csv.read_text().splitlines()) > epochs):  # else: trained
            model = YOLO(start)
            if setup:
                setup(model)
            model.train(epochs=epochs, name=key, **train)
        metrics = YOLO(str(best)).val(data=str(data), imgsz=64, batch=32, device="cpu", plots=False, verbose=False)
        row = {"map": 100 * float(metrics.box.map), "map50": 100 * float(metrics.box.map50),
               "train_s": round(time.time() - t0, 1), "epochs": epochs}
        if export:
            r = export_ultralytics(best, "ethos-u55", args.out / "export" / key, data=data, trust_pickle=True,
                                   options=ExportOptions(formats=("tflite",), calib_samples=128, latency_runs=5))
            rep = json.loads((r.out_dir / "report.json").read_text())
            row["export_exit"] = int(r.exit_code)
            row["parity"] = [{k: p.get(k) for k in ("artefact", "runtime", "score", "cosine")}
                             for p in rep["parity"]["rows"]] if isinstance(rep.get("parity"), dict) else rep.get("parity")
            row["vela"] = rep.get("vela")
        results[key] = row
        results_file.write_text(json.dumps(results, indent=1))
        print("RESULT", key, json.dumps(row)[:600], flush=True)

    E, F = args.epochs, args.finetune_epochs
    for name in args.models.split(","):
        yaml = f"{name}.yaml"
        run(f"{name}-silu", yaml, E, export=False)
        run(f"{name}-pea", yaml, E, lambda m: add_pea_callbacks(m, initial_epochs=0, transition_end=round(0.6 * E)))
        if name != "yolov8n":
            continue  # YOLO11n: does its PEA net map to the NPU (C2PSA)? the rest is YOLOv8n's
        run(f"{name}-relu", yaml, E, lambda m: add_hard_swap_callbacks(m, bn_batches=0))
        silu = str(args.out / "runs" / f"{name}-silu" / "weights" / "best.pt")
        run(f"{name}-silu-hardswap", silu, F, lambda m: add_hard_swap_callbacks(m))
        run(f"{name}-silu-pea", silu, F, lambda m: add_pea_callbacks(m, initial_epochs=0, transition_end=F // 2))


ROUTES = {"silu": "SiLU (reference)", "relu": "ReLU from scratch", "pea": "PEA from scratch",
          "silu-hardswap": "hard swap + BN from the SiLU net", "silu-pea": "PEA from the SiLU net"}


def table(results: dict) -> str:
    """The markdown table of results.json."""
    lines = ["| model | route | epochs | mAP@0.5:0.95 | mAP@0.5 | torch mAP (export decode) | int8 TFLite mAP "
             "| Vela NPU / CPU ops | Vela est. ms |", "|---|---|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        name, route = key.split("-", 1)
        rows = {(p["artefact"], p["runtime"]): p["score"] for p in r.get("parity") or []}
        torch_map = next((v for (a, _), v in rows.items() if a == "torch fp32"), None)
        int8 = next((v for (a, rt), v in rows.items() if a == "model.int8.tflite" and "Micro" in rt), None)
        vela = r.get("vela") or {}

        def fmt(v):
            return "-" if v is None else f"{v:.1f}"

        ops = f"{vela['npu_operators']} / {vela['cpu_operators']}" if vela else "-"
        ms = f"{vela['inference_time_ms']:.1f}" if vela.get("inference_time_ms") is not None else "-"
        lines.append(f"| {name} | {ROUTES.get(route, route)} | {r['epochs']} | {fmt(r['map'])} | {fmt(r['map50'])} "
                     f"| {fmt(torch_map)} | {fmt(int8)} | {ops} | {ms} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--table"]:
        print(table(json.loads(Path(sys.argv[2]).read_text())))
    else:
        main()
