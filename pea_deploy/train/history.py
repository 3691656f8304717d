"""What a run leaves for people: metrics.csv, a PNG of alpha and accuracy per epoch, summary.json."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..atomic import atomic_path, write_text

def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    """One row per epoch; the columns are the history's scalar fields (per-class lists stay in
    summary.json), so a segmentation run gets val_miou where a classifier gets val_top1."""
    columns = [k for k, v in rows[0].items() if not isinstance(v, (list, dict))] if rows else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def plot_history(path: Path, rows: list[dict], title: str, train_metric: str = "top1",
                 val_metric: str = "top1", label: str = "top-1") -> None:
    """Alpha (right axis) and the training / validation score (left axis) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(epochs, [r[f"train_{train_metric}"] for r in rows], label=f"train {train_metric.replace('_', ' ')}",
            color="tab:blue")
    ax.plot(epochs, [r[f"val_{val_metric}"] for r in rows], label=f"val {label}", color="tab:green")
    ax.set_xlabel("epoch")
    ax.set_ylabel("%")
    ax2 = ax.twinx()
    ax2.plot(epochs, [r["alpha"] for r in rows], label="alpha (ReLU weight)", color="tab:red", ls="--")
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_ylabel("alpha")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
