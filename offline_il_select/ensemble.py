"""Many weighted-BC runs, DWBC included, in lockstep on one device: the full bench on a GPU.

After its preparation (discriminators, selection), every arm of the bench but DWBC is weighted
behaviour cloning with fixed weights: a loss that is a sum of terms -E_{i ~ T}[w_i log pi(a_i|s_i)],
each averaged over its own batch of `batch` rows drawn uniformly from a fixed set T of rows of
D_e ∪ D_b (ILID: (D_u, alpha) and (D_s, beta); BC-E / BC-U: (D_e or all rows, 1); ISW-BC: (D_e
and D_b, or all rows, with c / (1 - c) scaled); the methods' `terms()`). DWBC (Xu et al., ICML
2022, Alg. 1; `shared.il.dwbc`) has the same form with two terms, D_e and D_b, whose weights its
discriminator d(s, a, log pi) sets anew at every step, where it also takes one PU-learning step:

    w_e = alpha - (eta / (d_e (1 - d_e)) + 1),   w_o = 1 / (1 - d_o) - 1 (0 where d_o < 0.5).

One step of one such run on a GPU is about a hundred tiny kernels (DWBC: 300), so its time is
launch overhead.
`EnsembleBC` trains K runs (settings x seeds x arms of one state and action size) as one
`shared.il.nets.EnsembleMLP` policy, one batched matmul per layer for all of them, and the DWBC
members' discriminators as one batched discriminator beside it; one backward pass and one fused
Adam step serve both. Per step it also launches fewer ops than a single run: each storage row
holds its normalised state, its action, atanh(action) and log(1 - action^2) (computed once, the
same values `Normalizer` and `tanh_gaussian_log_prob` compute at every step), one gather fetches
a step's rows for every member, and a DWBC member's discriminator input is a view of them. The
clips (policy mean and log std, discriminator output) are `hardtanh`, one backward kernel where
`clamp` has four; the two differ only in the gradient at an input exactly on a bound (clamp
passes it, hardtanh does not). DWBC's PU loss and weights are taken over a member's 2B rows at
once with per-row coefficients instead of over two slices.

Each member keeps its own initial weights (the policy, and DWBC's discriminator, that `train.fit`
builds for that run), its own state normaliser, its own terms and its own Adam state; the loss is
the sum of the members' losses, so member k's gradient is its own, and Adam with weight decay acts
elementwise: member k takes the single run's update for the batches it is given (up to float
rounding). What is shared is the batch generator: a member's batches (not their distribution)
depend on the ensemble it trains in, and the same command reproduces them.

Shapes: K members (the last Kd of them DWBC), B rows per term per step, S state, A action; terms
t = 0, 1 (a member with one term gets a zero-weight dummy second term); a step's rows (K, 2B),
term 0 first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from shared.errors import ConfigError
from shared.il.dwbc import LOG_PI_MAX, LOG_PI_MIN
from shared.il.models import (
    ACTION_EPS,
    LOG_STD_MAX,
    LOG_STD_MIN,
    MEAN_CLIP,
    Normalizer,
    TanhGaussianPolicy,
)
from shared.il.nets import EnsembleLinear, EnsembleMLP, member_state_dict
from shared.log import progress

__all__ = ["DWBCSpec", "Member", "EnsembleBC", "train_ensemble"]

NORM_EPS = 1e-3  # the std floor of `Normalizer`
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class DWBCSpec:
    """What makes a member a DWBC run: its discriminator's initial state dict (layout of
    `shared.il.dwbc.DWBCDiscriminator`), DWBC's alpha and eta, and the discriminator's clip."""

    disc: dict[str, torch.Tensor]
    alpha: float
    eta: float = 0.5
    clip: tuple[float, float] = (0.1, 0.9)


@dataclass
class Member:
    """One run: `storage` indexes the row sets given to `EnsembleBC` (D_e ∪ D_b of a setting);
    `terms` = 1 or 2 (row indices into that storage, weights); `init` = the initial policy
    network's state dict (layout of `shared.il.nets.mlp`); `mean`/`std` = its state normaliser.
    With `dwbc` the member is a DWBC run: its terms are (D_e rows, D_b rows), their weights
    unused (the discriminator sets them)."""

    storage: int
    terms: list[tuple[np.ndarray, np.ndarray]]
    init: dict[str, torch.Tensor]
    mean: np.ndarray
    std: np.ndarray
    dwbc: DWBCSpec | None = None


def action_terms(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """atanh(a) and log(1 - a^2) (N, A) of actions clipped to +-(1 - eps), as
    `tanh_gaussian_log_prob` computes them (so a log-likelihood from them is the same number)."""
    a = a.clamp(-1 + ACTION_EPS, 1 - ACTION_EPS)
    return torch.atanh(a), torch.log1p(-a * a)


class EnsembleDWBCDiscriminator(torch.nn.Module):
    """Kd `shared.il.dwbc.DWBCDiscriminator`s: sa (Kd, N, S + A) normalised, logp (Kd, N) ->
    d (Kd, N), clipped to [lo, hi]."""

    def __init__(self, members: int, sa_dim: int, clip: tuple[float, float]):
        super().__init__()
        self.branch_sa = EnsembleLinear(members, sa_dim, 128)
        self.branch_logp = EnsembleLinear(members, 1, 128)
        self.head = torch.nn.ModuleList([EnsembleLinear(members, 256, 256),
                                         EnsembleLinear(members, 256, 1)])
        self.lo, self.hi = clip

    def load_member(self, k: int, st: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for layer, name in ((self.branch_sa, "branch_sa"), (self.branch_logp, "branch_logp"),
                                (self.head[0], "head.1"), (self.head[1], "head.3")):
                layer.weight[k] = st[f"{name}.weight"].t()
                layer.bias[k, 0] = st[f"{name}.bias"]

    def forward(self, sa: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
        x = (logp.clamp(LOG_PI_MIN, LOG_PI_MAX) - LOG_PI_MIN) / (LOG_PI_MAX - LOG_PI_MIN)
        h = torch.cat([self.branch_sa(sa), self.branch_logp(x[..., None])], -1)
        h = self.head[1](torch.relu(self.head[0](torch.relu(h))))
        return F.hardtanh(torch.sigmoid(h).squeeze(-1), self.lo, self.hi)


class EnsembleBC:
    """K weighted-BC and DWBC runs as one ensemble (see the module docstring). The DWBC members
    must follow all the others. `step()` = `update(*sample())`."""

    def __init__(self, members: list[Member], storages: list[tuple[np.ndarray, np.ndarray]],
                 hidden: int, batch: int, lr: float, weight_decay: float,
                 device: str | torch.device = "cpu", seed: int = 0):
        if not members:
            raise ConfigError("ensemble: no members")
        S, A = storages[0][0].shape[1], storages[0][1].shape[1]
        for obs, act in storages:
            if obs.shape[1] != S or act.shape[1] != A:
                raise ConfigError("ensemble: every member needs the same state and action size")
        dw = [m.dwbc is not None for m in members]
        if dw != sorted(dw):
            raise ConfigError("ensemble: the DWBC members must follow all the others")
        dev = self.device = torch.device(device)
        self.K, self.B, self.S, self.A, self.hidden = len(members), batch, S, A, hidden
        self.Kd = sum(dw)
        # one table of rows per (storage, normaliser): [normalised s | a | atanh a | log(1-a^2)]
        tables, starts, key_of = [], [], {}
        pos = 0
        for m in members:
            key = (m.storage, np.asarray(m.mean, np.float32).tobytes(),
                   np.asarray(m.std, np.float32).tobytes())
            if key not in key_of:
                obs, act = (torch.as_tensor(x, dtype=torch.float32) for x in storages[m.storage])
                mean = torch.as_tensor(m.mean, dtype=torch.float32)
                std = torch.as_tensor(m.std, dtype=torch.float32).clamp_min(NORM_EPS)
                tables.append(torch.cat([(obs - mean) / std, act, *action_terms(act)], 1))
                key_of[key] = len(starts)
                starts.append(pos)
                pos += len(obs)
        self.table = torch.cat(tables).to(dev)
        idx, w, off, n = [], [], np.zeros((self.K, 2), np.int64), np.zeros((self.K, 2), np.int64)
        first = np.zeros((self.K, 1), np.int64)  # where each member's table block starts
        pos = 0
        for k, m in enumerate(members):
            if not 1 <= len(m.terms) <= 2 or (m.dwbc is not None and len(m.terms) != 2):
                raise ConfigError(f"ensemble: member {k} has {len(m.terms)} terms (1 or 2; "
                                  "DWBC: 2)")
            first[k] = starts[key_of[(m.storage, np.asarray(m.mean, np.float32).tobytes(),
                                      np.asarray(m.std, np.float32).tobytes())]]
            for t in range(2):
                rows, wt = m.terms[t] if t < len(m.terms) else (np.zeros(1, np.int64),
                                                                np.zeros(1, np.float32))
                if len(rows) == 0 or len(rows) != len(wt):
                    raise ConfigError(f"ensemble: member {k} term {t}: {len(rows)} rows, "
                                      f"{len(wt)} weights")
                idx.append(first[k, 0] + np.asarray(rows, np.int64))
                w.append(np.asarray(wt, np.float32))
                off[k, t], n[k, t] = pos, len(rows)
                pos += len(rows)
        self.idx = torch.as_tensor(np.concatenate(idx), device=dev)
        self.w = torch.as_tensor(np.concatenate(w), device=dev)
        self.off = torch.as_tensor(off, device=dev)[..., None]  # (K, 2, 1)
        self.n = torch.as_tensor(n, device=dev)[..., None]
        self.first = torch.as_tensor(first, device=dev)
        self.net = EnsembleMLP(self.K, S, 2 * A, hidden).to(dev)
        with torch.no_grad():
            for k, m in enumerate(members):
                for i, layer in enumerate(self.net.layers):
                    layer.weight[k] = m.init[f"{2 * i}.weight"].t().to(dev)
                    layer.bias[k, 0] = m.init[f"{2 * i}.bias"].to(dev)
        params = list(self.net.parameters())
        if self.Kd:
            specs = [m.dwbc for m in members[self.K - self.Kd:]]
            if len({tuple(s.clip) for s in specs}) > 1:
                raise ConfigError("ensemble: the DWBC members need one discriminator clip")
            alpha = torch.tensor([[float(s.alpha)] for s in specs], device=dev)  # (Kd, 1)
            eta = torch.tensor([[float(s.eta)] for s in specs], device=dev)
            e_rows = torch.arange(2 * batch, device=dev) < batch  # (2B,): D_e rows, then D_b's
            self.d_is_e = e_rows.expand(self.Kd, -1)
            self.d_eta, self.d_alpha_m1 = eta, alpha - 1
            # the PU loss, sum_rows c_d log d + c_1md log(1 - d), of every member: its mean over B
            # of -log d_e - log(1 - d_o) / eta + log(1 - d_e)
            self.pu_d = torch.where(e_rows, -1.0, 0.0).expand(self.Kd, -1) / batch
            self.pu_1md = torch.where(e_rows, 1.0, -1 / eta) / batch
            self.disc = EnsembleDWBCDiscriminator(self.Kd, S + A, tuple(specs[0].clip)).to(dev)
            for k, s in enumerate(specs):
                self.disc.load_member(k, {name: x.to(dev) for name, x in s.disc.items()})
            params += list(self.disc.parameters())  # DWBC's own Adam has the policy's lr and decay
        # one group: one fused kernel (and one step count) for the policies and discriminators
        self.opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        self.gen = torch.Generator(device=dev).manual_seed(seed)
        self._members = members

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One step's rows (K, 2B) (indices into `table`) and their weights (K, 2B)."""
        u = torch.rand(self.K, 2, self.B, generator=self.gen, device=self.device)
        j = (u * self.n).long().minimum(self.n - 1) + self.off  # (K, 2, B)
        return self.idx[j].view(self.K, 2 * self.B), self.w[j].view(self.K, 2 * self.B)

    def storage_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """`sample()`'s rows as indices into each member's own storage (K, 2B)."""
        return rows - self.first

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log pi_k(a|s) (K, N) from table rows x (K, N, S + 3A)."""
        S, A = self.S, self.A
        mean, log_std = self.net(x[..., :S]).chunk(2, dim=-1)
        mean = F.hardtanh(mean, -MEAN_CLIP, MEAN_CLIP)
        log_std = F.hardtanh(log_std, LOG_STD_MIN, LOG_STD_MAX)
        u, l1p = x[..., S + A:S + 2 * A], x[..., S + 2 * A:]
        logp = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - HALF_LOG_2PI
        return (logp - l1p).sum(-1)

    def log_prob(self, rows: torch.Tensor) -> torch.Tensor:
        """log pi_k(a|s) (K, N) of every member k on its own rows (K, N) of `table`."""
        return self._log_prob(self.table[rows])

    def update(self, rows: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """One Adam step of every member (DWBC's discriminators too) on the given rows and fixed
        weights (a DWBC member's are replaced); the summed policy loss (not synchronised)."""
        K, B, f = self.K, self.B, self.K - self.Kd
        x = self.table[rows]  # (K, 2B, S + 3A)
        logp = self._log_prob(x)
        total = None
        if self.Kd:
            d = self.disc(x[f:, :, :self.S + self.A], logp[f:].detach())  # (Kd, 2B)
            om = 1 - d
            # PU learning (eta = class prior of expert-like data inside D_o), as shared.il.dwbc
            total = torch.addcmul(self.pu_d * torch.log(d), self.pu_1md, torch.log(om)).sum()
            d, om = d.detach(), om.detach()
            w_e = self.d_alpha_m1 - self.d_eta / (d * om)  # alpha - (eta / (d (1 - d)) + 1)
            w_o = (1 / om - 1) * (d >= 0.5)  # 1 / (1 - d) - 1, 0 where d < 0.5
            w = torch.cat([w[:f], torch.where(self.d_is_e, w_e, w_o)])
        loss = -(w * logp).view(K, 2, B).mean(-1).sum()
        self.opt.zero_grad(set_to_none=True)
        (loss if total is None else loss + total).backward()
        self.opt.step()
        return loss

    def step(self) -> torch.Tensor:
        """One step of every member on freshly sampled rows; the summed policy loss."""
        return self.update(*self.sample())

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
