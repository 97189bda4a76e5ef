"""Storage: a modelled UFS 4.0 device, and real O_DIRECT reads of a layout file.

`UFSModel` (Ripple §2.2, Fig. 4): reads are issued in batches that fill the 32-entry command
queue; a batch of reads costs t = max(bytes / BW, ops / IOPS_max) with IOPS_max = BW / knee, so
bandwidth grows linearly with read size up to the knee (24 KB) and is flat above it. A token's
latency is the sum over its batches. Extents: lengths (E,) bytes, in issue order.

`DirectReader` replays extents against a real file with `O_DIRECT` (page cache bypassed) and
page-aligned buffers via `os.preadv`, at queue depth 1 (one thread) or ~32 (a thread pool; the
GIL is released in the syscall). Figures from it are *local disk*, never UFS. On filesystems
without O_DIRECT (tmpfs, some overlays) it falls back to buffered reads, logs a warning and sets
`direct = False`, which callers report next to the figures.
"""

from __future__ import annotations

import logging
import mmap
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from shared.errors import DataError

__all__ = ["UFSModel", "DirectReader"]

log = logging.getLogger(__name__)


@dataclass
class UFSModel:
    """Queue-batched bandwidth/IOPS model of a UFS device. All sizes in bytes, times in s."""

    bandwidth: float = 2.9e9
    knee_bytes: int = 24576
    queue_depth: int = 32

    @property
    def iops_max(self) -> float:
        return self.bandwidth / self.knee_bytes

    def latency(self, lengths: np.ndarray) -> float:
        """Seconds to serve reads of `lengths` (E,) bytes: Σ_batches max(bytes/BW, ops/IOPS)."""
        ln = np.asarray(lengths, dtype=np.float64)
        if ln.size == 0:
            return 0.0
        if ln.ndim != 1 or (ln <= 0).any() or not np.isfinite(ln).all():
            raise DataError(f"extent lengths must be a 1-D array of positive bytes, got {ln}")
        starts = np.arange(0, ln.size, self.queue_depth)
        batch_bytes = np.add.reduceat(ln, starts)
        batch_ops = np.diff(np.append(starts, ln.size))
        return float(np.maximum(batch_bytes / self.bandwidth, batch_ops / self.iops_max).sum())

    def lower_bound(self, nbytes: float) -> float:
        """The sequential limit: the bytes at full bandwidth, as one large read."""
        return float(nbytes) / self.bandwidth


class DirectReader:
    """Timed reads of byte extents of one file, O_DIRECT where the filesystem allows it."""

    def __init__(self, path, page: int = 4096, workers: int = 32):
        self.path, self.page, self.workers = str(path), page, workers
        if not os.path.isfile(self.path):
            raise DataError(f"file not found: {self.path}")
        self.direct = hasattr(os, "O_DIRECT")
        self.fd = -1
        if self.direct:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
                os.pread(self.fd, 0, 0)
                probe = mmap.mmap(-1, page)
                os.preadv(self.fd, [probe], 0)
                probe.close()
            except OSError as e:
                if self.fd >= 0:
                    os.close(self.fd)
                log.warning("O_DIRECT not supported for %s (%s); falling back to buffered "
                            "reads: figures include the page cache", self.path, e)
                self.direct = False
        if not self.direct:
            self.fd = os.open(self.path, os.O_RDONLY)
        self.buf = mmap.mmap(-1, 1 << 20)  # page-aligned by construction
        self.pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.buf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _aligned(self, offsets: np.ndarray, lengths: np.ndarray):
        lo = (np.asarray(offsets, dtype=np.int64) // self.page) * self.page
        hi = -(-(np.asarray(offsets, dtype=np.int64) + lengths) // self.page) * self.page
        return lo, hi - lo

    def read(self, offsets: np.ndarray, lengths: np.ndarray, queue_depth: int = 1) -> float:
        """Read the extents (rounded out to pages); return wall seconds. Data lands in `buf`."""
        lo, ln = self._aligned(offsets, lengths)
        pos = np.concatenate([[0], np.cumsum(ln)])
        if pos[-1] > len(self.buf):
            self.buf.close()
            self.buf = mmap.mmap(-1, int(-(-pos[-1] // (1 << 20)) * (1 << 20)))
        view = memoryview(self.buf)
        jobs = [(view[int(p): int(p + n)], int(o)) for p, n, o in zip(pos[:-1], ln, lo)]
        t0 = time.perf_counter()
        if queue_depth <= 1 or self.pool is None:
            got = [os.preadv(self.fd, [b], o) for b, o in jobs]
        else:
            got = list(self.pool.map(lambda j: os.preadv(self.fd, [j[0]], j[1]), jobs))
        dt = time.perf_counter() - t0
        del jobs
        view.release()
        if any(g <= 0 for g in got):
            raise DataError(f"{self.path}: short read (extent beyond end of file?)")
        return dt
