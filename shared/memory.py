"""Memory meters: an exact saved-for-backward byte counter, and CUDA peak memory.

`SavedTensorMeter` hooks `torch.autograd.graph.saved_tensors_hooks`: every tensor autograd saves
for backward passes through `pack`, and we record its *storage* (data pointer + nbytes of the
untyped storage). A storage saved twice (the same tensor saved by two ops, or two views of one
buffer) counts once, which is what the allocator actually holds. Parameters and other leaf
tensors that already live in memory can be excluded with `exclude=` (e.g. model weights).

    >>> with SavedTensorMeter() as m:
    ...     loss = model(x).sum()
    >>> m.bytes   # bytes autograd holds for backward
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch

__all__ = ["SavedTensorMeter", "storage_key", "cuda_peak"]


def storage_key(t: torch.Tensor) -> tuple[int, int, str]:
    """(data_ptr, nbytes, device) of the storage behind `t`; views of one buffer share it. A fake
    tensor (`torch._subclasses.FakeTensorMode`: shapes, no data) has no data pointer, but one
    Python storage object per storage: its identity stands in for the pointer."""
    from torch._subclasses.fake_tensor import FakeTensor

    s = t.untyped_storage()
    return (id(s) if isinstance(t, FakeTensor) else s.data_ptr(), s.nbytes(), str(t.device))


class SavedTensorMeter(contextlib.AbstractContextManager):
    """Count the bytes of distinct storages saved for backward inside the `with` block.

    Attributes after exit: `bytes` (total), `count` (distinct storages), `by_dtype`.
    `exclude`: tensors (e.g. parameters) whose storages are not activations and not counted.
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()):
        self._exclude = {storage_key(t) for t in exclude}
        self._seen: dict[tuple[int, int, str], int] = {}
        # Strong refs inside the block: a freed storage's address could otherwise be reused by
        # a later tensor and wrongly deduplicated (e.g. forward+backward+forward in one block).
        self._refs: list = []
        self.by_dtype: dict[str, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t: torch.Tensor):
        key = storage_key(t)
        if key not in self._exclude and key not in self._seen and key[1] > 0:
            self._seen[key] = key[1]
            self._refs.append(t.untyped_storage())
            self.by_dtype[str(t.dtype)] = self.by_dtype.get(str(t.dtype), 0) + key[1]
        return t

    @staticmethod
    def _unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        self._refs.clear()

    @property
    def bytes(self) -> int:
        return sum(self._seen.values())

    @property
    def count(self) -> int:
        return len(self._seen)


@contextlib.contextmanager
def cuda_peak(device: int | str | None = None) -> Iterator[dict]:
    """Yield a dict filled on exit with `peak` (max allocated in the block) and `before` bytes."""
    out: dict = {}
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    out["before"] = torch.cuda.memory_allocated(device)
    try:
        yield out
    finally:
        torch.cuda.synchronize(device)
        out["peak"] = torch.cuda.max_memory_allocated(device)
        out["activation"] = out["peak"] - out["before"]
