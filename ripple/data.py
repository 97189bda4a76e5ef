"""Activation masks: from the trained model on the offline corpus, a seeded simulator, and files.

- `corpus_masks`: oracle masks (L, T, n) of a model on a split of a `shared.text` source
  ("stdlib-py" or "pydoc-topics"); calibration and test text never overlap (hash splits).
- `synthetic_masks`: a documented, seeded co-activation simulator (latent neuron groups that
  fire together plus independent background firing) used to time the placement at sizes the
  small model does not have (16K neurons) and to test that placement recovers planted structure.
  It is never used for the headline I/O figures.
- `save_masks` / `load_masks`: bit-packed `.npz` files (keys `bits`, `shape`), validated on load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ripple.coactivation import check_masks
from shared.errors import DataError
from shared.io import atomic_path
from shared.validate import read_npz

__all__ = ["corpus_masks", "synthetic_masks", "save_masks", "load_masks"]


def corpus_masks(model, source: str, split: str, n_tokens: int, seq_len: int,
                 device: str = "cpu") -> np.ndarray:
    """bool (L, T, n) masks of `model` on `n_tokens` of `source`/`split`."""
    from ripple.models import collect_masks
    from shared.text import load_corpus

    tokens = load_corpus(split, source, max_bytes=n_tokens + seq_len + 1)
    return collect_masks(model, tokens, n_tokens, seq_len, device)


def synthetic_masks(n: int, tokens: int, group_size: int = 16, groups_per_token: int = 4,
                    member_p: float = 0.8, noise_p: float = 0.005, layers: int = 1,
                    seed: int = 0) -> np.ndarray:
    """Seeded co-activation simulator -> bool (layers, tokens, n).

    Neurons are split into n // group_size latent groups of random (scattered) ids; each token
    switches on `groups_per_token` groups chosen with Zipf-like popularity, and each member of an
    active group fires with prob. `member_p`; every neuron also fires with prob. `noise_p`.
    """
    rng = np.random.default_rng(seed)
    n_groups = max(1, n // group_size)
    out = np.zeros((layers, tokens, n), dtype=bool)
    pop = 1.0 / np.arange(1, n_groups + 1) ** 0.8
    pop /= pop.sum()
    for li in range(layers):
        group_of = rng.permutation(n) % n_groups  # scattered membership
        chosen = rng.choice(n_groups, size=(tokens, groups_per_token), p=pop)
        on = np.zeros((tokens, n_groups), dtype=bool)
        on[np.arange(tokens)[:, None], chosen] = True
        fire = on[:, group_of] & (rng.random((tokens, n)) < member_p)
        out[li] = fire | (rng.random((tokens, n)) < noise_p)
    return out


def save_masks(path: str | Path, masks: np.ndarray) -> None:
    m = check_masks(masks, ndim=3)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, bits=np.packbits(m, axis=-1),
                                shape=np.asarray(m.shape, dtype=np.int64))


def load_masks(path: str | Path, n: int | None = None) -> np.ndarray:
    """bool (L, T, n) from `save_masks`; DataError on a missing/corrupt file or wrong shape."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask file not found: {path}")
    z = read_npz(path, ("bits", "shape"), "mask file")
    bits, shape = z["bits"], z["shape"]
    if bits.dtype != np.uint8 or shape.dtype.kind not in "iu" or shape.shape != (3,):
        raise DataError(f"{path}: 'bits' must be uint8 and 'shape' three integers")
    shape = tuple(int(s) for s in shape)
    if bits.ndim != 3 or bits.shape[:2] != shape[:2] or \
            not bits.shape[2] * 8 - 8 < shape[2] <= bits.shape[2] * 8:
        raise DataError(f"{path}: packed bits {bits.shape} do not match shape {shape}")
    m = np.unpackbits(bits, axis=-1, count=shape[2]).astype(bool)
    return check_masks(m, n=n, name=str(path), ndim=3)
