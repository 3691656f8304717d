"""det-folder: a YOLO-format folder (images/ + labels/*.txt) read into a detection set, and every bad
label or image refused in one line naming the file (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pea_deploy.data import load_dataset
from pea_deploy.detection.shapes_det import make_shapes_det
from pea_deploy.detection.targets import unpack_targets
from pea_deploy.errors import DataError

from cli_checks import assert_one_error_line


def write_yolo_folder(root, count=12, size=48, split=True, classes=True):
    """shapes-det images saved as PNG files at a non-square size with their YOLO label files."""
    images, targets = make_shapes_det(count, size, seed=7)
    for i, (image, t) in enumerate(zip(images, targets)):
        part = ("train" if i < count * 3 // 4 else "val") if split else ""
        (root / "images" / part).mkdir(parents=True, exist_ok=True)
        (root / "labels" / part).mkdir(parents=True, exist_ok=True)
        # stretch to 2:1 so the letterbox has something to do
        Image.fromarray(image.permute(1, 2, 0).numpy()).resize((2 * size, size)).save(root / "images" / part / f"{i}.png")
        lines = []
        for (x1, y1, x2, y2), c in zip(t["boxes"].tolist(), t["labels"].tolist()):
            lines.append(f"{c} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} {(x2 - x1) / size:.6f} "
                         f"{(y2 - y1) / size:.6f}")
        (root / "labels" / part / f"{i}.txt").write_text("\n".join(lines) + "\n")
    if classes:
        (root / "classes.txt").write_text("circle\nsquare\ntriangle\n")
    return images, targets


@pytest.mark.parametrize("split", [True, False])
def test_yolo_folder_round_trips_its_boxes(tmp_path, split):
    _, targets = write_yolo_folder(tmp_path, split=split)
    data = load_dataset("det-folder", data_dir=str(tmp_path), image_size=64, val_fraction=0.25, split_seed=0)
    assert data.task == "detection" and data.classes == ["circle", "square", "triangle"]
    assert len(data.train) + len(data.val) == 12 and data.train.images.shape[1:] == (3, 64, 64)
    loaded = unpack_targets(torch.cat([data.train.labels, data.val.labels]))
    # the 96x48 image letterboxed to 64 is scaled by 2/3 and padded below: normalised x spans 64 px,
    # normalised y 32 px, i.e. the original 48-px coordinates times 64/48 in x and 32/48 in y
    factor = torch.tensor([64 / 48, 32 / 48, 64 / 48, 32 / 48])
    want = np.array(sorted(tuple(round(v, 2) for v in (b * factor).tolist()) for t in targets for b in t["boxes"]))
    got = np.array(sorted(tuple(round(v, 2) for v in b.tolist()) for t in loaded for b in t["boxes"]))
    assert got.shape == want.shape and np.allclose(got, want, atol=0.01)


@pytest.mark.parametrize("line, pattern", [
    ("0 0.5 0.5 0.2", "expected 'class cx cy w h'"),
    ("0 0.5 0.5 0.2 x", "not numbers"),
    ("0 0.95 0.5 0.2 0.2", "is not inside the image"),
    ("7 0.5 0.5 0.2 0.2", "class 7 is not a class index (classes.txt names 3)"),
    ("1.5 0.5 0.5 0.2 0.2", "is not a class index"),
])
def test_bad_labels_name_the_file_and_line(tmp_path, line, pattern):
    write_yolo_folder(tmp_path)
    label = tmp_path / "labels" / "train" / "2.txt"
    label.write_text(label.read_text() + line + "\n")
    with pytest.raises(DataError, match="2.txt:\\d+: ") as e:
        load_dataset("det-folder", data_dir=str(tmp_path), image_size=64)
    assert pattern in str(e.value)


def test_unreadable_image_and_cli_are_one_line(tmp_path):
    write_yolo_folder(tmp_path)
    (tmp_path / "images" / "train" / "3.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="3.png: cannot read the image"):
        load_dataset("det-folder", data_dir=str(tmp_path), image_size=64)
    from pea_deploy.cli.train import main

    result = CliRunner().invoke(main, ["shapes-det-yolo-pea-weighted-silu", "--dataset", "det-folder", "--data-dir",
                                       str(tmp_path), "--out", str(tmp_path / "run")])
    assert_one_error_line(result, "pea-train", 2, "3.png: cannot read the image")
