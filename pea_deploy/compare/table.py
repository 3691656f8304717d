"""The paper-style table from a comparison's runs: mean +- std top-1 (mIoU for segmentation, mAP@0.5:0.95
for detection, with mAP@0.5 at the same epoch beside it) per setting, the best PEA setting, and how much
of the baseline -> upper-limit gap it closes. Written as CSV, Markdown, PNG."""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_path, write_text
from ..metrics import METRIC_LABELS
from .runner import RunResult


@dataclass
class Row:
    label: str
    slug: str
    mode: str
    act: str | None
    runs: list[float]
    times: list[float]
    also: dict[str, list[float]] = field(default_factory=dict)  # other scores per run (detection: map50)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.runs)

    @property
    def time_s(self) -> float:
        return statistics.fmean(self.times)

    @property
    def std(self) -> float:
        return statistics.stdev(self.runs) if len(self.runs) > 1 else 0.0

    def also_mean_std(self, key: str) -> tuple[float, float]:
        values = self.also[key]
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass
class Table:
    rows: list[Row]
    baseline: Row
    best_pea: Row | None
    upper_for_best: Row | None
    metric: str = "top-1"
    best_other: Row | None = None   # the best ReLU row that is not PEA (baseline / hard swap, + extras)
    also: tuple[str, ...] = ()      # other scores every run reports (detection: map50), as columns

    def also_label(self, key: str) -> str:
        return METRIC_LABELS.get(key, key)

    @property
    def gap_closed(self) -> float | None:
        """Share of the baseline -> upper-limit gap (same Act) that the best PEA row closes."""
        if not self.best_pea or not self.upper_for_best:
            return None
        gap = self.upper_for_best.mean - self.baseline.mean
        return None if gap == 0 else (self.best_pea.mean - self.baseline.mean) / gap


def build_table(results: list[RunResult]) -> Table:
    rows: dict[str, Row] = {}
    for r in results:
        s = r.setting
        row = rows.setdefault(s.slug, Row(s.label, s.slug, s.mode, s.act, [], []))
        row.runs.append(r.score)
        row.times.append(r.wall_time_s)
        for key, value in r.also.items():
            row.also.setdefault(key, []).append(value)
    ordered = list(rows.values())
    baseline = next(r for r in ordered if r.mode == "relu")
    pea = [r for r in ordered if r.mode == "pea"]
    best = max(pea, key=lambda r: r.mean) if pea else None
    upper = next((r for r in ordered if r.mode == "act" and best and r.act == best.act), None)
    other = max((r for r in ordered if r.mode == "relu"), key=lambda r: r.mean)
    also = tuple(k for k in results[0].also if all(len(r.also.get(k, [])) == len(r.runs) for r in ordered))
    return Table(ordered, baseline, best, upper, METRIC_LABELS[results[0].metric.removeprefix("val_")], other, also)


def recommendation(t: Table) -> str:
    """Which method to take, in one sentence: PEA only when it beats the best other ReLU method by
    more than the seed spread (the larger of the two standard deviations); else the simpler one."""
    b, p = t.best_other, t.best_pea
    if p is None or b is None:
        return ""
    margin = p.mean - b.mean
    spread = max(p.std, b.std)
    if margin > spread and len(p.runs) > 1:
        return (f"**Take {p.label}**: it beats the best non-PEA method ({b.label}, {b.mean:.2f} %) by "
                f"{margin:+.2f} points, more than the seed spread ({spread:.2f}).")
    how = "beats it by less than the seed spread" if margin > 0 else "does not beat it"
    return (f"**Take {b.label}** ({b.mean:.2f} %): PEA's best ({p.label}, {p.mean:.2f} %, {margin:+.2f} points) "
            f"{how} ({spread:.2f}).")


