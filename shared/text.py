"""An offline text corpus that every machine has, byte-level tokens, and tiny-LM pretraining.

Corpus sources (both ship with CPython, so they are always on disk and need no download):
- "stdlib-py": the Python standard library's `.py` sources (~30 MB of real code and docstrings);
- "pydoc-topics": the prose of the language reference bundled in `pydoc_data.topics` (~0.8 MB).
Files are assigned to train/val/test by a hash of their relative path (90/5/5), so the split is
stable across machines; the exact bytes depend on the Python version (recorded by callers).

Tokens are bytes (vocab 256): no tokenizer download, and any text round-trips exactly.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from shared.errors import ConfigError

__all__ = ["VOCAB_SIZE", "encode", "decode", "stdlib_files", "load_corpus", "sample_windows",
           "pretrain_causal_lm", "evaluate_perplexity"]

log = logging.getLogger(__name__)

VOCAB_SIZE = 256
Split = Literal["train", "val", "test"]
_SPLIT_OF = {**{i: "train" for i in range(90)}, **{i: "val" for i in range(90, 95)},
             **{i: "test" for i in range(95, 100)}}


def encode(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8", errors="replace"), dtype=np.uint8).copy()


def decode(tokens) -> str:
    return bytes(np.asarray(tokens, dtype=np.uint8).tolist()).decode("utf-8", errors="replace")


def stdlib_files() -> list[Path]:
    """Sorted `.py` files of the standard library (site-packages and test suites excluded)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__"}
    files = [p for p in root.rglob("*.py") if not skip.intersection(p.relative_to(root).parts)]
    return sorted(files, key=lambda p: str(p.relative_to(root)))


def _split_of(name: str) -> str:
    return _SPLIT_OF[int(hashlib.md5(name.encode()).hexdigest(), 16) % 100]


def load_corpus(split: Split = "train", source: str = "stdlib-py",
                max_bytes: int | None = None) -> np.ndarray:
    """uint8 tokens of one split of `source`, documents joined by a blank line."""
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown corpus split '{split}' (train, val, test)")
    chunks: list[bytes] = []
    if source == "stdlib-py":
        root = Path(sysconfig.get_paths()["stdlib"])
        for p in stdlib_files():
            if _split_of(str(p.relative_to(root))) == split:
                chunks.append(p.read_bytes())
    elif source == "pydoc-topics":
        from pydoc_data.topics import topics

        for name in sorted(topics):
            if _split_of(name) == split:
                chunks.append(topics[name].encode("utf-8", errors="replace"))
    else:
        raise ConfigError(f"unknown corpus source '{source}' (stdlib-py, pydoc-topics)")
    data = b"\n\n".join(chunks)
    if max_bytes is not None:
        data = data[:max_bytes]
    return np.frombuffer(data, dtype=np.uint8).copy()


def sample_windows(tokens: np.ndarray, seq_len: int, batch_size: int,
                   rng: np.random.Generator) -> np.ndarray:
    """(batch_size, seq_len) int64 windows at random offsets of `tokens`."""
    if len(tokens) <= seq_len:
        raise ConfigError(f"corpus has {len(tokens)} tokens, fewer than seq_len={seq_len}")
    starts = rng.integers(0, len(tokens) - seq_len, size=batch_size)
    idx = starts[:, None] + np.arange(seq_len)[None, :]
    return tokens[idx].astype(np.int64)


def pretrain_causal_lm(model, train_tokens: np.ndarray, steps: int, seq_len: int,
                       batch_size: int, lr: float = 1e-3, seed: int = 0, device: str = "cpu",
                       warmup: int = 50, on_step: Callable[[int, float], None] | None = None,
                       ) -> list[float]:
    """Train a HF causal LM (anything whose forward takes `input_ids, labels`) on byte windows.

    AdamW, linear warm-up then cosine decay to 10%, grad-norm clip 1.0. Returns the loss curve.
    """
    import torch

    from shared.log import progress

    rng = np.random.default_rng(seed)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    losses = []
    bar = progress(range(steps), desc="pretrain", leave=False)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x = torch.from_numpy(sample_windows(train_tokens, seq_len, batch_size, rng)).to(device)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if on_step:
            on_step(step, losses[-1])
        if hasattr(bar, "set_postfix") and step % 10 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses


def evaluate_perplexity(model, tokens: np.ndarray, seq_len: int, max_windows: int = 32,
                        device: str = "cpu") -> float:
    """exp(mean token NLL) over up to `max_windows` consecutive non-overlapping windows."""
    import torch

    n = min(max_windows, (len(tokens) - 1) // seq_len)
    if n < 1:
        raise ConfigError(f"evaluation text has {len(tokens)} tokens, fewer than seq_len={seq_len}")
    x = torch.from_numpy(tokens[: n * seq_len].astype(np.int64).reshape(n, seq_len)).to(device)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(n):
            out = model(input_ids=x[i : i + 1], labels=x[i : i + 1])
            total += float(out.loss) * (seq_len - 1)
            count += seq_len - 1
    return math.exp(total / count)
