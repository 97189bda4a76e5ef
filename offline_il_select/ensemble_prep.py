"""The preparations of many runs at once: their discriminators trained in lockstep on one device.

ILID's preparation (Alg. 1, steps 1-3) and ISW-BC's are nearly all discriminator training: at the
full bench's budget 2 x 10k steps for ILID (d(s), then D(s, a)) and 10k steps with a gradient
penalty for ISW-BC's c(s, a), against well under a second for scoring D_b, selecting D_s and
weighting. One step of one such discriminator on a GPU is a few dozen tiny kernels, so its time
is launch overhead, as for the policies (`ensemble.py`). `train_discriminators` trains K
`shared.il.models.Discriminator`s of one input size as one `EnsembleDiscriminator` (one batched
matmul per layer) with one backward pass and one fused Adam step for all of them:

    loss = sum_k  -E_{pos_k}[log d_k(x)] - E_{neg_k}[log(1 - d_k(x))]
                  + lambda_k E_xi[(||grad_x logit_k(xi)|| - 1)^2]

(xi: interpolates of positives and negatives and of negatives and shuffled negatives), which is
`shared.il.discriminator.train_discriminator`'s loss for a member without a penalty (lambda_k = 0)
and `discriminator.train_penalised_discriminator`'s (ISW-BC's) for a penalised one, so each
member gets its own gradient, and Adam with weight decay acts elementwise. Each member keeps its
own initial weights, output clip, normaliser, training sets and Adam state, and draws its batches
from its own run's generator in its single run's order (positives, negatives, then the
interpolation weights and the permutation where penalised): member k's batches are those of its
single run, and it ends with that run's weights up to float rounding (tested).

`prepare_many` runs the preparations of many ILID, ISW-BC and other runs (any mix) in two
rounds: d(s) of every ILID run; the selection of each (`ILID.select`, CPU); then D(s, a) of every
ILID run together with c(s, a) of every ISW-BC run (the same input size; only ISW-BC's members
are penalised); then the weights (`ILID.weigh`, `ISWBC.weigh`). Members whose sizes or budgets
differ train in separate groups.

Shapes: K members, B rows per side per step, D input size (S for d(s), S + A for D(s, a) and
c(s, a)); a step's rows (K, 2B, D), positives first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from offline_il_select.baselines import ISWBC
from offline_il_select.discriminator import draw_penalty_batch, isw_penalty
from offline_il_select.ilid import ILID
from shared.errors import ConfigError
from shared.il.models import Discriminator
from shared.il.nets import EnsembleMLP, member_state_dict

__all__ = ["EnsembleDiscriminator", "train_discriminators", "disc_step", "prepare_many"]

DRAW_CHUNK = 500  # steps whose batches are drawn (on the CPU) and sent to the device at once


class EnsembleDiscriminator(nn.Module):
    """K `Discriminator`s of one input size and width: raw rows x (K, N, D) -> (K, N)
    probabilities, each clipped to its member's clip; `logit(x)` the raw (unclipped) logit, each
    member with its own normaliser."""

    def __init__(self, discs: Sequence[Discriminator]):
        super().__init__()
        first = discs[0].net[0]
        D, hidden = first.in_features, first.out_features
        for d in discs:
            if (d.net[0].in_features, d.net[0].out_features) != (D, hidden):
                raise ConfigError("ensemble discriminator: members need one input size and "
                                  "width")
        self.register_buffer("lo", torch.tensor([[d.lo] for d in discs]))
        self.register_buffer("hi", torch.tensor([[d.hi] for d in discs]))
        self.net = EnsembleMLP(len(discs), D, 1, hidden)
        with torch.no_grad():
            for k, d in enumerate(discs):
                for i, layer in enumerate(self.net.layers):
                    layer.weight[k] = d.net[2 * i].weight.t()
                    layer.bias[k, 0] = d.net[2 * i].bias
        self.register_buffer("mean", torch.stack([d.norm.mean for d in discs])[:, None].cpu())
        self.register_buffer("std", torch.stack([d.norm.std for d in discs])[:, None].cpu())

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(x)).clamp(self.lo, self.hi)

    def export(self, k: int, disc: Discriminator) -> None:
        """Member k's trained weights into `disc` (the plain network it was built from)."""
        disc.net.load_state_dict(member_state_dict(self.net, k))


