"""Many weighted-BC runs in lockstep on one device: the full bench's affordable path on a GPU.

After its preparation (discriminators, selection), every arm of the bench but DWBC is weighted
behaviour cloning with fixed weights: a loss that is a sum of terms -E_{i ~ T}[w_i log pi(a_i|s_i)],
each averaged over its own batch of `batch` rows drawn uniformly from a fixed set T of rows of
D_e ∪ D_b (ILID: (D_u, alpha) and (D_s, beta); BC-E / BC-U: (D_e or all rows, 1); ISW-BC: (all
rows, c / (1 - c)); the methods' `terms()`). One step of one such run on a GPU is a handful of
tiny kernels, so its time is launch overhead. `EnsembleBC` trains K runs (settings x seeds x
arms of one state and action size) as one `shared.il.nets.EnsembleMLP`: one batched matmul per
layer for all of them.

Each member keeps its own initial weights (the policy `train.fit` builds for that run), its own
state normaliser, its own terms and its own Adam state; the loss is the sum of the members'
losses, so member k's gradient is its own, and Adam with weight decay acts elementwise: member k
takes exactly the single run's update for the batches it is given. What is shared is the batch
generator: a member's batches (not their distribution) depend on the ensemble it trains in, and
the same command reproduces them.

Shapes: K members, B rows per term per step, S state, A action; terms t = 0, 1 (a member with one
term gets a zero-weight dummy second term).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from shared.errors import ConfigError
from shared.il.models import (
    Normalizer,
    TanhGaussianPolicy,
    tanh_gaussian_log_prob,
    tanh_gaussian_params,
)
from shared.il.nets import EnsembleMLP, member_state_dict
from shared.log import progress

__all__ = ["Member", "EnsembleBC", "train_ensemble"]

NORM_EPS = 1e-3  # the std floor of `Normalizer`


@dataclass
class Member:
    """One run: `storage` indexes the row sets given to `EnsembleBC` (D_e ∪ D_b of a setting);
    `terms` = 1 or 2 (row indices into that storage, weights); `init` = the initial policy
    network's state dict (layout of `shared.il.nets.mlp`); `mean`/`std` = its state normaliser."""

    storage: int
    terms: list[tuple[np.ndarray, np.ndarray]]
    init: dict[str, torch.Tensor]
    mean: np.ndarray
    std: np.ndarray


