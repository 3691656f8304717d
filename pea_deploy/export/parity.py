"""The parity table: each artefact's score on real validation images (top-1 for a classifier, mIoU
for a segmentation net, or the user's own metric) and how far it strays from the torch model it came
from (output cosine, SQNR, max |diff|: the gate for any task, labelled or not). Numbers come from
running every artefact, never from assumptions.

Batches stream through the torch reference and every artefact together, so memory stays at one
batch of outputs however large the validation set (per-pixel logits of a Cityscapes net are GBs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from ..metrics import IGNORE_INDEX
from ..train.task import task_named
from .outputs import as_output_list
from .samples import LabelledInputs


@dataclass
class ParityRow:
    artefact: str           # "torch fp32", "model.fp32.onnx", ...
    runtime: str
    samples: int            # images
    metric: str             # "top1", "miou", the user metric's name, or "none" (outputs only)
    score: float | None     # that metric, in % for the built-in ones (None: no metric)
    agreement: float | None  # % of predictions (images, or pixels) equal to the torch fp32 model's
    max_abs_diff: float     # max |output - torch output| (logits)
    drop: float | None      # torch score minus this score, in points
    iou: list | None = field(default=None)  # segmentation: per-class IoU % (None = class absent)
    # Output fidelity, which top-1 on a small split hides: the mean over images of the cosine between
    # this artefact's and torch's output (all logits of an image flattened), and the output SQNR in
    # dB, 10*log10(sum ref^2 / sum (out - ref)^2) over the whole split.
    cosine: float | None = None
    sqnr_db: float | None = None
    # False for a figure that describes this build machine rather than the artefact (onnxruntime's
    # fused int8 kernels of this CPU): reported, never a reason to fail the export
    gate: bool = True
    # several outputs: [{name, cosine, sqnr_db, max_abs_diff}] per output, in the model's order (the
    # row's cosine and SQNR are then its worst output's, its max_abs_diff the largest)
    outputs: list | None = None
    # scores a metric reports beside `score` (detection: {"map50": {"score", "drop"}}, mAP@0.5 beside
    # mAP@0.5:0.95), each held to --max-drop as `score` is
    also: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ParityRow":
        """A report row; schema 1 rows (classification only) name the score `top1`."""
        if "score" not in d:
            d = {**{k: v for k, v in d.items() if k != "top1"}, "metric": "top1", "score": d["top1"]}
        return cls(**{k: d[k] for k in ("artefact", "runtime", "samples", "metric", "score", "agreement",
                                        "max_abs_diff", "drop")}, iou=d.get("iou"), cosine=d.get("cosine"),
                   sqnr_db=d.get("sqnr_db"), gate=d.get("gate", True), outputs=d.get("outputs"), also=d.get("also"))


@dataclass
class ParityEntry:
    """One row of the table: an artefact run by one runtime (the same file may have two rows)."""
    artefact: str
    runner: Callable[[np.ndarray], np.ndarray]
    gate: bool = True


NO_METRIC = "none"


@dataclass(frozen=True)
class TaskMetric:
    """pea-train's own task metric: top-1 (classification) or mIoU (segmentation)."""
    task: str
    num_classes: int
    ignore_index: int = IGNORE_INDEX


