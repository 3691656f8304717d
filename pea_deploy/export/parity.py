"""The parity table: each artefact's top-1 on real validation images and how far it strays from the
torch model it came from. Numbers come from running every artefact, never from assumptions."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .samples import LabelledInputs


@dataclass
class ParityRow:
    artefact: str           # "torch fp32", "model.fp32.onnx", ...
    runtime: str
    samples: int
    top1: float             # % correct
    agreement: float        # % same argmax as the torch fp32 model
    max_abs_diff: float     # max |logits - torch logits|
    drop: float             # torch top-1 minus this top-1, in points

    def to_dict(self) -> dict:
        return asdict(self)


def logits_of(runner, inputs: LabelledInputs, batch: int = 256) -> np.ndarray:
    x = inputs.images.numpy()
    return np.concatenate([runner(x[i:i + batch]) for i in range(0, len(x), batch)])


def parity_rows(reference: np.ndarray, runs: dict[str, tuple[str, np.ndarray]],
                labels: np.ndarray) -> list[ParityRow]:
    """`reference`: torch fp32 logits; `runs`: artefact -> (runtime, logits). First row is torch."""
    ref_pred = reference.argmax(1)
    ref_top1 = 100.0 * float((ref_pred == labels).mean())
    rows = [ParityRow("torch fp32", "torch", len(labels), round(ref_top1, 4), 100.0, 0.0, 0.0)]
    for name, (runtime, logits) in runs.items():
        pred = logits.argmax(1)
        top1 = 100.0 * float((pred == labels).mean())
        rows.append(ParityRow(name, runtime, len(labels), round(top1, 4),
                              round(100.0 * float((pred == ref_pred).mean()), 4),
                              float(np.abs(logits - reference).max()), round(ref_top1 - top1, 4)))
    return rows
