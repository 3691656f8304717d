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

from ..metrics import IGNORE_INDEX, confusion_matrix, iou_percent, mean_iou
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


class _Tally:
    """Running counts for one artefact."""

    def __init__(self, num_classes: int):
        self.correct = self.same = self.counted = 0
        self.max_diff = 0.0
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)


class ParityScorer:
    """Feed (torch outputs, artefact outputs, labels) batch by batch; `rows()` gives the table."""

    def __init__(self, task: str = "classification", num_classes: int = 0, ignore_index: int = IGNORE_INDEX):
        self.segmentation = task == "segmentation"
        self.num_classes, self.ignore_index = max(num_classes, 1), ignore_index
        self.tallies: dict[str, _Tally] = {}
        self.runtimes: dict[str, str] = {}
        self.samples = 0

    def add(self, name: str, runtime: str, outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> None:
        t = self.tallies.setdefault(name, _Tally(self.num_classes))
        self.runtimes[name] = runtime
        pred, ref_pred = outputs.argmax(1), reference.argmax(1)
        if self.segmentation:
            scored = labels != self.ignore_index
            t.same += int(((pred == ref_pred) & scored).sum())
            t.counted += int(scored.sum())
            t.confusion += confusion_matrix(torch.from_numpy(pred), torch.from_numpy(labels.astype(np.int64)),
                                            self.num_classes, self.ignore_index)
        else:
            t.correct += int((pred == labels).sum())
            t.same += int((pred == ref_pred).sum())
            t.counted += len(labels)
        t.max_diff = max(t.max_diff, float(np.abs(outputs - reference).max()))

    def _score(self, t: _Tally) -> tuple[float, list | None]:
        if self.segmentation:
            return mean_iou(t.confusion), iou_percent(t.confusion)
        return 100.0 * t.correct / max(t.counted, 1), None

    def rows(self, reference: str = "torch fp32") -> list[ParityRow]:
        metric = "miou" if self.segmentation else "top1"
        ref_score, _ = self._score(self.tallies[reference])
        rows = []
        for name, t in self.tallies.items():
            score, iou = self._score(t)
            rows.append(ParityRow(name, self.runtimes[name], self.samples, metric, round(score, 4),
                                  round(100.0 * t.same / max(t.counted, 1), 4), t.max_diff,
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
