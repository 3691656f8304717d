"""Where a YOLO-format detection set keeps its images, labels and class names, in the three shapes
people hand one over:

- an Ultralytics `data.yaml`: `path` (the root; relative to the yaml's folder, else, as Ultralytics
  resolves it, to the current directory; default: the yaml's folder), `train` and `val` (relative to
  the root: an image folder, a .txt file listing images, or a list of these; `../x` that does not
  exist is read as `x`, as Ultralytics does for Roboflow's yamls), `names` (a list, or a dict
  {index: name}) or `nc`;
- the Roboflow layout: `DIR/train/images`, `DIR/valid/images` (or `val/`; `test/` is not read),
  labels in `.../labels`, class names from `DIR/data.yaml`'s `names` or `DIR/classes.txt`;
- pea-deploy's own: `DIR/images/{train,val}` + `DIR/labels/{train,val}`, or `DIR/images` +
  `DIR/labels` split by a seeded val_fraction, optional `DIR/classes.txt`.

An image's label file is found as Ultralytics finds it: the last `/images/` of its path replaced by
`/labels/` and its suffix by `.txt` (pea-deploy's own layout: the same file under `labels/`). Only
file names are gathered here (a stat per listed image, no decoding), so a bad yaml or a missing path
is one line before anything is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..data.folders import IMAGE_SUFFIXES
from ..errors import DataError

YAML_SUFFIXES = (".yaml", ".yml")
ROBOFLOW_VAL = ("valid", "val")


@dataclass
class YoloSplit:
    """One split's image files and the label file of each (which need not exist: no objects)."""

    images: list[Path]
    labels: list[Path]


@dataclass
class YoloSource:
    """A YOLO-format set as found on disk: `val` None when it has no split of its own (a seeded
    split is drawn from `train` then); `names` None when nothing names the classes."""

    train: YoloSplit
    val: YoloSplit | None
    names: list[str] | None
    how: str            # where the files came from, for the run's record
    names_from: str = "classes.txt"   # the file that names the classes (for error messages)


def label_of(image: Path) -> Path:
    """Ultralytics' rule: the last /images/ of the path becomes /labels/, the suffix .txt."""
    text = os.fspath(image)
    marker, repl = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    head, found, tail = text.rpartition(marker)
    return Path((head + repl + tail) if found else text).with_suffix(".txt")


