"""The accuracy bench's out-of-family text (`lemo.data.out_of_family_text`: torch's C++
headers): disjoint from every text the bench trains on, deterministic, read from disk with no
network, and a one-line error when its source is missing."""

import hashlib
import socket

import numpy as np
import pytest

from lemo.data import OOF_SUBDIRS, out_of_family_files, out_of_family_text
from lemo.experiments.accuracy_bench import AccuracyBenchConfig, main
from shared.errors import DataError
from shared.text import load_corpus

NGRAM = 64  # bytes: a "long" n-gram (about a line of code or prose)


def _eval_bytes() -> int:
    """What the bench evaluates at its default setting (ppl_windows windows of ft_len)."""
    cfg = AccuracyBenchConfig()
    return cfg.ft_len * (cfg.ppl_windows + 1) + 1


def _ngram_hashes(data: bytes, n: int = NGRAM) -> np.ndarray:
    """Polynomial hash (mod 2^64) of every n-byte window, n a power of two: the hash of a
    2w-window is the hash of its first w-window times B^w plus the hash of its second."""
    h = np.frombuffer(data, dtype=np.uint8).astype(np.uint64)
    width, base = 1, 0x100000001B3
    with np.errstate(over="ignore"):
        while width < n:
            h = h[:-width] * np.uint64(pow(base, width, 1 << 64)) + h[width:]
            width *= 2
    return h


def _shared_ngrams(oof: bytes, corpus: bytes, n: int = NGRAM) -> set[bytes]:
    """The n-grams of `oof` found in `corpus` (hash hits confirmed on the bytes)."""
    want = np.unique(_ngram_hashes(oof, n))  # sorted
    found: set[bytes] = set()
    step = 1 << 22
    for start in range(0, len(corpus), step):
        chunk = corpus[start:start + step + n - 1]
        if len(chunk) < n:
            break
        h = _ngram_hashes(chunk, n)
        at = np.minimum(np.searchsorted(want, h), len(want) - 1)
        for i in np.flatnonzero(want[at] == h):
            gram = chunk[i:i + n]
            if gram in oof:
                found.add(gram)
    return found


def _training_texts(english: bool) -> bytes:
    """Every split of the stdlib code and of the `pydoc_data` topics (a superset of what the
    bench pretrains and fine-tunes on), and with `english` its docstring text."""
    parts = [load_corpus(s, source=src).tobytes() for src in ("stdlib-py", "pydoc-topics")
             for s in ("train", "val", "test")]
    if english:
        from lemo.experiments.accuracy_bench import english_text

        parts.append(english_text("train", AccuracyBenchConfig().corpus_bytes // 4).tobytes())
    return b"\n\n".join(parts)


def _informative(gram: bytes) -> bool:
    """Not a separator or indentation run ('-' * 64, 64 spaces): at least 8 distinct bytes."""
    return len(set(gram)) >= 8


def test_helper_finds_a_planted_ngram():
    """The n-gram search is not vacuous: a 64-byte line planted in a corpus is found, and a
    63-byte overlap is not."""
    rng = np.random.default_rng(0)
    corpus = bytearray(rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    oof = bytearray(rng.integers(0, 256, 5_000, dtype=np.uint8).tobytes())
    corpus[123_456:123_456 + NGRAM] = oof[1000:1000 + NGRAM]
    assert _shared_ngrams(bytes(oof), bytes(corpus)) == {bytes(oof[1000:1000 + NGRAM])}
    corpus[123_456] ^= 1
    assert _shared_ngrams(bytes(oof), bytes(corpus)) == set()


def test_oof_shares_no_document_and_no_long_ngram_with_the_training_corpus():
    oof_files = out_of_family_files()
    corpus = _training_texts(english=False)
    docs = {hashlib.sha256(p.read_bytes()).digest() for p in oof_files}
    from shared.text import stdlib_files

    assert not docs & {hashlib.sha256(p.read_bytes()).digest() for p in stdlib_files()}
    assert all(p.suffix == ".h" for p in oof_files)  # no .py: never a stdlib-corpus file
    oof = out_of_family_text(_eval_bytes()).tobytes()
    shared = _shared_ngrams(oof, corpus)
    assert not {g for g in shared if _informative(g)}, sorted(shared)[:3]


@pytest.mark.slow
def test_oof_shares_no_long_ngram_with_the_docstring_text_or_beyond_the_eval_slice():
    """The same on the docstring text too (english_text: ~7 s) and on all of the headers."""
    shared = _shared_ngrams(out_of_family_text().tobytes(), _training_texts(english=True))
    assert not {g for g in shared if _informative(g)}, sorted(shared)[:3]


def test_oof_is_deterministic_and_independent_of_listing_order(tmp_path):
    a = out_of_family_text(_eval_bytes())
    assert a.dtype == np.uint8 and len(a) == _eval_bytes()
    assert np.array_equal(a, out_of_family_text(_eval_bytes()))
    assert np.array_equal(a, out_of_family_text()[:_eval_bytes()])  # a prefix of the whole set
    # the order is the md5 of the relative path, not the directory listing's
    names = [f"{OOF_SUBDIRS[i % 2]}/d{i % 3}/f{i}.h" for i in range(12)]
    roots = []
    for order, root in ((names, tmp_path / "a"), (names[::-1], tmp_path / "b")):
        for name in order:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(f"// {name}\nint x;\n")
        (root / "c10" / "skip.cpp").write_text("not a header\n")
        roots.append(root)
    got = [out_of_family_text(None, r).tobytes() for r in roots]
    assert got[0] == got[1] and b"not a header" not in got[0]
    want = sorted(names, key=lambda s: hashlib.md5(s.encode()).hexdigest())
    assert got[0] == b"\n\n".join(f"// {n}\nint x;\n".encode() for n in want)


def test_oof_loads_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert len(out_of_family_text(4096)) == 4096


def test_missing_source_is_one_line_naming_it(tmp_path, capsys):
    with pytest.raises(DataError, match=str(tmp_path / "none")):
        out_of_family_text(100, tmp_path / "none")
    (tmp_path / "empty" / "c10").mkdir(parents=True)
    (tmp_path / "empty" / "c10" / "a.h").write_bytes(b"")
    with pytest.raises(DataError, match="are empty"):
        out_of_family_text(100, tmp_path / "empty")
    from shared.cli import run

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        run(main, ["--quick", "--device", "cpu", "--set", f"oof_root={tmp_path / 'none'}",
                   "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "out-of-family" in err[0]
    assert str(tmp_path / "none") in err[0] and not out.exists()
    (tmp_path / "empty" / "c10" / "a.h").write_bytes(b"int x;\n" * 10)  # 70 < 1025 bytes
    with pytest.raises(SystemExit) as e:
        run(main, ["--quick", "--device", "cpu", "--set", f"oof_root={tmp_path / 'empty'}",
                   "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "70 bytes, fewer than the 1025" in err[0]
    assert not out.exists()
