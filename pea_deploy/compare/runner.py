"""Run a comparison: every (setting, seed) as an ordinary training run, skipping finished ones and
resuming interrupted ones, so a killed comparison continues where it stopped."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_text
from ..errors import ConfigError
from ..metrics import METRIC_LABELS
from ..train.build import load_data
from ..train.loop import Trainer
from ..train.recipe import Recipe
from .plan import Setting


@dataclass
class RunResult:
    setting: Setting
    seed: int
    score: float            # best validation score (top-1 %, or mIoU % for segmentation) over the epochs
                            # in final form: PEA's final phase, as the paper selects; every epoch otherwise
    wall_time_s: float
    run_dir: Path
    reused: bool
    metric: str = "val_top1"
    final_score: float | None = None   # the last epoch's score
    best_epoch: int | None = None
    # the task's other scores at that epoch (detection: {"map50": mAP@0.5 %}), from summary.json
    also: dict[str, float] = field(default_factory=dict)


def _finished_summary(run_dir: Path, epochs: int) -> dict | None:
    path = run_dir / "summary.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    # A summary without best_epoch predates the final-form selection: resuming the finished run
    # (no training left) writes it anew.
    return summary if summary.get("epochs") == epochs and "best_epoch" in summary else None


def _check_plan(out: Path, recipe: Recipe, settings: list[Setting], seeds: int) -> None:
    """The output directory belongs to one comparison: refuse to mix in runs of another recipe."""
    plan = {"recipe": recipe.to_dict(), "settings": [s.slug for s in settings], "seeds": seeds}
    path = out / "comparison.json"
    if path.exists():
        old = json.loads(path.read_text())
        if Recipe.from_dict(old["recipe"]).to_dict() != plan["recipe"]:  # newer fields at their defaults
            raise ConfigError(f"{out} holds a comparison of a different recipe; use another --out")
    write_text(path, json.dumps(plan, indent=2) + "\n")


def run_comparison(recipe: Recipe, out: str | Path, settings: list[Setting], seeds: int = 5, *,
                   log=None, progress: bool = False) -> list[RunResult]:
    """Train each setting over seeds 0..seeds-1 under `out/runs/<setting>/seed<k>`."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    out = Path(out)
    say = log or (lambda msg: None)
    _check_plan(out, recipe, settings, seeds)
    results, total = [], len(settings) * seeds
    data = None  # loaded once: every run of a comparison reads the same data section
    for i, (setting, seed) in enumerate(((s, k) for s in settings for k in range(seeds)), 1):
        run_dir = out / "runs" / setting.slug / f"seed{seed}"
        summary = _finished_summary(run_dir, recipe.train.epochs)
        reused = summary is not None
        if summary is None:
            run_recipe = recipe.with_overrides(setting.overrides(seed))
            resume = (run_dir / "checkpoints" / "last.pt").exists()
            say(f"[{i}/{total}] {setting.label}, seed {seed}: {'resuming' if resume else 'training'}")
            data = data if data is not None else load_data(recipe)
            with Trainer(run_recipe, run_dir, resume=resume, progress=progress, log=lambda m: None,
                         data=data) as trainer:
                summary = trainer.fit()
        metric = summary.get("metric", "val_top1")  # summaries from before segmentation name no metric
        # No epoch wholly in the final phase (the transition ends inside the last epoch, as in short
        # fine-tuning budgets): the last epoch, evaluated in ReLU form, is the only candidate.
        best = summary[f"best_{metric}"]
        final = float(summary[f"final_{metric}"])
        when = "final" if best is None else "best"
        also = {m: float(summary[f"{when}_val_{m}"]) for m in METRIC_LABELS
                if f"val_{m}" != metric and summary.get(f"{when}_val_{m}") is not None}
        results.append(RunResult(setting, seed, final if best is None else float(best), float(summary["wall_time_s"]),
                                 run_dir, reused, metric, final, summary["best_epoch"] or summary["epochs"], also))
        say(f"[{i}/{total}] {setting.label}, seed {seed}: best {METRIC_LABELS[metric.removeprefix('val_')]} "
            f"{results[-1].score:.2f}% (epoch {results[-1].best_epoch})"
            + (" (finished earlier)" if reused else ""))
    return results