def images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _split_of(images: list[Path], where: str) -> YoloSplit:
    if not images:
        raise DataError(f"{where} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return YoloSplit(images, [label_of(p) for p in images])


def _listed(listing: Path) -> list[Path]:
    """The images a .txt file lists, one a line: `./x` relative to the file's folder, as Ultralytics
    reads them; other relative paths relative to the current directory (Ultralytics' rule too)."""
    try:
        lines = listing.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{listing}: cannot read the image list ({e})") from None
    found = []
    for n, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry:
            continue
        path = listing.parent / entry[2:] if entry.startswith("./") else Path(entry)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue  # Ultralytics skips what is not an image by its suffix
        if not path.is_file():
            raise DataError(f"{listing}:{n}: image {path} does not exist")
        found.append(path)
    return found


def _entry_images(entry: Path) -> list[Path]:
    return images_under(entry) if entry.is_dir() else _listed(entry)


# -- data.yaml --------------------------------------------------------------------------------------

def _load_yaml(path: Path) -> dict:
    import yaml

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the dataset yaml ({e})") from None
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise DataError(f"{path}: not a valid YAML file{where}: {problem}") from None
    if not isinstance(spec, dict):
        raise DataError(f"{path}: a dataset yaml is a mapping with train:, val: and names:, this holds "
                        f"{type(spec).__name__}")
    return spec


def class_names(spec: dict, where: Path) -> list[str] | None:
    """`names` as a list or a dict {0: name, ...} (keys 0..n-1), else `nc` numbered names, else None."""
    names, nc = spec.get("names"), spec.get("nc")
    if isinstance(names, dict):
        try:
            by_index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DataError(f"{where}: 'names' keys must be class indices 0, 1, ..., got "
                            f"{', '.join(map(str, names))}") from None
        if sorted(by_index) != list(range(len(by_index))):
            raise DataError(f"{where}: 'names' keys must be the class indices 0..{len(by_index) - 1}, got "
                            f"{', '.join(map(str, sorted(by_index)))}")
        names = [by_index[i] for i in range(len(by_index))]
    elif isinstance(names, list):
        names = [str(n) for n in names]
    elif names is not None:
        raise DataError(f"{where}: 'names' must be a list or a mapping of index to name, got {type(names).__name__}")
    if names is not None and not names:
        raise DataError(f"{where}: 'names' is empty (at least one class)")
    if nc is not None:
        if isinstance(nc, bool) or not isinstance(nc, (int, float)) or nc != int(nc) or nc < 1:
            raise DataError(f"{where}: 'nc' must be a positive whole number, got {nc!r}")
        if names is not None and len(names) != int(nc):
            raise DataError(f"{where}: 'names' lists {len(names)} classes but 'nc' says {int(nc)}")
        names = names or [f"class{i}" for i in range(int(nc))]
    return names


def _root(spec: dict, yaml_path: Path) -> Path:
    base = yaml_path.parent
    given = spec.get("path")
    if given in (None, ""):
        return base
    if not isinstance(given, str):
        raise DataError(f"{yaml_path}: 'path' must be a folder name, got {type(given).__name__}")
    root = Path(given).expanduser()
    if root.is_absolute():
        found = root
    else:
        found = next((c for c in (base / root, Path.cwd() / root) if c.is_dir()), base / root)
    if not found.is_dir():
        raise DataError(f"{yaml_path}: 'path' {given} does not exist (looked in {base / root} and {Path.cwd() / root})")
    return found


def _yaml_entry(spec: dict, key: str, root: Path, yaml_path: Path) -> YoloSplit:
    value = spec.get(key)
    if value in (None, "", []):
        raise DataError(f"{yaml_path}: no '{key}' entry (a data.yaml names its train: and val: images)")
    entries = value if isinstance(value, list) else [value]
    images = []
    for entry in entries:
        if not isinstance(entry, str):
            raise DataError(f"{yaml_path}: '{key}' must be a path or a list of paths, got {entry!r}")
        path = Path(entry).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.exists() and entry.startswith("../"):
            path = root / entry[3:]
        if not path.exists():
            raise DataError(f"{yaml_path}: '{key}' path {path} does not exist")
        images += _entry_images(path)
    return _split_of(images, f"{yaml_path}: '{key}' ({', '.join(map(str, entries))})")


def read_data_yaml(path: str | Path) -> YoloSource:
    yaml_path = Path(path)
    if not yaml_path.is_file():
        raise DataError(f"dataset yaml {yaml_path} does not exist")
    spec = _load_yaml(yaml_path)
    names = class_names(spec, yaml_path)
    root = _root(spec, yaml_path)
    if "val" not in spec and "validation" in spec:  # Ultralytics reads the older key too
        spec = {**spec, "val": spec["validation"]}
    train = _yaml_entry(spec, "train", root, yaml_path)
    val = _yaml_entry(spec, "val", root, yaml_path)
    return YoloSource(train, val, names, f"{yaml_path}: Ultralytics data.yaml, root {root}", yaml_path.name)


# -- folders ------------------------------------------------------------------------------------------

def _names_in_folder(root: Path) -> tuple[list[str] | None, str]:
    """(class names, the file they came from): a data.yaml's `names` (its paths are not read: the
    folder's layout says where the images are), else classes.txt, one name a line."""
    for candidate in (root / "data.yaml", root / "data.yml"):
        if candidate.is_file():
            return class_names(_load_yaml(candidate), candidate), candidate.name
    listed = root / "classes.txt"
    if listed.is_file():
        names = [n.strip() for n in listed.read_text(encoding="utf-8-sig").splitlines() if n.strip()]
        return names or None, listed.name
    return None, listed.name


def _mirrored(images: Path, labels: Path) -> YoloSplit:
    """pea-deploy's own layout: each image's label file at the same place below `labels`."""
    split = _split_of(images_under(images), str(images))
    split.labels = [labels / f.relative_to(images).with_suffix(".txt") for f in split.images]
    return split


def _own_layout(root: Path, names, names_from: str) -> YoloSource:
    images, labels = root / "images", root / "labels"
    if (images / "train").is_dir():
        if not (images / "val").is_dir():
            raise DataError(f"{images} has train/ but no val/")
        return YoloSource(_mirrored(images / "train", labels / "train"), _mirrored(images / "val", labels / "val"),
                          names, f"{root}: images/ and labels/, their train/ and val/ folders", names_from)
    return YoloSource(_mirrored(images, labels), None, names, f"{root}: images/ and labels/", names_from)


def find_yolo_source(path: str | Path) -> YoloSource:
    """The set at `path`: a data.yaml, a Roboflow folder, or pea-deploy's own layout."""
    where = Path(path)
    if where.suffix.lower() in YAML_SUFFIXES or where.is_file():
        return read_data_yaml(where)
    if not where.is_dir():
        raise DataError(f"{where} does not exist (give a data.yaml or a folder with images/ and labels/)")
    names, names_from = _names_in_folder(where)
    if (where / "images").is_dir():
        return _own_layout(where, names, names_from)
    val_dir = next((where / v / "images" for v in ROBOFLOW_VAL if (where / v / "images").is_dir()), None)
    if (where / "train" / "images").is_dir() and val_dir is not None:
        train = _split_of(images_under(where / "train" / "images"), str(where / "train" / "images"))
        val = _split_of(images_under(val_dir), str(val_dir))
        return YoloSource(train, val, names, f"{where}: Roboflow layout, train/ and {val_dir.parent.name}/",
                          names_from)
    raise DataError(f"{where} is not a YOLO-format set: expected a data.yaml, images/ + labels/, or "
                    f"train/images + valid/images (Roboflow)")


def is_yolo_source(path: str | Path) -> bool:
    """Whether `path` looks like a detection set (a yaml, or a folder in one of the layouts)."""
    where = Path(path)
    if where.suffix.lower() in YAML_SUFFIXES:
        return True
    return where.is_dir() and ((where / "images").is_dir() or (where / "train" / "images").is_dir())
