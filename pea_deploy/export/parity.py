"""The parity table: each artefact's score on real validation images (top-1 for a classifier, mIoU
for a segmentation net) and how far it strays from the torch model it came from. Numbers come from
running every artefact, never from assumptions.

Batches stream through the torch reference and every artefact together, so memory stays at one
batch of outputs however large the validation set (per-pixel logits of a Cityscapes net are GBs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..metrics import IGNORE_INDEX
from ..train.task import task_named
from .samples import LabelledInputs


@dataclass
class ParityRow:
    artefact: str           # "torch fp32", "model.fp32.onnx", ...
    runtime: str
    samples: int            # images
    metric: str             # "top1" or "miou"
    score: float            # that metric, in %
    agreement: float        # % of predictions (images, or pixels) equal to the torch fp32 model's
    max_abs_diff: float     # max |output - torch output| (logits)
    drop: float             # torch score minus this score, in points
    iou: list | None = field(default=None)  # segmentation: per-class IoU % (None = class absent)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ParityRow":
        """A report row; schema 1 rows (classification only) name the score `top1`."""
        if "score" not in d:
            d = {**{k: v for k, v in d.items() if k != "top1"}, "metric": "top1", "score": d["top1"]}
        return cls(**{k: d[k] for k in ("artefact", "runtime", "samples", "metric", "score", "agreement",
                                        "max_abs_diff", "drop")}, iou=d.get("iou"))


class ParityScorer:
    """Feed (torch outputs, artefact outputs, labels) batch by batch; `rows()` gives the table. What
    is scored (top-1, or mIoU with per-class IoU) is the training task's own tally."""

    def __init__(self, task: str = "classification", num_classes: int = 0, ignore_index: int = IGNORE_INDEX):
        self.task = task_named(task, num_classes, ignore_index)
        self.tallies: dict = {}
        self.runtimes: dict[str, str] = {}
        self.max_diff: dict[str, float] = {}
        self.samples = 0

    def add(self, name: str, runtime: str, outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> None:
        t = self.tallies.setdefault(name, self.task.tally())
        self.runtimes[name] = runtime
        t.add(torch.from_numpy(outputs.argmax(1)), torch.from_numpy(reference.argmax(1)),
              torch.from_numpy(labels.astype(np.int64)))
        self.max_diff[name] = max(self.max_diff.get(name, 0.0), float(np.abs(outputs - reference).max()))

    def rows(self, reference: str = "torch fp32") -> list[ParityRow]:
        ref_score, _ = self.tallies[reference].score()
        rows = []
        for name, t in self.tallies.items():
            score, iou = t.score()
            rows.append(ParityRow(name, self.runtimes[name], self.samples, self.task.metric, round(score, 4),
                                  round(100.0 * t.same / max(t.counted, 1), 4), self.max_diff[name],
                                  round(ref_score - score, 4), iou))
        return rows


def run_parity(runners: dict, inputs: LabelledInputs, task: str = "classification", num_classes: int = 0,
               ignore_index: int = IGNORE_INDEX, batch: int = 64) -> list[ParityRow]:
    """Score every runner (the first is the torch reference) on `inputs`; first row is the reference."""
    scorer = ParityScorer(task, num_classes, ignore_index)
    names = list(runners)
    x, labels = inputs.images.numpy(), inputs.labels.numpy()
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], labels[i:i + batch]
        reference = runners[names[0]](xb)
        for name in names:
            out = reference if name == names[0] else runners[name](xb)
            scorer.add(name, runners[name].kind, out, reference, yb)
        scorer.samples += len(xb)
    return scorer.rows(names[0])
