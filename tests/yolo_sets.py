"""Small YOLO-format detection sets written with PIL (nothing downloads): images of rectangles and
discs on a grey background, wider than high so the letterbox has work to do, with their label files."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

NAMES = ["square", "disc", "bar"]
COLOURS = [(230, 60, 40), (40, 180, 70), (50, 90, 230)]


def draw(rng: random.Random, width: int = 80, height: int = 48) -> tuple[Image.Image, list[str]]:
    """One image and its `class cx cy w h` label lines (normalised by the image's size)."""
    shade = rng.randint(20, 90)
    img = Image.new("RGB", (width, height), (shade, shade, shade))
    pen = ImageDraw.Draw(img)
    rows = []
    for _ in range(rng.randint(1, 3)):
        cls = rng.randrange(len(NAMES))
        w = rng.randint(width // 6, width // 3)
        h = w if cls < 2 else max(4, w // 3)
        h = min(h, height - 2)
        x0, y0 = rng.randint(0, width - w), rng.randint(0, height - h)
        (pen.ellipse if cls == 1 else pen.rectangle)((x0, y0, x0 + w - 1, y0 + h - 1), fill=COLOURS[cls])
        rows.append(f"{cls} {(x0 + w / 2) / width:.6f} {(y0 + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}")
    return img, rows


def write_split(images: Path, labels: Path, count: int, seed: int, suffix: str = ".jpg") -> list[Path]:
    """`count` images into `images` with their label files in `labels`; returns the image paths."""
    rng = random.Random(seed)
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        img, rows = draw(rng)
        path = images / f"{seed:02d}_{i:03d}{suffix}"
        img.save(path, quality=95) if suffix == ".jpg" else img.save(path)
        (labels / f"{path.stem}.txt").write_text("\n".join(rows) + "\n")
        paths.append(path)
    return paths


def write_ultralytics_set(root: Path, train: int = 12, val: int = 6) -> Path:
    """Ultralytics' own layout, `images/{train,val}` + `labels/{train,val}`; returns the root."""
    write_split(root / "images" / "train", root / "labels" / "train", train, seed=1)
    write_split(root / "images" / "val", root / "labels" / "val", val, seed=2)
    return root


def write_roboflow_set(root: Path, train: int = 12, val: int = 6, test: int = 3) -> Path:
    """Roboflow's export layout: `train|valid|test/{images,labels}` and its data.yaml (paths `../x`,
    names as a list); returns the root."""
    for split, count, seed in (("train", train, 1), ("valid", val, 2), ("test", test, 3)):
        write_split(root / split / "images", root / split / "labels", count, seed)
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\n"
                                    f"nc: {len(NAMES)}\nnames: {NAMES}\n")
    return root
