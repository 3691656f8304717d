"""`pea-export --ultralytics best.pt --trust-pickle --data data.yaml --target T` as a library call:

    export_ultralytics("runs/detect/train/weights/best.pt", "ethos-u55", "export/", data="data.yaml",
                       trust_pickle=True, head="raw")

An Ultralytics checkpoint is a pickled module: loading it runs code named in the file, so it is
loaded only when the caller says it trusts the file. Calibration uses the dataset's train images,
parity its val images (mAP@0.5:0.95, the same host decode and NMS for torch and every artefact),
letterboxed to the checkpoint's training size and scaled to [0, 1] as Ultralytics feeds them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError, ConfigError, DataError, MissingDependency
from .ultralytics_heads import HEADS, DecodedHead, RawHead, map_metric

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


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


def _split_dirs(data_yaml: Path, key: str) -> tuple[Path, Path]:
    """(images folder, labels folder) of split `key` as Ultralytics resolves them."""
    import yaml

    try:
        spec = yaml.safe_load(data_yaml.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise DataError(f"{data_yaml}: cannot read the dataset yaml ({' '.join(str(e).split())[:160]})") from None
    if not isinstance(spec, dict) or key not in spec:
        raise DataError(f"{data_yaml}: no '{key}' entry (a data.yaml names train: and val: image folders)")
    root = Path(spec.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = data_yaml.parent / root
    entry = spec[key]
    if not isinstance(entry, str):
        raise DataError(f"{data_yaml}: '{key}' is a list; give one image folder per split here")
    images = Path(entry) if Path(entry).is_absolute() else root / entry
    if not images.is_dir():
        raise DataError(f"{data_yaml}: '{key}' folder {images} does not exist (image lists in .txt files are "
                        "not read here yet)")
    parts = list(images.parts)
    if "images" not in parts:
        raise DataError(f"{images}: Ultralytics finds labels by replacing 'images' in the path; it has none")
    at = len(parts) - 1 - parts[::-1].index("images")
    return images, Path(*parts[:at], "labels", *parts[at + 1:])


def _images(data_yaml: Path, key: str, size: int, limit: int | None):
    """(float (N, 3, size, size) in [0, 1], targets) of the first `limit` images of split `key`."""
    from ..detection.folder import load_split
    from ..detection.targets import unpack_targets

    images, labels = _split_dirs(data_yaml, key)
    split = load_split(images, labels, size, None)
    x, packed = split.images, split.labels
    if limit:
        x, packed = x[:limit], packed[:limit]
    return x.float() / 255.0, unpack_targets(packed)


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
    if not data.is_file():
        raise DataError(f"dataset yaml {data} does not exist")
    model, train_args = load_ultralytics(weights, trust_pickle=trust_pickle)
    size = int(imgsz or train_args.get("imgsz") or 640)
    net = RawHead(model) if head == "raw" else DecodedHead(model, size)
    calib, _ = _images(data, "train", size, options.calib_samples)
    val_x, val_t = _images(data, "val", size, options.parity_samples)
    reg_max = int(getattr(model.model[-1], "reg_max", 16))
    provenance = {"ultralytics_checkpoint": str(weights), "head": head, "imgsz": size, "data": str(data),
                  "input": "RGB, letterboxed (top-left, grey 114), scaled to [0, 1]"}
    return export_model(net, target, out, example_inputs=calib[:1], calibration=calib,
                        validation=[(val_x, val_t)], metric=map_metric(head, (size, size), reg_max),
                        options=options, command=command, log=log, provenance=provenance)