def _draw(sets: Sequence[tuple[torch.Tensor, torch.Tensor]], gens: Sequence[torch.Generator],
          offsets: list[tuple[int, int]], penalised: Sequence[bool], steps: int, batch: int
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`steps` steps' rows (steps, K, 2B) (indices into the table), interpolation weights
    (steps, K, B, 1) and permutations of the negatives (steps, K, B), drawn from each member's
    generator as its single run draws them (`train_discriminator`, or
    `discriminator.draw_penalty_batch` where penalised)."""
    K = len(sets)
    rows = torch.empty(steps, K, 2 * batch, dtype=torch.int64)
    w = torch.zeros(steps, K, batch, 1)
    perm = torch.zeros(steps, K, batch, dtype=torch.int64)
    for k, ((pos, neg), g, (o_p, o_n), pen) in enumerate(zip(sets, gens, offsets, penalised)):
        ip, ineg, wk, pk = [], [], [], []
        for _ in range(steps):
            if pen:
                a, b, wi, pi = draw_penalty_batch(pos, neg, batch, g)
                wk.append(wi)
                pk.append(pi)
            else:
                a = torch.randint(len(pos), (batch,), generator=g, device=g.device)
                b = torch.randint(len(neg), (batch,), generator=g, device=g.device)
            ip.append(a)
            ineg.append(b)
        rows[:, k, :batch] = torch.stack(ip).cpu() + o_p
        rows[:, k, batch:] = torch.stack(ineg).cpu() + o_n
        if pen:
            w[:, k] = torch.stack(wk).cpu()
            perm[:, k] = torch.stack(pk).cpu()
    return rows, w, perm


def train_discriminators(discs: Sequence[Discriminator],
                         sets: Sequence[tuple[torch.Tensor, torch.Tensor]],
                         gens: Sequence[torch.Generator], steps: int, batch: int, lr: float,
                         weight_decay: float, grad_penalty: Sequence[float],
                         device: str | torch.device = "cpu") -> None:
    """Train `discs` in place, each as `train_discriminator(discs[k], *sets[k], steps, batch, lr,
    weight_decay, gens[k], grad_penalty[k])` trains it, all at once on `device` (the trained
    weights are written back into `discs`, wherever they live). sets[k] = (positives (N1, D),
    negatives (N2, D)); gens[k] is advanced as that call would advance it."""
    if not (len(discs) == len(sets) == len(gens) == len(grad_penalty)) or not discs:
        raise ConfigError("ensemble discriminator: one set pair, generator and penalty per member")
    dev = torch.device(device)
    ens = EnsembleDiscriminator(discs).to(dev)
    # every member's sets in one table of rows; a tensor that several members share is kept once
    parts, start, offsets, n = [], {}, [], 0
    for pair in sets:
        at = []
        for x in pair:
            key = (x.data_ptr(), tuple(x.shape), str(x.device))
            if key not in start:
                start[key] = n
                parts.append(x.to(dev))
                n += len(x)
            at.append(start[key])
        offsets.append(tuple(at))
    table = torch.cat(parts)
    del parts
    penalised = [float(g) > 0 for g in grad_penalty]
    lam = torch.tensor([float(g) for g in grad_penalty], device=dev) if any(penalised) else None
    opt = torch.optim.Adam(ens.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    for c0 in range(0, steps, DRAW_CHUNK):
        rows, w, perm = _draw(sets, gens, offsets, penalised, min(DRAW_CHUNK, steps - c0),
                              batch)
        rows, w, perm = rows.to(dev), w.to(dev), perm.to(dev)
        for t in range(len(rows)):
            disc_step(ens, opt, table[rows[t]], w[t], perm[t], lam)
    for k, d in enumerate(discs):
        ens.export(k, d)


def disc_step(ens: EnsembleDiscriminator, opt: torch.optim.Optimizer, x: torch.Tensor,
              w: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor | None) -> None:
    """One step of every member on rows x (K, 2B, D) (positives first), interpolation weights
    w (K, B, 1), permutations of the negatives perm (K, B) and penalty coefficients lam (K,)
    (None: no member penalised)."""
    B = x.shape[1] // 2
    p = ens(x)
    loss = -(torch.log(p[:, :B]).mean(1) + torch.log(1 - p[:, B:]).mean(1))  # (K,)
    if lam is not None:
        xn = x[:, B:]
        shuffled = torch.gather(xn, 1, perm[..., None].expand(-1, -1, xn.shape[-1]))
        loss = loss + lam * isw_penalty(ens.logit, x[:, :B], xn, shuffled, w)
    opt.zero_grad(set_to_none=True)
    loss.sum().backward()
    opt.step()


def _clocks(device: torch.device) -> tuple[float, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter(), time.process_time()


def _train_round(members: list[tuple], device: torch.device,
                 on_stage: Callable[[str], None] | None, what: str) -> list[tuple[float, float]]:
    """Train members (disc, sets, gen, ILIDConfig, penalty) in groups of one size and budget;
    each member's share (wall s, CPU s) of its group's time."""
    groups: dict[tuple, list[int]] = {}
    for i, (d, _, _, c, _) in enumerate(members):
        key = (d.net[0].in_features, d.net[0].out_features, c.disc_steps, c.disc_batch,
               c.disc_lr, c.disc_weight_decay)
        groups.setdefault(key, []).append(i)
    share = [(0.0, 0.0)] * len(members)
    for key, idx in groups.items():
        t0, c0 = _clocks(device)
        train_discriminators([members[i][0] for i in idx], [members[i][1] for i in idx],
                             [members[i][2] for i in idx], key[2], key[3], key[4], key[5],
                             [members[i][4] for i in idx], device)
        t1, c1 = _clocks(device)
        for i in idx:
            share[i] = ((t1 - t0) / len(idx), (c1 - c0) / len(idx))
        if on_stage is not None:
            on_stage(f"{what}: {len(idx)} discriminators x {key[2]} steps on {device} in "
                     f"{t1 - t0:.0f} s ({1000 * (t1 - t0) / key[2]:.2f} ms a step)")
    return share


def prepare_many(methods: Sequence, gens: Sequence[torch.Generator],
                 device: str | torch.device = "cpu",
                 on_stage: Callable[[str], None] | None = None) -> list[dict]:
    """Each method's `prepare(gens[k])` statistics, with `prep_s` / `prep_cpu_s` (its share of
    the shared rounds plus its own work), the ILID and ISW-BC runs' discriminators trained
    together on `device` (see the module docstring); other methods prepare as they do alone.
    The ILID and ISW-BC methods must already hold their initial discriminators
    (`init_discriminators()` / `init_discriminator()`, called right after the run's setup: they
    draw from the global RNG) and their data on the CPU or `device`."""
    dev = torch.device(device)
    out: list[dict | None] = [None] * len(methods)
    spent = [[0.0, 0.0] for _ in methods]

    def add(k, t):
        spent[k][0] += t[0]
        spent[k][1] += t[1]

    ilid = [k for k, m in enumerate(methods) if isinstance(m, ILID)]
    isw = [k for k, m in enumerate(methods) if isinstance(m, ISWBC)]
    for k, m in enumerate(methods):
        if k not in ilid and k not in isw:
            t0, c0 = _clocks(dev)
            out[k] = m.prepare(gens[k])
            t1, c1 = _clocks(dev)
            add(k, (t1 - t0, c1 - c0))
    for k, t in zip(ilid, _train_round(
            [(methods[k].state_disc, methods[k].state_sets(), gens[k], methods[k].cfg, 0.0)
             for k in ilid], dev, on_stage, "d(s) of ILID")):
        add(k, t)
    for k in ilid:
        t0, c0 = _clocks(dev)
        methods[k].select(methods[k].state_disc.to(dev))
        t1, c1 = _clocks(dev)
        add(k, (t1 - t0, c1 - c0))
    second = [(methods[k].sa_disc, methods[k].sa_sets(), gens[k], methods[k].cfg, 0.0)
              for k in ilid] + [(methods[k].disc, methods[k].sets(), gens[k], methods[k].icfg,
                                 methods[k].bcfg.iswbc_grad_penalty) for k in isw]
    for k, t in zip(ilid + isw, _train_round(second, dev, on_stage,
                                             "D(s, a) of ILID and c(s, a) of ISW-BC")):
        add(k, t)
    for k in ilid + isw:
        m = methods[k]
        t0, c0 = _clocks(dev)
        out[k] = m.weigh((m.sa_disc if k in ilid else m.disc).to(dev))
        t1, c1 = _clocks(dev)
        add(k, (t1 - t0, c1 - c0))
    return [dict(o, prep_s=s[0], prep_cpu_s=s[1]) for o, s in zip(out, spent)]
