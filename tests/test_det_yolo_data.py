"""det-folder reads a detection set as Ultralytics and Roboflow hand it over (issue 31 item 3): a
data.yaml (names as a list or a dict, image folders or .txt image lists, relative or absolute paths),
the Roboflow layout, and a bad yaml as one line with exit 2."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from pea_deploy.data import load_dataset
from pea_deploy.detection.folder import letterbox, letterboxed_images
from pea_deploy.detection.targets import unpack_targets
from pea_deploy.detection.yolo_layout import label_of
from pea_deploy.errors import DataError
from pea_deploy.export.user_module import folder_inputs

from cli_checks import assert_one_error_line
from yolo_sets import NAMES, write_roboflow_set, write_ultralytics_set


def load(path, **options):
    return load_dataset("det-folder", data_dir=str(path), image_size=64, **options)


def same_set(a, b) -> None:
    assert a.classes == b.classes and a.num_classes == b.num_classes
    for x, y in ((a.train, b.train), (a.val, b.val)):
        assert torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)


@pytest.fixture
def ultra(tmp_path):
    return write_ultralytics_set(tmp_path / "set")


def test_yaml_variants_read_the_same_set(ultra, tmp_path, monkeypatch):
    """names as a list or a dict, `path` relative to the yaml's folder or absolute or absent, folders
    or .txt image lists (./ lines relative to the list, others as written): one and the same set."""
    names_list = f"names: {NAMES}\n"
    names_dict = "names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(NAMES))
    train, val = (sorted((ultra / "images" / s).iterdir()) for s in ("train", "val"))
    (ultra / "train.txt").write_text("".join(f"./images/train/{p.name}\n" for p in train))  # ./ : from the list
    (ultra / "val.txt").write_text("".join(f"{p}\n" for p in val))                          # absolute
    elsewhere = tmp_path / "configs"
    elsewhere.mkdir()
    variants = {
        ultra / "data.yaml": "train: images/train\nval: images/val\n" + names_list,  # no path: the yaml's folder
        elsewhere / "relative.yaml": "path: ../set\ntrain: images/train\nval: images/val\n" + names_dict,
        elsewhere / "absolute.yml": f"path: {ultra}\ntrain: images/train\nval: images/val\nnc: 3\n" + names_dict,
        ultra / "lists.yaml": "path: .\ntrain: train.txt\nval: [val.txt]\n" + names_list,
    }
    for path, text in variants.items():
        path.write_text(text)
    monkeypatch.chdir(tmp_path)  # not the set's folder: paths resolve from the yaml, not from here
    loaded = {path.name: load(path) for path in variants}
    reference = loaded["data.yaml"]
    assert reference.classes == NAMES and (len(reference.train), len(reference.val)) == (12, 6)
    assert "Ultralytics data.yaml" in reference.source
    for name, data in loaded.items():
        same_set(reference, data)
    # and the same as the folder itself, read in pea-deploy's own layout
    same_set(reference, load(ultra, val_fraction=0.5))


def test_boxes_come_out_letterboxed(ultra):
    """The 80x48 images are scaled by 64/80 and padded below: a label's normalised x spans 64 px,
    its normalised y 48 * 0.8 = 38.4 px."""
    data = load(ultra)
    first = sorted((ultra / "images" / "train").iterdir())[0]
    rows = [[float(v) for v in line.split()] for line in label_of(first).read_text().splitlines()]
    want = torch.tensor([[(cx - w / 2) * 64, (cy - h / 2) * 38.4, (cx + w / 2) * 64, (cy + h / 2) * 38.4]
                         for _, cx, cy, w, h in rows])
    got = unpack_targets(data.train.labels[:1])[0]
    # float32 boxes from float64 arithmetic on 6-decimal label values: equal to 1e-4 px
    assert torch.allclose(got["boxes"], want, atol=1e-4)
    assert got["labels"].tolist() == [int(r[0]) for r in rows]
    image, scale, w, h = letterbox(first, 64)
    assert (w, h, scale) == (80, 48, 0.8) and (image[:, 39:] == 114).all()  # grey below the image


def test_labels_are_found_as_ultralytics_finds_them(tmp_path):
    assert label_of(tmp_path / "images" / "a" / "images" / "x.jpg") == tmp_path / "images" / "a" / "labels" / "x.txt"
    assert label_of(tmp_path / "train" / "images" / "x.png") == tmp_path / "train" / "labels" / "x.txt"


def test_roboflow_folder_and_its_yaml(tmp_path, ultra):
    """`--data-dir FOLDER` in the Roboflow layout (names from its data.yaml, test/ not read) and
    `--data-dir FOLDER/data.yaml` (its `../train/images` read as Ultralytics reads it) give the same
    set, and the same as Ultralytics' own layout holding the same files."""
    robo = write_roboflow_set(tmp_path / "robo")
    by_folder, by_yaml = load(robo), load(robo / "data.yaml")
    assert "Roboflow layout" in by_folder.source and by_folder.classes == NAMES
    assert (len(by_folder.train), len(by_folder.val)) == (12, 6)
    same_set(by_folder, by_yaml)
    (ultra / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames: {NAMES}\n")
    same_set(by_folder, load(ultra / "data.yaml"))


def test_a_class_outside_the_yaml_names_the_label_file_and_line(ultra):
    (ultra / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b]\n")
    with pytest.raises(DataError, match=r"\.txt:\d+: class 2 is not a class index \(data.yaml names 2\)"):
        load(ultra / "data.yaml")


@pytest.mark.parametrize("text, pattern", [
    ("train: [images/train\nval: images/val\n", "not a valid YAML file (line 2)"),
    ("- images/train\n- images/val\n", "a dataset yaml is a mapping"),
    ("train: images/train\nnames: [a, b, c]\n", "no 'val' entry"),
    ("train: images/train\nval: images/nowhere\nnames: [a, b, c]\n", "'val' path"),
    ("path: /no/such/root\ntrain: images/train\nval: images/val\nnames: [a]\n", "'path' /no/such/root does not exist"),
    ("train: images/train\nval: images/val\nnames: {0: a, 2: c}\n", "'names' keys must be the class indices 0..1"),
    ("train: images/train\nval: images/val\nnames: [a, b]\nnc: 3\n", "'names' lists 2 classes but 'nc' says 3"),
    ("train: images/train\nval: missing.txt\nnames: [a, b, c]\n", "missing.txt does not exist"),
])
def test_a_bad_yaml_is_one_line_and_exit_2(ultra, text, pattern):
    from pea_deploy.cli.train import main

    bad = ultra / "bad.yaml"
    bad.write_text(text)
    result = CliRunner().invoke(main, ["shapes-det-yolo-pea-weighted-silu", "--dataset", "det-folder", "--data-dir",
                                       str(bad), "--out", str(ultra / "run")])
    assert_one_error_line(result, "pea-train", 2, pattern)
    assert "bad.yaml" in result.stderr


def test_an_image_list_naming_a_missing_file_names_the_line(ultra):
    (ultra / "train.txt").write_text(f"./images/train/{next((ultra / 'images' / 'train').iterdir()).name}\n"
                                     "./images/train/gone.jpg\n")
    (ultra / "data.yaml").write_text(f"train: train.txt\nval: images/val\nnames: {NAMES}\n")
    with pytest.raises(DataError, match=r"train\.txt:2: image .*gone\.jpg does not exist"):
        load(ultra / "data.yaml")


def test_export_inputs_from_a_yaml_are_its_letterboxed_split(ultra):
    """pea-export --calib-data / --val-data data.yaml: the split's images letterboxed as training
    saw them (train for calibration, val for parity), normalised as asked."""
    (ultra / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames: {NAMES}\n")
    data = load(ultra / "data.yaml")
    val = folder_inputs(ultra / "data.yaml", (1, 3, 64, 64), "validation", split="val", mean=(0.5,), std=(0.25,))
    assert torch.equal(val, (data.val.images.float() / 255.0 - 0.5) / 0.25)
    calib, what = letterboxed_images(ultra / "data.yaml", "train", 64, limit=5, seed=0)
    assert calib.shape == (5, 3, 64, 64) and "train images" in what
    assert all(any(torch.equal(c, t) for t in data.train.images) for c in calib)
    with pytest.raises(DataError, match="letterboxed to a square RGB input"):
        folder_inputs(ultra / "data.yaml", (1, 3, 64, 32), "calibration")


def test_pea_export_ultralytics_data_is_read_as_pea_train_reads_it(ultra, tmp_path):
    """pea-export --ultralytics --data: the same reader as det-folder (issue 31): a split listed in a
    .txt file and a list-valued split give the images and boxes pea-train reads (letterboxed, scaled
    to [0, 1]; the first `limit` of a split), and a Roboflow folder reads as its data.yaml."""
    from pea_deploy.integrations.ultralytics_export import dataset_splits, split_images

    train = sorted((ultra / "images" / "train").iterdir())
    (ultra / "train.txt").write_text("".join(f"./images/train/{p.name}\n" for p in train))
    (ultra / "data.yaml").write_text(f"train: train.txt\nval: [images/val]\nnames: {NAMES}\n")
    data = load(ultra / "data.yaml")
    source = dataset_splits(ultra / "data.yaml")
    calib, val = split_images(source, "train", 64, 5), split_images(source, "val", 64, None)
    assert torch.equal(calib.images, data.train.images[:5].float() / 255.0)
    assert torch.equal(val.images, data.val.images.float() / 255.0)
    for got, want in zip(val.targets, unpack_targets(data.val.labels), strict=True):
        assert torch.equal(got["boxes"], want["boxes"]) and torch.equal(got["labels"], want["labels"])
    assert calib.source.startswith("5 train images of") and "letterboxed to 64 px" in calib.source
    robo = write_roboflow_set(tmp_path / "robo")
    by_folder, by_yaml = dataset_splits(robo), dataset_splits(robo / "data.yaml")
    assert by_folder.val.images == by_yaml.val.images and by_folder.names == by_yaml.names == NAMES


def flat_copy(root):
    """The set's train images in pea-deploy's own layout without a val split (pea-train splits such a
    set by a seeded fraction; an export has no run to take that split from)."""
    flat = root / "flat"
    for image in (root / "images" / "train").iterdir():
        label = label_of(image)
        for src, dst in ((image, flat / "images" / image.name), (label, flat / "labels" / label.name)):
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    return flat


@pytest.mark.parametrize("text, pattern", [
    ("train: [images/train\nval: images/val\n", "not a valid YAML file (line 2)"),
    ("train: train.txt\nval: images/val\nnames: [a, b, c]\n", "train.txt does not exist"),
    (None, "no val split of its own"),
])
def test_pea_export_ultralytics_bad_data_is_one_line_and_exit_2(ultra, text, pattern):
    """--data is read before the checkpoint is loaded (here none exists): one line, exit 2."""
    from pea_deploy.cli.export import main

    data = ultra / "bad.yaml" if text else flat_copy(ultra)
    if text:
        data.write_text(text)
    result = CliRunner().invoke(main, ["--ultralytics", str(ultra / "best.pt"), "--trust-pickle", "--data", str(data),
                                       "--target", "ethos-u55", "--out", str(ultra / "export")])
    assert_one_error_line(result, "pea-export", 2, pattern)
    assert not (ultra / "export").exists()
