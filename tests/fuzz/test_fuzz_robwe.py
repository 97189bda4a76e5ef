"""Fuzz: robwe loaders (MNIST IDX files, CIFAR-10 python batches).

IDX dimensions are bounded by the payload, CIFAR batches unpickle only arrays after an opcode
check, and labels outside the 10 classes are refused.
"""

import gzip
import pickle

import numpy as np
from fuzz_harness import (
    Target,
    assert_clean,
    assert_rejects,
    fuzz_settings,
    mutated_files_test,
)
from hypothesis import given
from hypothesis import strategies as st

from robwe.data import load_cifar10, load_mnist_idx


def _idx(arr: np.ndarray, code: int) -> bytes:
    dims = b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return bytes([0, 0, code, arr.ndim]) + dims + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _seed_mnist(d):
    rng = np.random.default_rng(0)
    (d / "train-images-idx3-ubyte").write_bytes(
        _idx(rng.integers(0, 255, (6, 4, 4), dtype=np.uint8), 0x08))
    (d / "train-labels-idx1-ubyte").write_bytes(_idx(np.arange(6, dtype=np.uint8), 0x08))
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(
        _idx(rng.integers(0, 255, (2, 4, 4), dtype=np.uint8), 0x08)))
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(
        _idx(np.array([3, 9], np.uint8), 0x08)))


def _check_images(ds, d):
    assert ds.x.dtype == np.float32 and ds.x.ndim == 4 and len(ds.x) == len(ds.y) > 0
    assert ds.x.min() >= 0 and ds.x.max() <= 1
    assert ds.y.min() >= 0 and ds.y.max() < 10


def _seed_cifar(d):
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1", 3), ("test_batch", 2)):
        with open(d / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                         b"labels": list(range(n))}, f, protocol=2)


TARGETS = [
    Target("mnist-idx", _seed_mnist, load_mnist_idx, _check_images,
           ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz")),
    Target("cifar10", _seed_cifar, load_cifar10, _check_images, ("data_batch_1", "test_batch")),
]
BY_NAME = {t.name: t for t in TARGETS}


test_mutated_files = mutated_files_test(TARGETS, 360, files=4)


@fuzz_settings(300)
@given(dims=st.lists(st.sampled_from([0, 1, 4, 6, -1, -4, 2**31 - 1, 65536]), min_size=1,
                     max_size=4),
       code=st.sampled_from([0x08, 0x09, 0x0B, 0x0D, 0x0E, 0x07]), payload=st.integers(0, 200))
def test_structured_idx_header(tmp_path_factory, dims, code, payload):
    t = BY_NAME["mnist-idx"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    head = bytes([0, 0, code, len(dims)]) + b"".join((x % 2**32).to_bytes(4, "big") for x in dims)
    (d / "train-images-idx3-ubyte").write_bytes(head + bytes(payload))
    assert_clean(t, d)


@fuzz_settings(180)
@given(data=st.sampled_from(["ok", "float", "nan", "short", "3d", "str"]),
       labels=st.sampled_from([[0, 1, 2], [0, 255, 2], [-1, 0, 1], [0.5, 1, 2], [0, 1], "x"]))
def test_structured_cifar(tmp_path_factory, data, labels):
    t = BY_NAME["cifar10"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    rng = np.random.default_rng(1)
    arr = {"ok": rng.integers(0, 255, (3, 3072), dtype=np.uint8),
           "float": rng.random((3, 3072)) * 255, "nan": np.full((3, 3072), np.nan),
           "short": np.zeros((3, 100), np.uint8), "3d": np.zeros((3, 3072, 1), np.uint8),
           "str": "pixels"}[data]
    with open(d / "data_batch_1", "wb") as f:
        pickle.dump({b"data": arr, b"labels": labels}, f)
    assert_clean(t, d)


# --- regressions


def test_idx_negative_and_huge_dims(tmp_path):
    t = BY_NAME["mnist-idx"]
    for dims, words in (((-6, -4, 4), "must be positive"), ((6, 40000, 40000), "declares"),
                        ((0, 2**31 - 1, 2**31 - 1), "too large")):
        d = t.fresh(tmp_path)
        head = bytes([0, 0, 8, 3]) + b"".join((x % 2**32).to_bytes(4, "big") for x in dims)
        (d / "train-images-idx3-ubyte").write_bytes(head + bytes(96 if dims[0] else 0))
        assert_rejects(t, d, "train-images-idx3-ubyte", words)


def test_labels_outside_the_classes_and_foreign_pickles(tmp_path):
    t = BY_NAME["mnist-idx"]
    d = t.fresh(tmp_path)
    (d / "train-labels-idx1-ubyte").write_bytes(_idx(np.full(6, 255, np.uint8), 0x08))
    assert_rejects(t, d, "label 255 outside 0..9")
    t = BY_NAME["cifar10"]
    d = t.fresh(tmp_path)
    with open(d / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0],
                     b"x": pickle.PickleBuffer}, f)
    assert_rejects(t, d, "data_batch_1", "refusing")
    d = t.fresh(tmp_path)
    # a BINBYTES8 opcode declaring 2**40 bytes: refused before anything is allocated
    (d / "test_batch").write_bytes(b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"abc")
    assert_rejects(t, d, "test_batch", "corrupt CIFAR batch")