class EnsembleBC:
    """K weighted-BC runs as one ensemble network (see the module docstring)."""

    def __init__(self, members: list[Member], storages: list[tuple[np.ndarray, np.ndarray]],
                 hidden: int, batch: int, lr: float, weight_decay: float,
                 device: str | torch.device = "cpu", seed: int = 0):
        if not members:
            raise ConfigError("ensemble: no members")
        S, A = storages[0][0].shape[1], storages[0][1].shape[1]
        for obs, act in storages:
            if obs.shape[1] != S or act.shape[1] != A:
                raise ConfigError("ensemble: every member needs the same state and action size")
        dev = self.device = torch.device(device)
        self.K, self.B, self.S, self.A, self.hidden = len(members), batch, S, A, hidden
        starts = np.cumsum([0] + [len(o) for o, _ in storages])
        self.obs = torch.as_tensor(np.concatenate([o for o, _ in storages]), dtype=torch.float32,
                                   device=dev)
        self.act = torch.as_tensor(np.concatenate([a for _, a in storages]), dtype=torch.float32,
                                   device=dev)
        idx, w, off, n = [], [], np.zeros((2, self.K), np.int64), np.zeros((2, self.K), np.int64)
        pos = 0
        for t in range(2):
            for k, m in enumerate(members):
                if not 1 <= len(m.terms) <= 2:
                    raise ConfigError(f"ensemble: member {k} has {len(m.terms)} terms (1 or 2)")
                rows, wt = m.terms[t] if t < len(m.terms) else (np.zeros(1, np.int64),
                                                                np.zeros(1, np.float32))
                if len(rows) == 0 or len(rows) != len(wt):
                    raise ConfigError(f"ensemble: member {k} term {t}: {len(rows)} rows, "
                                      f"{len(wt)} weights")
                idx.append(starts[m.storage] + np.asarray(rows, np.int64))
                w.append(np.asarray(wt, np.float32))
                off[t, k], n[t, k] = pos, len(rows)
                pos += len(rows)
        self.idx = torch.as_tensor(np.concatenate(idx), device=dev)
        self.w = torch.as_tensor(np.concatenate(w), device=dev)
        self.off, self.n = torch.as_tensor(off, device=dev), torch.as_tensor(n, device=dev)
        self.mean = torch.as_tensor(np.stack([m.mean for m in members]), dtype=torch.float32,
                                    device=dev)[:, None]
        self.std = torch.as_tensor(np.stack([m.std for m in members]), dtype=torch.float32,
                                   device=dev).clamp_min(NORM_EPS)[:, None]
        self.net = EnsembleMLP(self.K, S, 2 * A, hidden).to(dev)
        with torch.no_grad():
            for k, m in enumerate(members):
                for i, layer in enumerate(self.net.layers):
                    layer.weight[k] = m.init[f"{2 * i}.weight"].t().to(dev)
                    layer.bias[k, 0] = m.init[f"{2 * i}.bias"].to(dev)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr, weight_decay=weight_decay)
        self.gen = torch.Generator(device=dev).manual_seed(seed)
        self._members = members

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step's rows: s (K, 2B, S), a (K, 2B, A), w (K, 2B); term 0 first, then term 1."""
        u = torch.rand(2, self.K, self.B, generator=self.gen, device=self.device)
        j = (u * self.n[..., None]).long().minimum(self.n[..., None] - 1) + self.off[..., None]
        rows, w = self.idx[j], self.w[j]  # (2, K, B)
        rows, w = rows.transpose(0, 1).reshape(self.K, 2 * self.B), w.transpose(0, 1).reshape(
            self.K, 2 * self.B)
        return self.obs[rows], self.act[rows], w

    def log_prob(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """log pi_k(a|s) (K, N) of every member k on its own rows s (K, N, S), a (K, N, A)."""
        out = self.net((s - self.mean) / self.std)
        return tanh_gaussian_log_prob(*tanh_gaussian_params(out), a)

    def loss(self, s: torch.Tensor, a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Sum over members of -mean_B(w log pi) of term 0 plus the same of term 1."""
        logp = self.log_prob(s, a)
        return -(w * logp).view(self.K, 2, self.B).mean(-1).sum()

    def step(self) -> torch.Tensor:
        """One Adam step of every member; the summed loss (not synchronised)."""
        loss = self.loss(*self.batch())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def policy(self, k: int) -> TanhGaussianPolicy:
        """Member k as a plain CPU `TanhGaussianPolicy` (its normaliser included)."""
        m = self._members[k]
        pol = TanhGaussianPolicy(self.S, self.A, self.hidden,
                                 Normalizer(torch.as_tensor(m.mean), torch.as_tensor(m.std)))
        pol.net.load_state_dict(member_state_dict(self.net, k))
        return pol


def _value(x):
    """A result, or the result of a future (a pool's `submit`)."""
    return x.result() if hasattr(x, "result") else x


def _ready(x) -> bool:
    return x.done() if hasattr(x, "done") else True


def train_ensemble(ens: EnsembleBC, steps: int, eval_every: int,
                   evaluate: Callable[[list[TanhGaussianPolicy]], list],
                   desc: str = "ensemble",
                   on_round: Callable[[list[list[dict]]], None] | None = None
                   ) -> tuple[list[list[dict]], float, float]:
    """`steps` steps of every member; every `eval_every` steps (and at the end) `evaluate(the K
    policies)` gives one dict per member (or a future of one, e.g. a process pool's `submit`: the
    loop then runs on while the rollouts do), appended with the step and the members' mean loss to
    its curve. `on_round(curves)` gets the curves of the evaluation rounds finished so far (in
    order) each time one more has finished, so a run cut short leaves them. Returns (curves, loop
    wall seconds, loop CPU seconds), evaluation excluded."""
    rounds: list[tuple[int, float, list]] = []  # (step, mean loss, one result per member)
    reported = 0
    wall = cpu = 0.0

    def clocks():
        if ens.device.type == "cuda":
            torch.cuda.synchronize(ens.device)
        return time.perf_counter(), time.process_time()

    def curves(upto: int) -> list[list[dict]]:
        return [[{"step": n, "loss": per, **_value(res[k])} for n, per, res in rounds[:upto]]
                for k in range(ens.K)]

    t0, c0 = clocks()
    for step in progress(range(steps), desc=desc, total=steps):
        loss = ens.step()
        n = step + 1
        if n % eval_every == 0 or n == steps:
            t1, c1 = clocks()
            wall, cpu = wall + t1 - t0, cpu + c1 - c0
            per = loss.item() / ens.K  # the members' mean loss on this step's batches
            rounds.append((n, per, list(evaluate([ens.policy(k) for k in range(ens.K)]))))
            done = reported
            while done < len(rounds) and all(_ready(x) for x in rounds[done][2]):
                done += 1
            if on_round is not None and done > reported:
                on_round(curves(done))
            reported = done
            t0, c0 = clocks()
    out = curves(len(rounds))  # waits for the rollouts still running
    if on_round is not None and reported < len(rounds):
        on_round(out)
    return out, wall, cpu
