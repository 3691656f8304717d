"""Datasets that ship inside installed packages, so nothing downloads at run time.

- digits: scikit-learn's 1,797 8x8 grey digits (inside the scikit-learn wheel; BSD-3).
- fashion-mnist: Zalando's 60k/10k 28x28 grey images (Debian package `dataset-fashion-mnist`,
  MIT licence; idx .gz files under /usr/share/datasets/fashion-mnist).
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .images import DatasetSplits, TensorImages, seeded_split

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                   "bag", "ankle-boot"]


def load_digits(val_fraction: float = 0.2, split_seed: int = 0, **_) -> DatasetSplits:
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    # values are 0..16: scale to the 0..255 range every other dataset uses
    images = torch.from_numpy((bunch.images * (255.0 / 16.0)).round().astype(np.uint8))[:, None]
    data = TensorImages(images, torch.from_numpy(bunch.target.astype(np.int64)))
    train, val = seeded_split(data, val_fraction, split_seed)
    return DatasetSplits("digits", train, val, 10, 1, 8, [str(i) for i in range(10)],
                         source="scikit-learn wheel: sklearn/datasets/data/digits.csv.gz")


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (.gz or plain) into a numpy array, checking its header against its size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte idx file")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims}, body has {len(body)} bytes")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def load_fashion_mnist(data_dir: str | None = None, **_) -> DatasetSplits:
    root = Path(data_dir or os.environ.get("PEA_FASHION_MNIST_DIR") or FASHION_MNIST_DIR)
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    splits = {}
    for split, (img_name, lbl_name) in names.items():
        found = []
        for stem in (img_name, lbl_name):
            cands = [root / (stem + ".gz"), root / stem]
            hit = next((c for c in cands if c.exists()), None)
            if hit is None:
                raise DataError(
                    f"Fashion-MNIST not found in {root} (missing {stem}.gz); install it with "
                    f"'apt-get install dataset-fashion-mnist' or pass --data-dir")
            found.append(read_idx(hit))
        images, labels = found
        splits[split] = TensorImages(torch.from_numpy(images.copy())[:, None],
                                     torch.from_numpy(labels.astype(np.int64)))
    return DatasetSplits("fashion-mnist", splits["train"], splits["val"], 10, 1, 28, FASHION_CLASSES,
                         source=f"{root} (Debian dataset-fashion-mnist; official test split as val)")
