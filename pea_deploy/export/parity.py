"""The parity table: each artefact's score on real validation images (top-1 for a classifier, mIoU
for a segmentation net) and how far it strays from the torch model it came from. Numbers come from
running every artefact, never from assumptions.

Batches stream through the torch reference and every artefact together, so memory stays at one
batch of outputs however large the validation set (per-pixel logits of a Cityscapes net are GBs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

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
    # Output fidelity, which top-1 on a small split hides: the mean over images of the cosine between
    # this artefact's and torch's output (all logits of an image flattened), and the output SQNR in
    # dB, 10*log10(sum ref^2 / sum (out - ref)^2) over the whole split.
    cosine: float | None = None
    sqnr_db: float | None = None
    # False for a figure that describes this build machine rather than the artefact (onnxruntime's
    # fused int8 kernels of this CPU): reported, never a reason to fail the export
    gate: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ParityRow":
        """A report row; schema 1 rows (classification only) name the score `top1`."""
        if "score" not in d:
            d = {**{k: v for k, v in d.items() if k != "top1"}, "metric": "top1", "score": d["top1"]}
        return cls(**{k: d[k] for k in ("artefact", "runtime", "samples", "metric", "score", "agreement",
                                        "max_abs_diff", "drop")}, iou=d.get("iou"), cosine=d.get("cosine"),
                   sqnr_db=d.get("sqnr_db"), gate=d.get("gate", True))


@dataclass
class ParityEntry:
    """One row of the table: an artefact run by one runtime (the same file may have two rows)."""
    artefact: str
    runner: Callable[[np.ndarray], np.ndarray]
    gate: bool = True


class ParityScorer:
    """Feed (torch outputs, artefact outputs, labels) batch by batch; `rows()` gives the table. What
    is scored (top-1, or mIoU with per-class IoU) is the training task's own tally. Rows are keyed by
    (artefact, runtime)."""

    def __init__(self, task: str = "classification", num_classes: int = 0, ignore_index: int = IGNORE_INDEX):
        self.task = task_named(task, num_classes, ignore_index)
        self.tallies: dict = {}
        self.gates: dict[tuple[str, str], bool] = {}
        self.max_diff: dict[tuple[str, str], float] = {}
        self.fidelity: dict[tuple[str, str], OutputFidelity] = {}
        self.samples = 0

    def add(self, name: str, runtime: str, outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray,
            gate: bool = True) -> None:
        key = (name, runtime)
        t = self.tallies.setdefault(key, self.task.tally())
        self.gates[key] = gate
        t.add(torch.from_numpy(outputs.argmax(1)), torch.from_numpy(reference.argmax(1)),
              torch.from_numpy(labels.astype(np.int64)))
        self.max_diff[key] = max(self.max_diff.get(key, 0.0), float(np.abs(outputs - reference).max()))
        self.fidelity.setdefault(key, OutputFidelity()).add(outputs, reference)

    def rows(self) -> list[ParityRow]:
        """The table, the first row added (the reference) first."""
        ref_score, _ = next(iter(self.tallies.values())).score()
        rows = []
        for (name, runtime), t in self.tallies.items():
            score, iou = t.score()
            fidelity = self.fidelity[name, runtime]
            rows.append(ParityRow(name, runtime, self.samples, self.task.metric, round(score, 4),
                                  round(100.0 * t.same / max(t.counted, 1), 4), self.max_diff[name, runtime],
                                  round(ref_score - score, 4), iou, round(fidelity.cosine, 6),
                                  fidelity.sqnr_db, self.gates[name, runtime]))
        return rows


class OutputFidelity:
    """Running cosine (per image, then averaged) and SQNR of outputs against a reference, in float64
    so that a split of any size sums without losing the small differences it measures."""

    def __init__(self):
        self.cosine_sum = self.signal = self.noise = 0.0
        self.images = 0

    def add(self, outputs: np.ndarray, reference: np.ndarray) -> None:
        out = outputs.reshape(len(outputs), -1).astype(np.float64)
        ref = reference.reshape(len(reference), -1).astype(np.float64)
        norms = np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1)
        # two all-zero outputs are the same output; one all-zero output shares no direction
        cos = np.where(norms > 0, (out * ref).sum(1) / np.where(norms > 0, norms, 1.0),
                       np.where(np.abs(out).sum(1) + np.abs(ref).sum(1) == 0, 1.0, 0.0))
        self.cosine_sum += float(cos.sum())
        self.signal += float((ref * ref).sum())
        self.noise += float(((out - ref) ** 2).sum())
        self.images += len(out)

    @property
    def cosine(self) -> float:
        return self.cosine_sum / max(self.images, 1)

    @property
    def sqnr_db(self) -> float | None:
        """None where the outputs equal the reference exactly (no noise to measure)."""
        if self.noise == 0:
            return None
        return round(10.0 * float(np.log10(max(self.signal, 1e-300) / self.noise)), 3)


def run_parity(runners: dict | list[ParityEntry], inputs: LabelledInputs, task: str = "classification",
               num_classes: int = 0, ignore_index: int = IGNORE_INDEX, batch: int = 64) -> list[ParityRow]:
    """Score every runner (the first is the torch reference) on `inputs`; first row is the reference.
    `runners`: ParityEntry rows, or {artefact: runner} when every row is gated."""
    entries = runners if isinstance(runners, list) else [ParityEntry(k, r) for k, r in runners.items()]
    scorer = ParityScorer(task, num_classes, ignore_index)
    x, labels = inputs.images.numpy(), inputs.labels.numpy()
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], labels[i:i + batch]
        reference = entries[0].runner(xb)
        for n, e in enumerate(entries):
            out = reference if n == 0 else e.runner(xb)
            scorer.add(e.artefact, e.runner.kind, out, reference, yb, e.gate)
        scorer.samples += len(xb)
    return scorer.rows()
