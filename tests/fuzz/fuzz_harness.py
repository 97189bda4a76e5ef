"""The fuzz harness: seeded byte mutations, a guarded call and the outcome rules every loader
must keep.

A *target* is one loader or entry point: `seed(dir)` writes a valid input into `dir` (what the
package reads), `mutable` names the files the byte mutator may corrupt, `load(dir)` calls the
loader, `check(result, dir)` asserts that an accepted result is valid (finite, right shape and
units). `outcome(target, dir)` runs `load` under a time limit and tracemalloc and says which of

    accepted     returned, and `check` passed
    rejected     raised the project's own error (UserError) in one line naming the file/field
    foreign      raised anything else (or a UserError spread over lines / naming nothing)
    hang         ran past the time limit
    memory       allocated more than a small multiple of the input's size
    wrong        returned, but `check` failed (a silently wrong result)

happened. Tests assert accepted/rejected; `fuzz_survey.py` counts all six over a mutation set of its
own. Mutations are data (a list of (op, position, payload) tuples), so hypothesis draws and
shrinks them and `fuzz_survey.py` draws them from a seeded `random.Random`.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import traceback
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from shared.errors import UserError

SLOW = False  # set by tests/fuzz/conftest.py under --runslow: 10x the examples
TIME_LIMIT_S = 5.0
MEMORY_RATIO = 32  # peak traced allocation <= ratio x input bytes + slack
MEMORY_SLACK = 48 << 20


def fuzz_settings(examples: int) -> settings:
    """Seeded (derandomized: CI replays the same inputs) and bounded; 10x under --runslow."""
    return settings(max_examples=examples * (10 if SLOW else 1), derandomize=True,
                    deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# ----------------------------------------------------------------------------- mutations

INTERESTING_BYTES = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0x20, 0x0A, 0x2D, 0x22, 0x5B)
INTERESTING_INTS = (0, -1, 1, 2**31 - 1, 2**31, 2**32 - 1, 10**9, 2**63 - 1, -(2**31), 255)
NUMBER_TEXT = (b"0", b"-1", b"-7", b"999999999", b"1e9", b"nan", b"inf", b"-inf", b"1" * 30,
               b"0.0", b"1e400", b"3.5")
N_OPS = 12


def apply_mutations(data: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (op, pos, payload) edits in order: flip, set byte, truncate, insert, delete,
    overwrite an interesting int (LE/BE, 4/8 bytes), replace a number in text, duplicate a
    range, insert non-UTF-8 bytes, drop a line (a missing key), repeat a line (an extra or
    duplicate key), insert deep nesting."""
    b = bytearray(data)
    for op, pos, payload in ops:
        n = len(b)
        at = pos % (n + 1)
        k = payload[0] if payload else 1
        if op == 0 and n:
            b[pos % n] ^= k or 1
        elif op == 1 and n:
            b[pos % n] = INTERESTING_BYTES[k % len(INTERESTING_BYTES)]
        elif op == 2:
            del b[at:]
        elif op == 3:
            b[at:at] = payload
        elif op == 4:
            del b[at:at + len(payload) * 7 + 1]
        elif op == 5:
            v = INTERESTING_INTS[k % len(INTERESTING_INTS)]
            size, order = (4, 8)[k % 2], ("little", "big")[(k // 2) % 2]
            raw = (v % (1 << (8 * size))).to_bytes(size, order)
            b[at:at + size] = raw
        elif op == 6:
            runs = [m for m in _numbers(bytes(b))]
            if runs:
                s, e = runs[pos % len(runs)]
                b[s:e] = NUMBER_TEXT[k % len(NUMBER_TEXT)]
        elif op == 7 and n:
            s = pos % n
            chunk = b[s:s + (k % 64) + 1]
            b[s:s] = chunk
        elif op == 8:
            b[at:at] = b"\xff\xfe\xc3"
        elif op in (9, 10):
            lines = bytes(b).split(b"\n")
            i = pos % len(lines)
            lines[i:i + 1] = [] if op == 9 else [lines[i], lines[i]]
            b = bytearray(b"\n".join(lines))
        elif op == 11:
            depth = (1000, 30_000)[k % 2]
            b[at:at] = (b"[", b"{a: ")[k % 4 // 2] * depth
    return bytes(b)


def _numbers(data: bytes) -> list[tuple[int, int]]:
    import re

    return [m.span() for m in re.finditer(rb"-?\d+(?:\.\d+)?(?:e-?\d+)?", data[:200_000])]


def mutation_ops() -> st.SearchStrategy:
    """Hypothesis strategy of 1-4 mutation ops (shrinks to a single small edit)."""
    op = st.tuples(st.integers(0, N_OPS - 1), st.integers(0, 2**20),
                   st.binary(min_size=1, max_size=8))
    return st.lists(op, min_size=1, max_size=4)


def random_ops(rng) -> list[tuple[int, int, bytes]]:
    """The same op shapes from a `random.Random` (the survey's independent draw)."""
    return [(rng.randrange(N_OPS), rng.randrange(2**20),
             bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))))
            for _ in range(rng.randint(1, 4))]


# ----------------------------------------------------------------------------- targets


