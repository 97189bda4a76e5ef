"""Fine-tuning data: byte-level text (stdlib corpus, .txt or .jsonl files) and passkey retrieval.

Out-of-family text (`out_of_family_text`): the hand-written C++ headers that ship with torch,
never part of any training or tuning corpus here (see its docstring).

Passkey retrieval (LongLoRA's `passkey_retrivial.py` format, byte tokens): a 5-digit key is stated
once at a random depth inside repetitive filler, and the sequence ends with "The pass key is
NNNNN". A model retrieves it if its greedy next-byte predictions reproduce all five digits
(teacher-forced argmax over the answer = greedy decoding for an exact match). Sequences are
exactly `seq_len` bytes; generation is seeded by the caller's numpy Generator.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from shared.errors import DataError
from shared.text import encode, load_corpus, sample_windows
from shared.validate import parse_json, read_text

__all__ = ["load_text_file", "load_text", "make_passkey_batch", "passkey_accuracy",
           "passkey_hits", "finetune_batch", "out_of_family_files", "out_of_family_text",
           "OOF_SUBDIRS", "ANSWER_LEN"]

ANSWER_LEN = 5
_INTRO = ("There is an important info hidden inside a lot of irrelevant text. Find it and "
          "memorize it. I will quiz you about the important information there.\n")
_FILLER = ("The grass is green. The sky is blue. The sun is yellow. Here we go. There and back "
           "again.\n")
_NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key.\n"
_QUESTION = "What is the pass key? The pass key is {key}"


def load_text_file(path: str | Path, text_key: str = "text") -> np.ndarray:
    """uint8 byte tokens of a .txt file or of a .jsonl file's `text_key` fields (joined by a
    blank line). Missing / empty / malformed files raise a DataError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.suffix == ".jsonl":
        texts = []
        for i, line in enumerate(read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            rec = parse_json(line, f"{path}:{i}")
            if not isinstance(rec, dict) or not isinstance(rec.get(text_key), str):
                raise DataError(f"{path}:{i}: missing string field '{text_key}'")
            texts.append(rec[text_key])
        tokens = encode("\n\n".join(texts))
    elif path.suffix in (".txt", ".md", ".py", ""):
        tokens = np.frombuffer(path.read_bytes(), dtype=np.uint8).copy()
    else:
        raise DataError(f"{path}: unsupported data format '{path.suffix}' (.txt or .jsonl)")
    if tokens.size == 0:
        raise DataError(f"{path}: no text")
    return tokens


def load_text(path: str | None, split: str, text_key: str, max_bytes: int) -> np.ndarray:
    """A file's tokens, or the stdlib corpus split when `path` is None."""
    if path is None:
        return load_corpus(split, max_bytes=max_bytes)
    return load_text_file(path, text_key)[:max_bytes]


OOF_SUBDIRS = ("c10", "torch/csrc/api")  # hand-written headers (ATen's are mostly generated)
# headers quoting a licence grant (code copied from other projects) are left out: the standard
# library quotes the same MIT / BSD paragraphs, the only long text the two sources share
_LICENCE_GRANTS = (b"Permission is hereby granted", b"Redistribution and use in source")


def _torch_include() -> Path:
    import torch

    return Path(torch.__file__).parent / "include"


def out_of_family_files(root: str | Path | None = None) -> list[Path]:
    """The `.h` files under `root`/c10 and `root`/torch/csrc/api (`root`: the installed torch's
    `include/` dir when None), but those quoting a licence grant (MIT / BSD text, which the
    standard library quotes too), ordered by the md5 of their path relative to `root`, so that
    the first windows of the joined text span many files of both trees. A DataError naming
    `root` when it holds none."""
    root = Path(root) if root else _torch_include()
    files = [p for d in OOF_SUBDIRS if (root / d).is_dir()
             for p in (root / d).rglob("*.h") if p.is_file()
             and not any(g in p.read_bytes() for g in _LICENCE_GRANTS)]
    if not files:
        raise DataError(f"out-of-family text: no .h files under {root}/{{{','.join(OOF_SUBDIRS)}}}"
                        f" (torch's C++ headers; set oof_root to an include/ dir that has them)")
    return sorted(files, key=lambda p: hashlib.md5(
        p.relative_to(root).as_posix().encode()).hexdigest())


def out_of_family_text(max_bytes: int | None = None, root: str | Path | None = None
                       ) -> np.ndarray:
    """uint8 tokens of the out-of-family text set: torch's hand-written C++ headers
    (`out_of_family_files`: c10 and the C++ frontend, 386 files and 2.6 MB with torch 2.13),
    joined by a blank line, cut at `max_bytes`.

    Why this text: long source files (repository-level code is a common long-context
    fine-tuning target), from an independent process (other authors, another language) than
    the training corpus (the standard library's Python, its docstrings and `pydoc_data`
    topics), so disjoint by construction; present wherever torch is installed, the GPU image
    included, with no download. Deterministic for a given torch version (its bytes change with
    the version: callers record the version and a digest)."""
    data = bytearray()
    for p in out_of_family_files(root):
        if data:
            data += b"\n\n"
        data += p.read_bytes()
        if max_bytes is not None and len(data) >= max_bytes:
            break
    if max_bytes is not None:
        del data[max_bytes:]
    if not data:
        raise DataError(f"out-of-family text: the .h files under {root or _torch_include()} "
                        f"are empty")
    return np.frombuffer(bytes(data), dtype=np.uint8).copy()


def make_passkey_batch(n: int, seq_len: int, rng: np.random.Generator,
                       depth: float | None = None) -> np.ndarray:
    """(n, seq_len) int64 passkey sequences; the answer is each row's last ANSWER_LEN bytes.
    The needle sits at a random depth of the filler, or at `depth` in [0, 1] (0: right after
    the introduction, 1: right before the question)."""
    if depth is not None and not 0.0 <= depth <= 1.0:
        raise ValueError(f"passkey depth must be in [0, 1], got {depth}")
    keys = rng.integers(10_000, 100_000, size=n)
    depths = rng.random(n) if depth is None else np.full(n, float(depth))
    rows = []
    for key, depth in zip(keys, depths):
        needle, question = _NEEDLE.format(key=key), _QUESTION.format(key=key)
        room = seq_len - len(_INTRO) - len(needle) - len(question)
        if room < 0:
            raise DataError(f"seq_len {seq_len} is too short for a passkey example")
        fill = (_FILLER * (room // len(_FILLER) + 2))
        cut = int(depth * room)
        text = _INTRO + fill[:cut] + needle + fill[cut:room] + question
        rows.append(encode(text))
    return np.stack(rows).astype(np.int64)


@torch.no_grad()
def passkey_hits(model, tokens: np.ndarray, batch_size: int = 1, device: str = "cpu") -> np.ndarray:
    """(rows,) bool: whether each row's last ANSWER_LEN bytes are all the model's argmax
    predictions, in row order (so two models scored on the same rows can be paired)."""
    was_training = model.training
    model.eval()
    hits = []
    for start in range(0, len(tokens), batch_size):
        x = torch.from_numpy(tokens[start:start + batch_size]).to(device)
        # full rows (their length stays a multiple of the block size); causal, so the logits
        # before each answer byte see only the bytes before it
        logits = model(input_ids=x).logits[:, -ANSWER_LEN - 1:-1]
        hits.append((logits.argmax(-1) == x[:, -ANSWER_LEN:]).all(-1).cpu())
    model.train(was_training)
    return torch.cat(hits).numpy()


def passkey_accuracy(model, tokens: np.ndarray, batch_size: int = 1, device: str = "cpu") -> float:
    """Share of rows whose last ANSWER_LEN bytes are all the model's argmax predictions."""
    # a float32 mean, as every recorded curve was read: the fine-tuning stop rule compares it
    # with ft_stop_passkey, and 18/20 in float32 is 0.8999999761 < 0.9
    return float(torch.from_numpy(passkey_hits(model, tokens, batch_size, device)).float().mean())


def finetune_batch(tokens: np.ndarray, seq_len: int, batch_size: int, passkey_mix: float,
                   rng: np.random.Generator) -> np.ndarray:
    """(batch, seq_len) windows of `tokens`, each replaced by a passkey example w.p. passkey_mix."""
    x = sample_windows(tokens, seq_len, batch_size, rng)
    swap = rng.random(batch_size) < passkey_mix
    if swap.any():
        x[swap] = make_passkey_batch(int(swap.sum()), seq_len, rng)
    return x
