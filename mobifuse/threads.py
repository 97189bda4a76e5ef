"""One process-wide thread pool for the frame pipeline's side-by-side work.

`prepare_frame` runs SGBM's right view, the cost volume and the ToF branch beside the left
view, and the bilateral denoising splits its rows: all in threads, because OpenCV, numpy and
scipy release the GIL in their array loops. Starting fresh threads for each frame cost about
2 ms a thread on the development machine (measured with cProfile, five a frame), so the
threads are started once and kept. No task submitted here waits on another task of the pool
(only the caller waits), so the pool cannot deadlock, whatever its size or the number of
threads calling `fuse()` at once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["pool"]

_POOL: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The shared executor (4 workers: the most any frame submits at once)."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(4, thread_name_prefix="mobifuse")
        return _POOL
