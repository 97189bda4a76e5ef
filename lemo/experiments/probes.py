"""Probes of LeMo's token selection: eliminators that are NOT the paper's rule, used to find out
why LeMo loses passkey retrieval on the embedded LM (results/lemo/NOTES.md). Each replaces the
`TokenEliminator` of every LeMo layer; `probe_hook(probe, seed)` gives the hook that
`lemo.bench.accuracy_arm` calls after it (re)configures LeMo, so an arm trains and evaluates
under the probe. Shapes: scores (b, nb) -> kept blocks (b, k).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lemo.config import LemoConfig
from lemo.patch import base_model, lemo_layers
from lemo.scoring import TokenEliminator

__all__ = ["ProbeConfig", "RecentBlockEliminator", "OracleBlockEliminator",
           "RandomBlockEliminator", "passkey_blocks", "install_probe", "probe_hook",
           "oracle_flags"]


@dataclass
class ProbeConfig:
    """Which probe replaces the paper's selection (all off: the paper's top-k)."""

    keep_recent: int = 0  # LeMo layers always keep their last N blocks (0 = off)
    # LeMo layers always keep the passkey needle's and question's blocks (read from the data)
    oracle: bool = False
    random: bool = False  # LeMo layers keep k random blocks


class RecentBlockEliminator(TokenEliminator):
    """Diagnostic variant, NOT the paper's rule: the last `recent` blocks are always kept, the
    rest of the budget goes to the top-scoring earlier blocks (the same kept count k).

    Under the causal mask key block j is summed over nb - j query tiles, so the paper's column
    sum ranks the last blocks lowest and `TokenEliminator` drops them in every eliminating layer
    (`lemo.bench.passkey_selection`). This locality prior (as in sliding-window sparse attention)
    tests whether that is what costs LeMo its long-context retrieval. (b, nb) -> (b, k).
    """

    def __init__(self, block_size: int = 64, keep_ratio: float = 0.4, recent: int = 1):
        super().__init__(block_size, keep_ratio, "topk")
        self.recent = recent

    def rank(self, scores: torch.Tensor, k: int) -> torch.Tensor:
        boosted = scores.clone()
        boosted[:, max(0, scores.shape[-1] - min(self.recent, k)):] = float("inf")
        return boosted


class OracleBlockEliminator(TokenEliminator):
    """Diagnostic variant, NOT the paper's rule (it reads the answer's location from the data):
    the blocks flagged in `forced` (b, nb) bool, set by the caller before each forward (e.g. the
    passkey needle's and question's blocks), are always kept; the rest of the same budget k goes
    to the top-scoring other blocks. `forced=None` (or a batch of another shape): the paper's
    top-k. Tests whether *which* blocks are kept is what costs LeMo its retrieval.
    (b, nb) -> (b, k).
    """

    def __init__(self, block_size: int = 64, keep_ratio: float = 0.4):
        super().__init__(block_size, keep_ratio, "topk")
        self.forced: torch.Tensor | None = None

    def rank(self, scores: torch.Tensor, k: int) -> torch.Tensor:
        f = self.forced
        if f is None or f.shape != scores.shape:
            return scores
        return scores.masked_fill(f.to(scores.device), float("inf"))


class RandomBlockEliminator(TokenEliminator):
    """Diagnostic variant, NOT the paper's rule: k blocks drawn uniformly at random per row
    (seeded), ignoring the scores. Every position is then kept equally often, so it separates
    *where* the kept blocks lie (the causal column sum keeps a prefix) from how many are kept.
    (b, nb) -> (b, k)."""

    def __init__(self, block_size: int = 64, keep_ratio: float = 0.4, seed: int = 0):
        super().__init__(block_size, keep_ratio, "topk")
        self.gen = torch.Generator().manual_seed(seed)

    def rank(self, scores: torch.Tensor, k: int) -> torch.Tensor:
        return torch.rand(scores.shape, generator=self.gen).to(scores.device)


def _install_recent_eliminator(model, cfg: LemoConfig, recent: int) -> None:
    """Probe (ProbeConfig.keep_recent): every LeMo layer keeps its last
    `recent` blocks (`RecentBlockEliminator`) instead of the paper's top-k rule."""
    for m in lemo_layers(model):
        m.eliminator = RecentBlockEliminator(cfg.block_size, cfg.keep_ratio, recent)


_NEEDLE_LEN = len("The pass key is 12345. Remember it. 12345 is the pass key.\n")
_QUESTION_LEN = len("What is the pass key? The pass key is 12345")


def passkey_blocks(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """(b, s) byte ids -> (b, nb) bool: the blocks overlapping a passkey example's needle (its
    first "The pass key is" statement) or its final question; all False for other windows."""
    b, s = x.shape
    out = torch.zeros(b, s // block_size, dtype=torch.bool)
    for r, row in enumerate(x.detach().cpu().to(torch.uint8).numpy()):
        raw = row.tobytes()
        pos = raw.find(b"The pass key is")
        if pos < 0 or pos >= s - _QUESTION_LEN:  # no needle before the question
            continue
        for a, e in ((pos, pos + _NEEDLE_LEN), (s - _QUESTION_LEN, s)):
            out[r, a // block_size:(e - 1) // block_size + 1] = True
    return out


def _install_oracle_eliminator(model, cfg: LemoConfig) -> None:
    """Probe (ProbeConfig.oracle): every LeMo layer keeps the needle's and the
    question's blocks (`OracleBlockEliminator`), fed from the input ids by a pre-hook on the
    embedding (installed once per model)."""
    layers = lemo_layers(model)
    for m in layers:
        m.eliminator = OracleBlockEliminator(cfg.block_size, cfg.keep_ratio)
    emb = base_model(model).get_input_embeddings()
    if getattr(emb, "_oracle_hook", None) is None:
        def hook(_mod, args):
            forced = passkey_blocks(args[0], cfg.block_size) if args[0].ndim == 2 else None
            for m in lemo_layers(model):
                if isinstance(m.eliminator, OracleBlockEliminator):
                    m.eliminator.forced = forced
        emb._oracle_hook = emb.register_forward_pre_hook(hook)


def install_probe(model, cfg: LemoConfig, probe: ProbeConfig, seed: int = 0) -> None:
    """(Re)install the eliminator a probe asks for (after every configure_lemo)."""
    if probe.keep_recent:
        _install_recent_eliminator(model, cfg, probe.keep_recent)
    if probe.oracle:
        _install_oracle_eliminator(model, cfg)
    if probe.random:
        for m in lemo_layers(model):
            m.eliminator = RandomBlockEliminator(cfg.block_size, cfg.keep_ratio,
                                                 seed + 1000 * m.layer_idx)


def probe_hook(probe: ProbeConfig, seed: int) -> Callable[[torch.nn.Module, LemoConfig], None]:
    """The `hook` argument of `lemo.bench.accuracy_arm` / `passkey_selection` for `probe`."""
    return lambda model, cfg: install_probe(model, cfg, probe, seed)


def oracle_flags(layer, x: torch.Tensor) -> None:
    """`passkey_selection`'s `prepare`: an oracle eliminator's flags for example `x` (1, s)."""
    if isinstance(layer.eliminator, OracleBlockEliminator):
        layer.eliminator.forced = passkey_blocks(x, layer.cfg.block_size)
