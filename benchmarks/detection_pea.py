"""From scratch on shapes-det: the built-in detector with ReLU (baseline), SiLU (the upper limit) and
PEA-SiLU (weighted, to alpha 1), each trained the same number of steps in a plain loop, over seeds;
then the PEA network exported for the Ethos-U55 with parity in mAP@0.5.

    python benchmarks/detection_pea.py [--steps 300] [--seeds 3] [--size 64] [--width 0.125] [--export DIR]

Prints a Markdown table of validation mAP@0.5:0.95 and mAP@0.5 (COCO protocol, pea_deploy.detection)
per variant: mean and spread over seeds. Everything is generated here (nothing downloads).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pea_deploy import relufy
from pea_deploy.detection import coco_map, detections
from pea_deploy.detection.loss import detection_loss
from pea_deploy.detection.shapes_det import DET_CLASSES, make_shapes_det
from pea_deploy.nets.yolo import yolo_detector
from pea_deploy.pea import replace_relus_with_act


def train(variant: str, seed: int, args, data) -> tuple[torch.nn.Module, dict, float]:
    x, t, xv, tv = data
    torch.manual_seed(seed)
    net = yolo_detector(len(DET_CLASSES), width=args.width, levels=2)
    strides = list(net.strides)
    pea = None
    if variant == "silu":
        replace_relus_with_act(net, "silu")
    elif variant == "pea-silu":
        pea = relufy(net, act="silu", initial_epochs=0.25 * args.steps, transition_end_epoch=0.75 * args.steps,
                     steps_per_epoch=1)
        net = pea.model
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    net.train()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        i = torch.randint(0, len(x), (16,), generator=g)
        if pea is not None:
            pea.step()
        loss, _ = detection_loss(net(x[i]), [t[j] for j in i.tolist()], strides)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    if pea is not None:
        net = pea.finish()  # alpha 1 for the last quarter of the steps: BatchNorm already fits it
    net.eval()
    with torch.no_grad():
        scores = coco_map(detections(net(xv), strides), tv)
    return net, scores, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--width", type=float, default=0.125)
    ap.add_argument("--export", help="export the first seed's PEA network here (ethos-u55, mAP parity)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    x, t = make_shapes_det(1024, args.size, seed=0)
    xv, tv = make_shapes_det(256, args.size, seed=1)
    data = (x.float() / 255, t, xv.float() / 255, tv)
    results: dict[str, list] = {}
    first_pea = None
    for variant in ("relu", "silu", "pea-silu"):
        for seed in range(args.seeds):
            net, scores, seconds = train(variant, seed, args, data)
            results.setdefault(variant, []).append((scores["map"], scores["map50"], seconds))
            if variant == "pea-silu" and first_pea is None:
                first_pea = net
    print(f"shapes-det {args.size}x{args.size}, detector width {args.width}, {args.steps} steps of batch 16, "
          f"{args.seeds} seeds, 256 validation images\n")
    print("| variant | mAP@0.5:0.95 % | mAP@0.5 % | train s / run |\n|---|---:|---:|---:|")
    for variant, runs in results.items():
        maps, map50s, secs = zip(*runs)
        spread = lambda v: f" ± {statistics.stdev(v):.2f}" if len(v) > 1 else ""  # noqa: E731
        print(f"| {variant} | {statistics.mean(maps):.2f}{spread(maps)} | {statistics.mean(map50s):.2f}"
              f"{spread(map50s)} | {statistics.mean(secs):.0f} |")
    if args.export and first_pea is not None:
        from pea_deploy.export import ExportOptions, export_model

        strides = list(first_pea.strides)
        batches = [(data[2][i:i + 64], tv[i:i + 64]) for i in range(0, len(tv), 64)]

        def map50(outputs, targets):
            return coco_map(detections(outputs, strides), targets)["map50"]

        result = export_model(first_pea, "ethos-u55", args.export, example_inputs=data[2][:1],
                              calibration=data[0][:256], validation=batches, metric=map50,
                              options=ExportOptions(max_drop=2.0))
        print(f"\nexport (ethos-u55, {args.export}): {result.verdict}; Vela {result.report.vela['npu_operators']} NPU / "
              f"{result.report.vela['cpu_operators']} CPU operators\n")
        print("| artefact | runtime | mAP@0.5 % | worst output cosine |\n|---|---|---:|---:|")
        for r in result.report.parity:
            print(f"| {r.artefact} | {r.runtime}{'' if r.gate else ', not gated'} | {r.score:.2f} | {r.cosine:.4f} |")


if __name__ == "__main__":
    main()
