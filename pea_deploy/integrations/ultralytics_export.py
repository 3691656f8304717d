"""`pea-export --ultralytics best.pt --trust-pickle --data data.yaml --target T` as a library call:

    export_ultralytics("runs/detect/train/weights/best.pt", "ethos-u55", "export/", data="data.yaml",
                       trust_pickle=True, head="raw")

An Ultralytics checkpoint is a pickled module: loading it runs code named in the file, so it is
loaded only when the caller says it trusts the file. `data` is read as pea-train's det-folder reads
it (detection.yolo_layout: a data.yaml with image folders, .txt image lists or lists of them, or a
Roboflow folder). Calibration uses the set's first train images, parity its val images, scored in
mAP@0.5:0.95 and mAP@0.5 (the same host decode and NMS for torch and every artefact; --max-drop
applies to each), letterboxed to the checkpoint's training size and scaled to [0, 1] as Ultralytics
feeds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..detection.yolo_layout import YoloSource, YoloSplit, find_yolo_source
from ..errors import CheckpointError, ConfigError, DataError, MissingDependency
from .ultralytics_heads import HEADS, DecodedHead, RawHead, map_metric


def load_ultralytics(weights: str | Path, *, trust_pickle: bool) -> tuple[torch.nn.Module, dict]:
    """(the checkpoint's model in float32 eval mode, the checkpoint's train_args)."""
    path = Path(weights)
    if not trust_pickle:
        raise ConfigError(f"{path} is a pickled Ultralytics checkpoint: loading it runs code the file names; "
                          "pass --trust-pickle (trust_pickle=True) if you trust it")
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        import ultralytics  # noqa: F401  (the pickle names its classes)
    except ImportError as e:
        raise MissingDependency("an Ultralytics checkpoint needs ultralytics: "
                                "pip install 'pea-deploy[ultralytics]'") from e
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"{path}: cannot load the checkpoint ({type(e).__name__}: {e})") from None
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "model"):
        raise CheckpointError(f"{path} is not an Ultralytics checkpoint (no 'model' module in it)")
    return model.float().eval(), dict(ckpt.get("train_args") or {})


def dataset_splits(data: str | Path) -> YoloSource:
    """The set `--data` names, read as pea-train's det-folder reads it (yolo_layout: a data.yaml with
    image folders, .txt image lists or lists of these, a Roboflow folder, or pea-deploy's own
    layout); file names only, nothing decoded. Parity needs the set's own val split."""
    source = find_yolo_source(data)
    if source.val is None:
        raise DataError(f"{data}: no val split of its own ({source.how}); parity scores the val images: "
                        "give a data.yaml with val:, or images/train + images/val")
    return source


@dataclass
class SplitImages:
    images: torch.Tensor    # float (N, 3, size, size) in [0, 1], letterboxed
    targets: list[dict]     # per image {"boxes": (M, 4) x1 y1 x2 y2 letterboxed pixels, "labels": (M,)}
    source: str             # which images, for the report


def split_images(source: YoloSource, key: str, size: int, limit: int | None) -> SplitImages:
    """The first `limit` images of split `key` ("train" or "val") with their boxes, letterboxed to
    `size` as det-folder letterboxes them, scaled to [0, 1]. The first, not a sample: the table in
    docs/ultralytics.md was measured so, and a rerun must read the same images."""
    from ..detection.folder import read_split
    from ..detection.targets import unpack_targets

    split = source.train if key == "train" else source.val
    if limit:
        split = YoloSplit(split.images[:limit], split.labels[:limit])
    known = len(source.names) if source.names else None
    held = read_split(split, size, known, names_from=source.names_from).load_all()
    return SplitImages(held.images.float() / 255.0, unpack_targets(held.labels),
                       f"{len(split.images)} {key} images of {source.how}, letterboxed to {size} px")


def _check_classes(source: YoloSource, model: torch.nn.Module, data: Path) -> None:
    """A set naming other classes than the checkpoint's head predicts would be scored as nonsense:
    one line, before any image is decoded."""
    head_classes = getattr(model.model[-1], "nc", None)
    if source.names and head_classes is not None and len(source.names) != int(head_classes):
        raise DataError(f"{data} names {len(source.names)} classes ({source.names_from}), the checkpoint's "
                        f"head predicts {int(head_classes)}: give the data.yaml it was trained on")


def export_ultralytics(weights: str | Path, target, out: str | Path, *, data: str | Path | None, trust_pickle: bool,
                       head: str = "raw", imgsz: int | None = None, options=None, command: str = "", log=None):
    """Export an Ultralytics detection checkpoint (plain ReLU: see add_pea_callbacks) with every step
    of export_model; returns its ExportResult."""
    from ..export import ExportOptions, export_model

    if head not in HEADS:
        raise ConfigError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
    options = options or ExportOptions()
    options.validate()
    if data is None:
        raise ConfigError("--ultralytics needs --data data.yaml: int8 calibration uses its train images, "
                          "parity its val images (never random inputs)")
    data = Path(data)
    source = dataset_splits(data)  # a bad yaml or a missing path: one line before the checkpoint loads
    model, train_args = load_ultralytics(weights, trust_pickle=trust_pickle)
    size = int(imgsz or train_args.get("imgsz") or 640)
    net = RawHead(model) if head == "raw" else DecodedHead(model, size)  # refuses a model with no Detect head
    _check_classes(source, model, data)
    calib = split_images(source, "train", size, options.calib_samples)
    val = split_images(source, "val", size, options.parity_samples)
    reg_max = int(getattr(model.model[-1], "reg_max", 16))
    provenance = {"ultralytics_checkpoint": str(weights), "head": head, "imgsz": size, "data": str(data),
                  "task": "detection", "classes": source.names,
                  "input": "RGB, letterboxed (top-left, grey 114), scaled to [0, 1]",
                  "calibration_images": calib.source, "validation_images": val.source}
    return export_model(net, target, out, example_inputs=calib.images[:1], calibration=calib.images,
                        validation=[(val.images, val.targets)], metric=map_metric(head, (size, size), reg_max),
                        options=options, command=command, log=log, provenance=provenance)