@dataclass
class Target:
    name: str
    seed: Callable[[Path], None]  # write a valid input into the folder
    load: Callable[[Path], Any]  # call the loader on the folder
    check: Callable[[Any, Path], None]  # assert an accepted result is valid
    mutable: tuple[str, ...] = ()  # files (relative to the folder) the byte mutator corrupts
    names: Callable[[Path], list[str]] | None = None  # one must appear in an error message
    cache: dict = field(default_factory=dict, repr=False)

    def fresh(self, root: Path) -> Path:
        """A folder under `root` holding a copy of the (cached) valid seed input. The previous
        case folder of this target is removed: thousands of examples leave one behind."""
        base = self.cache.get("dir")
        if base is None:
            base = Path(tempfile.mkdtemp(prefix=f"fuzz-seed-{self.name}-"))
            self.seed(base)
            self.cache["dir"] = base
        if "last" in self.cache:
            shutil.rmtree(self.cache.pop("last"), ignore_errors=True)
        d = Path(tempfile.mkdtemp(prefix="case-", dir=root))
        shutil.copytree(base, d, dirs_exist_ok=True, symlinks=True)
        self.cache["last"] = d
        return d

    def mutate(self, d: Path, which: int, ops) -> str:
        rel = self.mutable[which % len(self.mutable)]
        p = d / rel
        p.write_bytes(apply_mutations(p.read_bytes(), ops))
        return rel


def _empty_dir() -> Path:
    global _EMPTY
    if _EMPTY is None:
        _EMPTY = Path(tempfile.mkdtemp(prefix="fuzz-empty-"))
    return _EMPTY


_EMPTY: Path | None = None


def input_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file() and not p.is_symlink())


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def outcome(target: Target, d: Path | None = None, time_limit: float = TIME_LIMIT_S
            ) -> tuple[str, str]:
    """(kind, detail) of one call of `target.load(d)`; see the module docstring. `d` None: a
    target that reads no files (structured arguments), given an empty folder."""
    d = d or _empty_dir()
    limit = MEMORY_RATIO * input_bytes(d) + MEMORY_SLACK
    names = target.names(d) if target.names else [str(d)]
    # CPU time (ITIMER_PROF), not wall time: a loop that never ends burns CPU, while two other
    # jobs on a shared 2-core runner only stretch the wall clock
    old = signal.signal(signal.SIGPROF, _alarm)
    signal.setitimer(signal.ITIMER_PROF, time_limit)
    tracemalloc.start()
    t0 = time.perf_counter()
    result = error = None
    try:
        result = target.load(d)
    except _Timeout:
        return "hang", f"> {time_limit:.0f} s of CPU"
    except UserError as e:
        error = e
    except MemoryError:
        return "memory", "MemoryError"
    except Exception as e:  # noqa: BLE001 - what the fuzz is looking for
        if os.environ.get("FUZZ_TRACEBACK"):
            traceback.print_exc()
        where = traceback.extract_tb(e.__traceback__)
        ours = [f for f in where if f.filename.endswith(".py")
                and "site-packages" not in f.filename] or where
        at = f" at {Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else ""
        msg = "".join(traceback.format_exception_only(type(e), e)).strip()[-500:]
        return "foreign", f"{msg}{at}"
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    took = time.perf_counter() - t0
    if peak > limit:
        return "memory", f"peak {peak / 2**20:.0f} MiB > limit {limit / 2**20:.0f} MiB"
    if error is not None:
        msg = str(error)
        if not msg or "\n" in msg:
            return "foreign", f"{type(error).__name__} not one line: {msg[:300]!r}"
        if not any(n in msg for n in names):
            return "foreign", f"{type(error).__name__} names none of {names}: {msg[:300]!r}"
        return "rejected", msg[:300]
    try:
        target.check(result, d)
    except AssertionError as e:
        return "wrong", f"accepted but invalid: {e}"[:600]
    return "accepted", f"{took:.2f} s"


def assert_clean(target: Target, d: Path | None = None) -> str:
    """Fail the test unless the outcome is accepted or rejected; returns the kind."""
    kind, detail = outcome(target, d)
    assert kind in ("accepted", "rejected"), f"{target.name}: {kind}: {detail}"
    return kind


def assert_rejects(target: Target, d: Path, *needles: str) -> str:
    """A regression case: the input must be rejected cleanly, with these words in the error."""
    kind, detail = outcome(target, d)
    assert kind == "rejected", f"{target.name}: expected a clean rejection, got {kind}: {detail}"
    for n in needles:
        assert n in detail, f"{target.name}: {n!r} not in {detail!r}"
    return detail


def mutate_and_check(target: Target, root: Path, which: int, ops) -> str:
    """One byte-mutation case: a fresh copy of the seed input, file `which` mutated by `ops`,
    then `assert_clean`; returns the outcome kind."""
    d = target.fresh(root)
    target.mutate(d, which, ops)
    return assert_clean(target, d)


def mutated_files_test(targets: list[Target], examples: int, files: int = 4):
    """The byte-mutation test over `targets` (pytest-parametrized by name): `examples` seeded
    cases each, mutating one of the first `files` mutable files."""
    import pytest
    from hypothesis import given
    from hypothesis import strategies as st

    by_name = {t.name: t for t in targets}

    @pytest.mark.parametrize("name", list(by_name))
    @fuzz_settings(examples)
    @given(ops=mutation_ops(), which=st.integers(0, files - 1))
    def test_mutated_files(tmp_path_factory, name, ops, which):
        mutate_and_check(by_name[name], tmp_path_factory.getbasetemp(), which, ops)

    return test_mutated_files