def to_markdown(t: Table) -> str:
    also = "".join(f" {t.also_label(k)} % at that epoch (mean ± std) |" for k in t.also)
    lines = [f"| setting | best {t.metric} % (mean ± std) |{also} vs ReLU baseline | runs | train time s (mean) |",
             "|---|---:|" + "---:|" * len(t.also) + "---:|---:|---:|"]
    for r in t.rows:
        delta = "" if r is t.baseline else f"{r.mean - t.baseline.mean:+.2f}"
        cells = "".join(" {:.2f} ± {:.2f} |".format(*r.also_mean_std(k)) for k in t.also)
        lines.append(f"| {r.label} | {r.mean:.2f} ± {r.std:.2f} |{cells} {delta} | {len(r.runs)} | {r.time_s:.1f} |")
    if t.best_pea:
        verdict = "beats" if t.best_pea.mean > t.baseline.mean else "does not beat"
        lines += ["", f"Best PEA setting: **{t.best_pea.label}**, {t.best_pea.mean:.2f} %: it {verdict} the "
                      f"ReLU baseline ({t.baseline.mean:.2f} %), {t.best_pea.mean - t.baseline.mean:+.2f} points."]
        up = t.upper_for_best
        if up and up.mean > t.baseline.mean:
            lines.append(f"It closes {100 * t.gap_closed:.0f} % of the gap between the baseline and the "
                         f"{t.best_pea.act}-only upper limit ({up.mean:.2f} %).")
        elif up:
            lines.append(f"The {t.best_pea.act}-only upper limit ({up.mean:.2f} %) does not beat the baseline "
                         f"here, so there is no gap to close.")
        noisy = abs(t.best_pea.mean - t.baseline.mean) <= max(t.best_pea.std, t.baseline.std)
        if noisy and len(t.best_pea.runs) > 1:
            lines.append("The difference is within one standard deviation over seeds: treat it as noise.")
        if t.best_other is not t.baseline or "hard swap" in t.baseline.label:
            lines += ["", recommendation(t)]
    return "\n".join(lines) + "\n"


def to_csv(t: Table, results: list[RunResult]) -> tuple[str, str]:
    """(per-setting table, per-run results) as CSV text."""
    table, runs = io.StringIO(), io.StringIO()
    w = csv.writer(table)
    key = next((k for k, label in METRIC_LABELS.items() if label == t.metric), "top1")
    w.writerow(["setting", "slug", "mode", "act", "runs", f"{key}_mean", f"{key}_std", "delta_vs_baseline",
                "train_time_s_mean"] + [f"{k}_{stat}" for k in t.also for stat in ("mean", "std")])
    for r in t.rows:
        w.writerow([r.label, r.slug, r.mode, r.act or "", len(r.runs), f"{r.mean:.4f}", f"{r.std:.4f}",
                    f"{r.mean - t.baseline.mean:.4f}", f"{r.time_s:.2f}"]
                   + [f"{v:.4f}" for k in t.also for v in r.also_mean_std(k)])
    w = csv.writer(runs)
    w.writerow(["setting", "slug", "seed", f"best_val_{key}", "best_epoch", f"final_val_{key}", "wall_time_s",
                "run_dir"] + [f"val_{k}_at_best_epoch" for k in t.also])
    for r in results:
        w.writerow([r.setting.label, r.setting.slug, r.seed, r.score, r.best_epoch, r.final_score, r.wall_time_s,
                    r.run_dir] + [r.also.get(k) for k in t.also])
    return table.getvalue(), runs.getvalue()


def plot(t: Table, path: str | Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"relu": "#555555", "act": "#d98c3f", "pea": "#3f7fd9"}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(t.rows) + 2), 4.2))
    xs = range(len(t.rows))
    ax.bar(xs, [r.mean for r in t.rows], yerr=[r.std for r in t.rows], capsize=3,
           color=[colors[r.mode] for r in t.rows])
    ax.axhline(t.baseline.mean, color="#555555", lw=0.8, ls="--")
    lo = min(r.mean - r.std for r in t.rows)
    hi = max(r.mean + r.std for r in t.rows)
    ax.set_ylim(max(0.0, lo - 0.3 * (hi - lo + 0.1)), min(100.0, hi + 0.2 * (hi - lo + 0.1)))
    ax.set_xticks(list(xs), [r.label for r in t.rows], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(f"val {t.metric} % (mean ± std over seeds)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_outputs(out: str | Path, table: Table, results: list[RunResult], title: str) -> dict[str, Path]:
    out = Path(out)
    table_csv, runs_csv = to_csv(table, results)
    paths = {"table.csv": out / "table.csv", "runs.csv": out / "runs.csv", "table.md": out / "table.md",
             "chart.png": out / "chart.png"}
    write_text(paths["table.csv"], table_csv)
    write_text(paths["runs.csv"], runs_csv)
    write_text(paths["table.md"], f"# {title}\n\n" + to_markdown(table))
    plot(table, paths["chart.png"], title)
    return paths
