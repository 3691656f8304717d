"""A small YOLO-format detection set written with PIL, in the Roboflow layout Ultralytics reads:
`train|valid/images/*.jpg`, `train|valid/labels/*.txt` (class cx cy w h, normalised) and a data.yaml."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

NAMES = ["square", "disc", "bar"]
COLOURS = [(230, 60, 40), (40, 180, 70), (50, 90, 230)]


def _image(rng: random.Random, size: int) -> tuple[Image.Image, list[str]]:
    shade = rng.randint(0, 60)
    img = Image.new("RGB", (size, size), (shade, shade, shade))
    draw = ImageDraw.Draw(img)
    rows = []
    for _ in range(rng.randint(1, 3)):
        cls = rng.randrange(len(NAMES))
        w = rng.randint(size // 5, size // 2)
        h = w if cls < 2 else max(size // 8, w // 3)
        x0, y0 = rng.randint(0, size - w), rng.randint(0, size - h)
        box = (x0, y0, x0 + w - 1, y0 + h - 1)
        (draw.ellipse if cls == 1 else draw.rectangle)(box, fill=COLOURS[cls])
        rows.append(f"{cls} {(x0 + w / 2) / size:.6f} {(y0 + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}")
    return img, rows


def write_yolo_set(root: Path, *, train: int = 64, val: int = 32, size: int = 64, seed: int = 0) -> Path:
    """Write the set under `root`; returns its data.yaml (paths relative to the yaml's folder)."""
    rng = random.Random(seed)
    for split, count in (("train", train), ("valid", val)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img, rows = _image(rng, size)
            img.save(root / split / "images" / f"{i:04d}.jpg", quality=95)
            (root / split / "labels" / f"{i:04d}.txt").write_text("\n".join(rows) + "\n")
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(NAMES))
    yaml = root / "data.yaml"
    yaml.write_text(f"train: train/images\nval: valid/images\nnc: {len(NAMES)}\nnames:\n{names}\n")
    return yaml
