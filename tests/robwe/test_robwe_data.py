"""Loaders (embedded data and the real formats users bring) and their bad-input errors."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from robwe.config import DataConfig
from robwe.data import federate, load_cifar10, load_dataset, load_digits, load_mnist_idx, read_idx
from shared.config import from_dict
from shared.errors import ConfigError, DataError


def write_idx(path, arr: np.ndarray, gz: bool = False) -> None:
    """An IDX file as the MNIST site ships it: magic 0x00000803 / 0x00000801, dims, bytes."""
    arr = np.asarray(arr, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
    raw += arr.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_read_idx_round_trip(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (7, 28, 28))
    write_idx(tmp_path / "a-idx3-ubyte", imgs)
    write_idx(tmp_path / "b.gz", imgs, gz=True)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), imgs)
    assert np.array_equal(read_idx(tmp_path / "b.gz"), imgs)


def test_read_idx_bad_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "missing")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "t", np.zeros((5, 4, 4)))
    (tmp_path / "t").write_bytes((tmp_path / "t").read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "t")
    (tmp_path / "z.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="gzip"):
        read_idx(tmp_path / "z.gz")


def test_load_mnist_idx(tmp_path):
    rng = np.random.default_rng(1)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (30, 28, 28)), True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(30) % 10, True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (10, 28, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(10))
    ds = load_mnist_idx(tmp_path)
    assert ds.x.shape == (40, 1, 28, 28) and ds.x.max() <= 1.0 and ds.num_classes == 10
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(9))
    with pytest.raises(DataError, match="10 images but"):
        load_mnist_idx(tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_mnist_idx(tmp_path / "nope")


def _cifar_batch(path, n, rng, data=None):
    d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8) if data is None else data,
         b"labels": list(rng.integers(0, 10, n))}
    with open(path, "wb") as f:
        pickle.dump(d, f)


def test_load_cifar10(tmp_path):
    rng = np.random.default_rng(0)
    _cifar_batch(tmp_path / "data_batch_1", 12, rng)
    _cifar_batch(tmp_path / "test_batch", 5, rng)
    ds = load_cifar10(tmp_path)
    assert ds.x.shape == (17, 3, 32, 32)
    # channel planes: first 1024 bytes are R, row-major 32x32
    with open(tmp_path / "data_batch_1", "rb") as f:
        raw = pickle.load(f)[b"data"]
    assert np.allclose(ds.x[0, 0].reshape(-1), raw[0, :1024] / 255.0)


def test_cifar10_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    _cifar_batch(tmp_path / "data_batch_1", 4, rng)
    (tmp_path / "data_batch_1").write_bytes((tmp_path / "data_batch_1").read_bytes()[:50])
    with pytest.raises(DataError, match="corrupt CIFAR batch"):
        load_cifar10(tmp_path)
    _cifar_batch(tmp_path / "data_batch_1", 4, rng, data=np.zeros((4, 100), np.uint8))
    with pytest.raises(DataError, match="3072"):
        load_cifar10(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no CIFAR-10 batches"):
        load_cifar10(tmp_path / "empty")


def test_unknown_dataset_and_missing_path_are_config_errors():
    with pytest.raises(ConfigError, match="imagenet"):
        from_dict(DataConfig, {"dataset": "imagenet"})
    with pytest.raises(ConfigError, match="needs data.path"):
        from_dict(DataConfig, {"dataset": "cifar10"})


def test_digits_federated_split():
    ds = load_digits()
    assert ds.x.shape == (1797, 1, 8, 8) and 0 <= ds.x.min() and ds.x.max() <= 1
    cfg = DataConfig(dataset="digits", partition="klabel", k=3, num_clients=6)
    fd = federate(ds, cfg, seed=0)
    for tr, te in zip(fd.train, fd.test):
        assert len(set(ds.y[tr].tolist())) == 3 and set(ds.y[te]) <= set(ds.y[tr])
    assert load_dataset(cfg).name == "digits"
