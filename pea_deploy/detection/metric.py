"""The detection task's scores for pea-export's parity: COCO mAP@0.5:0.95 and mAP@0.5 (%) of a
detector's raw maps, decoded and NMS'd the same way for torch and for every artefact."""

from __future__ import annotations

from .coco_map import coco_map
from .decode import detections


def map_metric(input_hw: tuple[int, int]):
    """`fn(outputs, packed targets) -> {"map": mAP@0.5:0.95 %, "map50": mAP@0.5 %}` for a detector
    taking `input_hw` inputs: the row's score first, the one reported and gated beside it second."""

    def map_(outputs, targets) -> dict[str, float]:
        maps = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
        strides = [input_hw[0] // m.shape[-2] for m in maps]
        truth = targets if hasattr(targets, "dim") else list(targets)  # packed, or one dict per image
        found = coco_map(detections(maps, strides), truth)
        return {"map": found["map"], "map50": found["map50"]}

    return map_