class UserMetric:
    """`fn(outputs, targets) -> float` over the whole validation split, called once per artefact:
    outputs as torch tensors in the structure the model returns them (`unflatten`, from
    outputs.OutputSpec), targets concatenated when they are tensors, else one list. Its name goes
    into the report; higher is taken as better (--max-drop applies in its units). It may return
    {name: float} instead: the first entry is the row's score under its name, the others go beside
    it (`also`), every one held to --max-drop (detection: mAP@0.5:0.95, then mAP@0.5)."""

    def __init__(self, fn, name: str | None = None, unflatten=None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.unflatten = unflatten
        self.outputs: dict = {}
        self.targets: list = []

    def add(self, key, outputs: list[np.ndarray], targets, first: bool) -> None:
        self.outputs.setdefault(key, []).append(outputs)
        if first:
            self.targets.append(targets)

    def score(self, key) -> dict[str, float]:
        """{name: value} for the artefact `key`, in the metric's order (one number: under its name)."""
        from ..errors import ExportStepError

        batches = self.outputs[key]
        flat = [torch.from_numpy(np.concatenate([b[k] for b in batches])) for k in range(len(batches[0]))]
        outputs = self.unflatten(flat) if self.unflatten else (flat[0] if len(flat) == 1 else flat)
        targets = self.targets
        joined = torch.cat(targets) if targets and isinstance(targets[0], torch.Tensor) else \
            [t for batch in targets for t in batch]
        try:
            value = self.fn(outputs, joined)
            found = ({str(k): float(v) for k, v in value.items()} if isinstance(value, Mapping)
                     else {self.name: float(value)})
        except Exception as e:  # noqa: BLE001 - the user's code: named, never a traceback
            text = " ".join(str(e).split())[:200]
            raise ExportStepError(f"metric {self.name} failed on {key[0]} ({key[1]}): {type(e).__name__}: {text}") from None
        if not found:
            raise ExportStepError(f"metric {self.name} returned an empty mapping on {key[0]}; it must return a "
                                  "finite number or {name: finite number}")
        for name, v in found.items():
            if not np.isfinite(v):
                named = f" as {name!r}" if isinstance(value, Mapping) else ""
                raise ExportStepError(f"metric {self.name} returned {v}{named} on {key[0]}; it must return a finite number")
        return found


class ParityScorer:
    """Feed (torch outputs, artefact outputs, labels) batch by batch; `rows()` gives the table. What
    is scored is the training task's own tally (top-1, or mIoU with per-class IoU) on the first
    output, a UserMetric, or nothing (task None: outputs only). Output fidelity is measured per
    output; a row's cosine and SQNR are its worst output's, so every output must pass the gate.
    Rows are keyed by (artefact, runtime)."""

    def __init__(self, task: str | None = "classification", num_classes: int = 0, ignore_index: int = IGNORE_INDEX,
                 metric: UserMetric | None = None, output_names: tuple[str, ...] | None = None):
        self.task = task_named(task, num_classes, ignore_index) if task and metric is None else None
        self.metric = metric
        self.output_names = output_names
        self.tallies: dict = {}
        self.gates: dict[tuple[str, str], bool] = {}
        self.max_diff: dict[tuple[str, str], list[float]] = {}
        self.fidelity: dict[tuple[str, str], list[OutputFidelity]] = {}
        self.samples = 0

    def add(self, name: str, runtime: str, outputs, reference, labels, gate: bool = True) -> None:
        """`outputs`, `reference`: one array, or a list of arrays in the model's output order."""
        key = (name, runtime)
        outputs, reference = as_output_list(outputs), as_output_list(reference)
        if len(outputs) != len(reference):
            from ..errors import ExportStepError

            raise ExportStepError(f"{name} ({runtime}) gives {len(outputs)} output(s), the torch model {len(reference)}")
        self.gates[key] = gate
        if self.task is not None:
            t = self.tallies.setdefault(key, self.task.tally())
            t.add(torch.from_numpy(outputs[0].argmax(1)), torch.from_numpy(reference[0].argmax(1)),
                  torch.from_numpy(labels.astype(np.int64)))
        elif self.metric is not None:
            # the targets once per batch: with the reference row, the first one added
            self.metric.add(key, outputs, labels, first=key == next(iter(self.gates)))
        diffs = [float(np.abs(o - r).max()) if o.size else 0.0 for o, r in zip(outputs, reference)]
        self.max_diff[key] = [max(a, b) for a, b in zip(self.max_diff.get(key, [0.0] * len(diffs)), diffs)]
        fidelity = self.fidelity.setdefault(key, [OutputFidelity() for _ in outputs])
        for f, o, r in zip(fidelity, outputs, reference):
            f.add(o, r)

    def rows(self) -> list[ParityRow]:
        """The table, the first row added (the reference) first."""
        rows, ref_score, ref_scores = [], None, None
        metric = self.task.metric if self.task else self.metric.name if self.metric else NO_METRIC
        for key, fidelity in self.fidelity.items():
            score = iou = agreement = also = None
            if self.task is not None:
                t = self.tallies[key]
                score, iou = t.score()
                agreement = round(100.0 * t.same / max(t.counted, 1), 4)
            elif self.metric is not None:
                found = self.metric.score(key)
                ref_scores = found if ref_scores is None else ref_scores
                if list(found) != list(ref_scores):
                    from ..errors import ExportStepError

                    raise ExportStepError(f"metric {self.metric.name} returned {', '.join(found)} on {key[0]} but "
                                          f"{', '.join(ref_scores)} on {rows[0].artefact}; it must name the same scores")
                metric, score = next(iter(found.items()))
                also = {n: {"score": round(v, 4), "drop": round(ref_scores[n] - v, 4)}
                        for n, v in list(found.items())[1:]} or None
            ref_score = score if ref_score is None else ref_score
            sqnrs = [f.sqnr_db for f in fidelity if f.sqnr_db is not None]
            per_output = None
            if len(fidelity) > 1:
                names = self.output_names or tuple(str(i) for i in range(len(fidelity)))
                per_output = [{"name": n, "cosine": round(f.cosine, 6), "sqnr_db": f.sqnr_db, "max_abs_diff": d}
                              for n, f, d in zip(names, fidelity, self.max_diff[key])]
            rows.append(ParityRow(key[0], key[1], self.samples, metric, None if score is None else round(score, 4),
                                  agreement, max(self.max_diff[key]),
                                  None if score is None else round(ref_score - score, 4), iou,
                                  round(min(f.cosine for f in fidelity), 6), min(sqnrs) if sqnrs else None,
                                  self.gates[key], per_output, also))
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


def run_parity(runners: dict | list[ParityEntry], inputs: LabelledInputs, task: str | None = "classification",
               num_classes: int = 0, ignore_index: int = IGNORE_INDEX, batch: int = 64,
               metric: UserMetric | None = None, output_names: tuple[str, ...] | None = None) -> list[ParityRow]:
    """Score every runner (the first is the torch reference) on `inputs`; first row is the reference.
    `runners`: ParityEntry rows, or {artefact: runner} when every row is gated. `task` None with no
    `metric`: output fidelity only (unlabelled inputs)."""
    entries = runners if isinstance(runners, list) else [ParityEntry(k, r) for k, r in runners.items()]
    scorer = ParityScorer(task, num_classes, ignore_index, metric, output_names)
    x = inputs.images.numpy()
    labels = inputs.labels.numpy() if isinstance(inputs.labels, torch.Tensor) and scorer.task else inputs.labels
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        yb = labels[i:i + batch] if labels is not None else None
        reference = entries[0].runner(xb)
        for n, e in enumerate(entries):
            out = reference if n == 0 else e.runner(xb)
            scorer.add(e.artefact, e.runner.kind, out, reference, yb, e.gate)
        scorer.samples += len(xb)
    return scorer.rows()
