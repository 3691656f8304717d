import gzip
import pickle

import numpy as np
import pytest
import torch

from pea_deploy.data import augment, load_dataset
from pea_deploy.data.builtin import FASHION_MNIST_DIR, read_idx
from pea_deploy.errors import ConfigError, DataError


def test_digits_is_real_and_split_is_fixed():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert len(a.train) + len(a.val) == 1797 and a.num_classes == 10
    assert torch.equal(a.val.labels, b.val.labels)
    assert a.train.images.dtype == torch.uint8 and a.train.images.max() == 255


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ConfigError, match="fashion-mnist"):
        load_dataset("fashion")


def _write_idx(path, arr):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_idx_reader_and_truncation(tmp_path):
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", arr)
    assert (read_idx(tmp_path / "x.gz") == arr).all()
    raw = gzip.decompress((tmp_path / "x.gz").read_bytes())
    with gzip.open(tmp_path / "t.gz", "wb") as f:
        f.write(raw[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "t.gz")


@pytest.mark.skipif(not FASHION_MNIST_DIR.exists(), reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package():
    d = load_dataset("fashion-mnist")
    assert (len(d.train), len(d.val)) == (60000, 10000)
    assert d.train.images.shape[1:] == (1, 28, 28)
    assert sorted(d.train.labels.unique().tolist()) == list(range(10))


def test_missing_fashion_mnist_dir_says_how_to_install(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))


def test_cifar10_pickle_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": list(range(4))}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    d = load_dataset("cifar10", data_dir=str(tmp_path))
    assert len(d.train) == 20 and len(d.val) == 4 and d.train.images.shape[1:] == (3, 32, 32)
    (tmp_path / "test_batch").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot read CIFAR file"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_augment_is_seeded_and_shape_preserving():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).reshape(2, 1, 6, 6)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = augment(x, ("crop", "flip"), 2, g1), augment(x, ("crop", "flip"), 2, g2)
    assert torch.equal(a, b) and a.shape == x.shape
