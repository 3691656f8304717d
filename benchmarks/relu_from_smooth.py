"""Turning a trained smooth network into a ReLU network: every method at equal fine-tuning budgets.

For each net: train the smooth model once (pea-train --upper-limit), then, for each budget, run
pea-compare from those weights: the smooth model fine-tuned for the same steps (upper limit), the
hard swap (plain, + BatchNorm re-estimation, + distillation) and weighted PEA (the same three),
over seeds. Prints one table per net: mean ± std of the score at the end of the budget, the score
before any step (hard swap, and with BN re-estimation), and pea-compare's verdict per budget.
Fashion-MNIST (Debian dataset-fashion-mnist) for the classifiers; the built-in shapes-det set for the
SiLU detector (`examples/yolo_silu.py`, scored in mAP@0.5:0.95). Resumable: run it again to continue.

    python benchmarks/relu_from_smooth.py --out runs/relu-from-smooth [--seeds 5] [--nets example,resnet18,detector]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pea_deploy.compare import build_table, plan_settings, run_comparison
from pea_deploy.compare.table import recommendation
from pea_deploy.metrics import METRIC_LABELS
from pea_deploy.train import load_recipe, train

ROOT = Path(__file__).resolve().parents[1]
BASE = "fashion-mnist-compare-small"   # batch 128, SGD + Nesterov, cosine, label smoothing 0.1, crop + flip
NETS = {
    # the shipped user-style file (Hardswish, SiLU, GELU, Hardsigmoid gates), its own activations
    "example": {"model.file": f"{ROOT / 'examples' / 'mobilenet_v3_style.py'}:build", "model.args": {"width": 0.5},
                "act": "keep", "target": "relu6"},
    # a built-in net started from its own GELU upper-limit run
    "resnet18": {"model.name": "resnet18", "model.width": 0.125, "model.stem": "small", "act": "gelu",
                 "target": "relu"},
    # a SiLU detector (YOLOv8's activation) on shapes-det: AdamW 3e-3, batch 16
    "detector": {"model.file": f"{ROOT / 'examples' / 'yolo_silu.py'}:build", "act": "keep", "target": "relu",
                 "base": "shapes-det-yolo-pea-weighted-silu",
                 "budgets": [("31 steps", 500, 1), ("62 steps", 1000, 1), ("125 steps (1 epoch)", 2000, 1)],
                 "pretrain": {"train.epochs": 4}, "finetune": {"optim.lr": 1e-3}},
}
# (name, training images, epochs): steps = images // 128 * epochs
BUDGETS = [("40 steps", 5120, 1), ("78 steps (1 epoch of 10k)", 10000, 1), ("234 steps (3 epochs of 10k)", 10000, 3)]
PRETRAIN = {"data.train_subset": 20000, "train.epochs": 4, "optim.lr": 0.1, "optim.warmup_epochs": 1.0}
FINETUNE = {"optim.lr": 0.05, "optim.warmup_epochs": 0.0, "pea.initial_epochs": 0.0,
            "pea.bn_recalibration": 0}  # each method says whether it re-estimates (the bn extras: 30 batches)


def recipe_for(net: dict, **more):
    o = {k: v for k, v in net.items() if "." in k}
    o |= {"pea.act": net["act"], "pea.target": net["target"], **more}
    return load_recipe(net.get("base", BASE)).with_overrides(o)


def smooth_model(name: str, net: dict, out: Path, log) -> Path:
    run = out / name / "smooth"
    if not (run / "summary.json").exists():
        log(f"{name}: training the smooth model (upper limit)")
        train(recipe_for(net, **net.get("pretrain", PRETRAIN), **{"pea.mode": "act"}), run, progress=False,
              log=lambda m: None)
    return run


def budget_table(name: str, net: dict, smooth: Path, out: Path, seeds: int, log) -> list[dict]:
    rows = []
    for label, images, epochs in net.get("budgets", BUDGETS):
        recipe = recipe_for(net, **{**FINETUNE, **net.get("finetune", {})},
                            **{"data.train_subset": images, "train.epochs": epochs,
                                               "pea.transition_end": round(0.7 * epochs, 3),
                                               "train.init_from": str(smooth)})
        settings = plan_settings(recipe, [net["act"]], ["weighted"], None, ["plain", "bn", "bn+kd"])
        t0 = time.perf_counter()
        results = run_comparison(recipe, out / name / f"budget-{images}x{epochs}", settings, seeds,
                                 log=lambda m: None)
        for r in results:  # at equal budgets, what each method has at the end of it
            r.score = r.final_score
        table = build_table(results)
        summaries = {r.setting.slug: json.loads((r.run_dir / "summary.json").read_text()) for r in results if r.seed == 0}
        starts = {slug: s.get(f"start_{s.get('metric', 'val_top1')}") for slug, s in summaries.items()}
        rows.append({"budget": label, "table": table, "starts": starts, "verdict": recommendation(table)})
        log(f"{name}, {label}: {len(results)} runs in {time.perf_counter() - t0:.0f} s")
    return rows


def markdown(name: str, smooth: Path, rows: list[dict]) -> str:
    s = json.loads((smooth / "summary.json").read_text())
    metric = s.get("metric", "val_top1")
    lines = [f"### {name}: smooth model {s[f'final_{metric}']:.2f} % {METRIC_LABELS[metric.removeprefix('val_')]} "
             f"(upper limit, {s['epochs']} epochs, {s['wall_time_s']:.0f} s)", ""]
    lines.append("| method | " + " | ".join(r["budget"] for r in rows) + " |")
    lines.append("|---|" + "---:|" * len(rows))
    for i, first in enumerate(rows[0]["table"].rows):  # the same plan per budget, in the same order
        label = first.label.replace(" T_end=0.7", " (alpha 0 -> 1 over 70 % of the budget)")
        cells = [f"{r['table'].rows[i].mean:.2f} ± {r['table'].rows[i].std:.2f}" for r in rows]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    start = rows[0]["starts"]
    hard = [v for k, v in start.items() if k == "hard"]
    hard_bn = [v for k, v in start.items() if k == "hard-bn"]
    if hard and hard_bn:
        lines += ["", f"Before any step (seed 0): hard swap {hard[0]:.2f} %, hard swap + BN re-estimation "
                      f"{hard_bn[0]:.2f} %."]
    lines += [""] + [f"- {r['budget']}: {r['verdict']}" for r in rows] + [""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/relu-from-smooth")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--nets", default=",".join(NETS))
    args = ap.parse_args()
    out = Path(args.out)
    log = lambda m: print(m, flush=True)  # noqa: E731
    report = []
    for name in args.nets.split(","):
        smooth = smooth_model(name, NETS[name], out, log)
        report.append(markdown(name, smooth, budget_table(name, NETS[name], smooth, out, args.seeds, log)))
    text = "\n".join(report)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
