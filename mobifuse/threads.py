"""One process-wide thread pool for the frame pipeline's side-by-side work.

`prepare_frame` runs SGBM's right view, the cost volume and the ToF branch beside the left
view, and the bilateral denoising splits its rows: all in threads, because OpenCV, numpy and
scipy release the GIL in their array loops. The threads are started once and kept, instead of
once per frame. No task submitted here waits on another task of the pool (only the caller
waits), so the pool cannot deadlock, whatever its size or the number of threads calling
`fuse()` at once. A forked child (multiprocessing's fork start method) gets a fresh pool: the
parent's worker threads do not exist there. Callers wait for every task they submitted before
they return or raise (`wait_all`), so no work outlives the call that started it; the first
error raised (the caller's own, else a task's in the order the caller reads them) is the one
the caller sees.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

__all__ = ["pool", "wait_all"]

_POOL: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The shared executor (4 workers: the most any frame submits at once)."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(4, thread_name_prefix="mobifuse")
        return _POOL


def wait_all(futures: list[Future]) -> None:
    """Block until every future has finished (whatever it returned or raised)."""
    wait(futures)


def _after_fork_in_child() -> None:
    global _POOL, _LOCK
    _POOL, _LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
