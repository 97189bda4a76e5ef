"""Fuzz: crosslm's file loaders (fastText-labelled polarity sentences, as a text file or inside
a gensim wheel). A mutated file loads as a valid task or is refused in one line."""

import io
import zipfile

import numpy as np
from fuzz_harness import Target, mutated_files_test

from crosslm.data import load_polarity

MEMBER = "gensim/test/test_data/pang_lee_polarity.cor"


def _lines() -> bytes:
    rows = [f"__label__{'pos' if i % 2 else 'neg'} a sentence , number {i} ." for i in range(24)]
    return ("\n".join(rows) + "\n").encode()


def _seed_text(d):
    (d / "pol.cor").write_bytes(_lines())


def _seed_wheel(d):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(MEMBER, _lines())
    (d / "gensim.whl").write_bytes(buf.getvalue())


def _check(task, d):
    assert len(task.texts) == len(task.labels) > 0
    assert task.labels.min() >= 0 and task.labels.max() < len(task.label_names)
    assert len(task.label_names) >= 2 and np.bincount(task.labels).min() >= 10
    assert all(isinstance(t, str) and t for t in task.texts)


TARGETS = [
    Target("polarity-text", _seed_text, lambda d: load_polarity(d / "pol.cor"), _check,
           ("pol.cor",)),
    Target("polarity-wheel", _seed_wheel, lambda d: load_polarity(d / "gensim.whl"), _check,
           ("gensim.whl",)),
]

test_mutated_files = mutated_files_test(TARGETS, 120, files=1)
