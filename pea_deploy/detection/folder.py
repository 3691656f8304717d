"""`det-folder`: your detection data in the YOLO txt format you already have.

    DIR/images/train/*.jpg  DIR/labels/train/*.txt      (or DIR/images/*.jpg + DIR/labels/*.txt,
    DIR/images/val/*.jpg    DIR/labels/val/*.txt         split by a seeded val_fraction)
    DIR/classes.txt                                     (optional: one class name per line)

Each label file holds one `class cx cy w h` line per object, coordinates normalised to [0, 1] by the
image's width and height; an image without a label file has no objects. Images are letterboxed to
`image_size` square (scaled to fit, padded with grey at the right and bottom, boxes scaled with
them). Every bad label (a short line, a number that is not one, a coordinate outside [0, 1], a class
outside classes.txt) and every unreadable image is one line naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.folders import IMAGE_SUFFIXES
from ..data.images import DatasetSplits, TensorImages, seeded_split
from ..errors import DataError
from .targets import MAX_OBJECTS, pack_targets

PAD_VALUE = 114  # YOLO's letterbox grey
_EPS = 1e-6


def read_labels(path: Path, num_classes: int | None) -> list[tuple[int, float, float, float, float]]:
    """The (class, cx, cy, w, h) rows of one YOLO label file, each checked."""
    rows = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the label file ({e})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 5:
            raise DataError(f"{path}:{n}: expected 'class cx cy w h', got {line.strip()!r}")
        try:
            cls, values = float(parts[0]), [float(v) for v in parts[1:]]
        except ValueError:
            raise DataError(f"{path}:{n}: not numbers: {line.strip()!r}") from None
        if cls != int(cls) or cls < 0 or (num_classes is not None and cls >= num_classes):
            known = f" (classes.txt names {num_classes})" if num_classes is not None else ""
            raise DataError(f"{path}:{n}: class {parts[0]} is not a class index{known}")
        cx, cy, w, h = values
        if not all(-_EPS <= v <= 1 + _EPS for v in values) or w <= 0 or h <= 0 or \
                cx - w / 2 < -_EPS or cy - h / 2 < -_EPS or cx + w / 2 > 1 + _EPS or cy + h / 2 > 1 + _EPS:
            raise DataError(f"{path}:{n}: box {cx:g} {cy:g} {w:g} {h:g} is not inside the image "
                            f"(normalised centre x, y, width, height in [0, 1])")
        rows.append((int(cls), cx, cy, w, h))
    return rows


def letterbox(path: Path, size: int) -> tuple[np.ndarray, float, int, int]:
    """(uint8 (3, size, size) image, scale, original width, original height)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / max(w, h)
            im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
            canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
            arr = np.asarray(im)
            canvas[:arr.shape[0], :arr.shape[1]] = arr
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"{path}: cannot read the image ({e})") from None
    return canvas.transpose(2, 0, 1), scale, w, h


def load_split(images_dir: Path, labels_dir: Path, size: int, num_classes: int | None) -> TensorImages:
    files = sorted(p for p in images_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{images_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images, targets = [], []
    for f in files:
        image, scale, w, h = letterbox(f, size)
        label = labels_dir / f.relative_to(images_dir).with_suffix(".txt")
        rows = read_labels(label, num_classes) if label.exists() else []
        if len(rows) > MAX_OBJECTS:
            raise DataError(f"{label}: {len(rows)} objects, more than the {MAX_OBJECTS} an image may hold")
        boxes = [[(cx - bw / 2) * w * scale, (cy - bh / 2) * h * scale, (cx + bw / 2) * w * scale,
                  (cy + bh / 2) * h * scale] for _, cx, cy, bw, bh in rows]
        images.append(torch.from_numpy(np.ascontiguousarray(image)))
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        "labels": torch.tensor([r[0] for r in rows], dtype=torch.long)})
    return TensorImages(torch.stack(images), pack_targets(targets))


def load_detection_folder(data_dir: str | None = None, image_size: int = 64, val_fraction: float = 0.2,
                          split_seed: int = 0, **_) -> DatasetSplits:
    if not data_dir:
        raise DataError("dataset 'det-folder' needs --data-dir (a folder with images/ and labels/)")
    root = Path(data_dir)
    if not (root / "images").is_dir():
        raise DataError(f"{root} has no images/ folder (YOLO layout: images/ and labels/)")
    names_file = root / "classes.txt"
    names = [n.strip() for n in names_file.read_text().splitlines() if n.strip()] if names_file.exists() else None
    known = len(names) if names else None
    if (root / "images" / "train").is_dir():
        train = load_split(root / "images" / "train", root / "labels" / "train", image_size, known)
        if not (root / "images" / "val").is_dir():
            raise DataError(f"{root}/images has train/ but no val/")
        val = load_split(root / "images" / "val", root / "labels" / "val", image_size, known)
        how = "its train/ and val/ folders"
    else:
        everything = load_split(root / "images", root / "labels", image_size, known)
        train, val = seeded_split(everything, val_fraction, split_seed)
        how = f"a seeded {val_fraction:g} validation split (seed {split_seed})"
    if names is None:
        used = torch.cat([train.labels[..., 0].flatten(), val.labels[..., 0].flatten()])
        count = int(used.max().item()) + 1 if (used >= 0).any() else 1
        names = [f"class{i}" for i in range(count)]
    return DatasetSplits("det-folder", train, val, len(names), 3, image_size, names,
                         source=f"YOLO-format folder {root}, {how}, letterboxed to {image_size} px",
                         task="detection")
