"""`det-folder`: your detection data in the YOLO txt format you already have: an Ultralytics
data.yaml, a Roboflow folder, or

    DIR/images/train/*.jpg  DIR/labels/train/*.txt      (or DIR/images/*.jpg + DIR/labels/*.txt,
    DIR/images/val/*.jpg    DIR/labels/val/*.txt         split by a seeded val_fraction)
    DIR/classes.txt                                     (optional: one class name per line)

(yolo_layout finds the files). Each label file holds one `class cx cy w h` line per object,
coordinates normalised to [0, 1] by the image's width and height; an image without a label file has
no objects. Images are letterboxed to `image_size` square (scaled to fit, padded with grey at the
right and bottom, boxes scaled with them). Every bad label (a short line, a number that is not one,
a coordinate outside [0, 1], a class outside the class names) is one line naming the file and line,
found before training: every label file is read up front, images are not. A set larger than
IN_MEMORY_BYTES decoded is streamed: each image is decoded, letterboxed and augmented per item in the
loader's workers, and an unreadable image stops the run at the batch that reads it, in one line
naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.folders import IMAGE_SUFFIXES
from ..data.images import DatasetSplits, TensorImages, seeded_split
from ..errors import DataError
from .targets import MAX_OBJECTS, pack_targets
from .yolo_layout import YoloSplit, find_yolo_source, images_under, is_yolo_source

PAD_VALUE = 114  # YOLO's letterbox grey
# Sets whose decoded images take at most this are decoded once, up front (3,400 images at 320 px);
# larger ones are read per item in the training loader's workers (--workers).
IN_MEMORY_BYTES = 1 << 30
_EPS = 1e-6


def read_labels(path: Path, num_classes: int | None, names_from: str = "classes.txt"
                ) -> list[tuple[int, float, float, float, float]]:
    """The (class, cx, cy, w, h) rows of one YOLO label file, each checked (`names_from`: the file
    that names the `num_classes` classes)."""
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
            known = f" ({names_from} names {num_classes})" if num_classes is not None else ""
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


@dataclass
class DetectionFiles:
    """A detection set read from disk per item (in the DataLoader's workers): each image decoded and
    letterboxed on access, its labels read and checked up front (no image decoded for that). An item
    is (uint8 (3, size, size), packed targets (MAX_OBJECTS, 5)), exactly what `load_all` holds."""

    images: list[Path]
    rows: np.ndarray      # (objects, 5) float64: class, cx, cy, w, h (normalised), image after image
    starts: np.ndarray    # (N + 1,) int64: image i's rows are rows[starts[i]:starts[i + 1]]
    size: int
    workers: int = 0      # loader processes that read it (pea_deploy.data.loader)

    def __post_init__(self):
        if not self.images:
            raise DataError("dataset is empty")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        image, scale, w, h = letterbox(self.images[i], self.size)
        r = self.rows[self.starts[i]:self.starts[i + 1]]
        # float64 as the label file's numbers, then float32: the same boxes however the set is held
        boxes = np.stack([(r[:, 1] - r[:, 3] / 2) * w * scale, (r[:, 2] - r[:, 4] / 2) * h * scale,
                          (r[:, 1] + r[:, 3] / 2) * w * scale, (r[:, 2] + r[:, 4] / 2) * h * scale], 1)
        target = {"boxes": torch.from_numpy(boxes).float(), "labels": torch.from_numpy(r[:, 0]).long()}
        return torch.from_numpy(np.ascontiguousarray(image)), pack_targets([target])[0]

    def subset(self, index: torch.Tensor) -> "DetectionFiles":
        idx = index.tolist()
        parts = [self.rows[self.starts[i]:self.starts[i + 1]] for i in idx]
        starts = np.concatenate([[0], np.cumsum([len(p) for p in parts], dtype=np.int64)]).astype(np.int64)
        rows = np.concatenate(parts) if parts else np.zeros((0, 5))
        return DetectionFiles([self.images[i] for i in idx], rows.reshape(-1, 5), starts, self.size, self.workers)

    def load_all(self) -> TensorImages:
        """Decode every image now (sets that fit in memory): an unreadable one is found before training."""
        items = [self[i] for i in range(len(self))]
        return TensorImages(torch.stack([x for x, _ in items]), torch.stack([t for _, t in items]))

    def classes_used(self) -> int:
        """1 + the largest class index in the labels (1 for a set without objects)."""
        return int(self.rows[:, 0].max()) + 1 if len(self.rows) else 1


def read_split(split: YoloSplit, size: int, num_classes: int | None, workers: int = 0,
               names_from: str = "classes.txt") -> DetectionFiles:
    """Every label file of `split` read and checked (one line naming file and line for a bad one)."""
    rows, starts = [], [0]
    for label in split.labels:
        found = read_labels(label, num_classes, names_from) if label.is_file() else []
        if len(found) > MAX_OBJECTS:
            raise DataError(f"{label}: {len(found)} objects, more than the {MAX_OBJECTS} an image may hold")
        rows += found
        starts.append(len(rows))
    return DetectionFiles(list(split.images), np.array(rows, dtype=np.float64).reshape(-1, 5),
                          np.array(starts, dtype=np.int64), size, workers)


def load_split(images_dir: Path, labels_dir: Path, size: int, num_classes: int | None) -> TensorImages:
    """The images under `images_dir` (labels at the same place under `labels_dir`), in memory."""
    images = images_under(images_dir)
    if not images:
        raise DataError(f"{images_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    labels = [labels_dir / f.relative_to(images_dir).with_suffix(".txt") for f in images]
    return read_split(YoloSplit(images, labels), size, num_classes).load_all()


def load_detection_folder(data_dir: str | None = None, image_size: int = 64, val_fraction: float = 0.2,
                          split_seed: int = 0, workers: int = 0, in_memory: bool | None = None,
                          **_) -> DatasetSplits:
    """The YOLO-format set at `data_dir` (a data.yaml, a Roboflow folder or pea-deploy's own layout:
    yolo_layout). `in_memory`: decode every image up front (default: when the decoded set takes at
    most IN_MEMORY_BYTES), else stream from disk with `workers` loader processes."""
    if not data_dir:
        raise DataError("dataset 'det-folder' needs --data-dir (a data.yaml, or a folder with images/ and labels/)")
    source = find_yolo_source(data_dir)
    known = len(source.names) if source.names else None
    train = read_split(source.train, image_size, known, workers, source.names_from)
    if source.val is None:
        train, val = seeded_split(train, val_fraction, split_seed)
        how = f"a seeded {val_fraction:g} validation split (seed {split_seed})"
    else:
        val = read_split(source.val, image_size, known, workers, source.names_from)
        how = "its own validation split"
    names = source.names or [f"class{i}" for i in range(max(train.classes_used(), val.classes_used()))]
    if in_memory is None:
        in_memory = (len(train) + len(val)) * 3 * image_size ** 2 <= IN_MEMORY_BYTES
    if in_memory:
        train, val = train.load_all(), val.load_all()
    held = "decoded into memory" if in_memory else f"streamed from disk ({workers} loader processes)"
    return DatasetSplits("det-folder", train, val, len(names), 3, image_size, names,
                         source=f"YOLO-format set {source.how}; {how}; letterboxed to {image_size} px, {held}",
                         task="detection")


def letterboxed_images(path: str | Path, split: str, size: int, limit: int | None = None,
                       seed: int = 0) -> tuple[torch.Tensor, str]:
    """(uint8 (N, 3, size, size) letterboxed images, what they are) for int8 calibration or parity:
    split `split` ("train" or "val") of the YOLO-format set at `path` (one without a split of its own:
    all its images), or every image under a plain folder; a seeded sample of `limit` when given."""
    where = Path(path)
    if is_yolo_source(where):
        source = find_yolo_source(where)
        if split == "val" and source.val is not None:
            chosen, part = source.val, "val"
        else:
            chosen, part = source.train, "train" if source.val is not None else "all"
        files, what = chosen.images, f"{part} images of {source.how}"
    elif where.is_dir():
        files, what = images_under(where), f"images under {where}"
    else:
        raise DataError(f"{where} does not exist (give a folder of images or a data.yaml)")
    if not files:
        raise DataError(f"{where} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if limit is not None and len(files) > limit:
        pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:limit]
        files = [files[i] for i in sorted(pick.tolist())]
    images = torch.stack([torch.from_numpy(np.ascontiguousarray(letterbox(f, size)[0])) for f in files])
    return images, f"{len(files)} {what}, letterboxed to {size} px"
