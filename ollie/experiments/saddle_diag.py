"""Probe of the offline saddle point on a real dataset: what y puts on expert vs other rows.

    python -m ollie.experiments.saddle_diag [--quick] [--set key=value ...]

Trains OLLIE's d, then (ν, y), printing every 1000 saddle steps E_o[y], the share of y's mass on
expert rows (D_e and the expert trajectories mixed into D_s, beside their share of rows), the
range of ν and, with `offline.absorbing`, the absorbing state's ν and log y. At the end:

- R̃: its mean on expert / other rows, the chance that an expert row outranks another (AUC) and
  the share of rows at d's clip;
- y: its mean over expert rows by time step within their episode (the flow's γ^t decay shows
  here), its effective number of rows (Σy)² / Σy² over D_o and over the expert rows, and that
  of an extraction batch;
- δ_ν = R̃ + γν(s') - ν(s): its mean on expert / other rows, how far log y is from the pointwise
  optimum δ_ν - 1, and ν along the expert episodes;
- where the 100 largest y sit (expert, terminal, time step, steps left in their episode), and
  y's expert share among the rows with y above 0.5, 1, 2, 4 times E[y].

These are the numbers behind results/ollie/NOTES.md.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from ollie.config import TrainConfig, load_train_config
from ollie.data import build_data, state_stats
from ollie.offline import OLLIEPretrainer
from shared.cli import parse_args, run
from shared.il.datasets import episode_bounds
from shared.il.models import Normalizer

BINS = (0, 50, 100, 200, 400, 700, 1000)  # time-step bins within an episode


def expert_mask(data, n_expert_in_s: int) -> torch.Tensor:
    """(N_o,) bool: D_e rows, then the last `n_expert_in_s` episodes of D_s."""
    n_e, n_s = len(data.expert["actions"]), len(data.imperfect["actions"])
    mask = torch.zeros(n_e + n_s, dtype=torch.bool)
    mask[:n_e] = True
    if n_expert_in_s:
        mask[n_e + episode_bounds(data.imperfect)[-n_expert_in_s][0]:] = True
    return mask


def time_steps(union: dict) -> torch.Tensor:
    """(N_o,) time step of every row within its episode."""
    t = np.zeros(len(union["actions"]), dtype=np.int64)
    for a, b in episode_bounds(union):
        t[a:b] = np.arange(b - a)
    return torch.as_tensor(t)


def steps_to_end(not_done: np.ndarray, t: torch.Tensor) -> torch.Tensor:
    """(N_o,) rows left in each row's episode after it (0 on its last row)."""
    left = np.zeros(len(not_done), dtype=np.int64)
    for i in range(len(not_done) - 2, -1, -1):
        left[i] = 0 if t[i + 1] == 0 else left[i + 1] + 1
    return torch.as_tensor(left)


def ess(w: torch.Tensor) -> float:
    return float(w.sum() ** 2 / (w ** 2).sum())


def auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """P(a random pos outranks a random neg), ties count half."""
    r = torch.cat([pos, neg]).argsort().argsort().double() + 1
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


@torch.no_grad()
def report(p: OLLIEPretrainer, mask: torch.Tensor, t: torch.Tensor, cfg) -> None:
    c = cfg.offline
    r, y = p.surrogate(), p.weights()
    log_y = y.log()
    nu_s = torch.cat([p.nu(p.s_o[i:i + 8192]) for i in range(0, len(y), 8192)])
    nu_n = torch.cat([p.nu(p.s_next[i:i + 8192]) for i in range(0, len(y), 8192)])
    delta = r + c.gamma * p.not_done * nu_n - nu_s
    e, o = mask, ~mask
    lo, hi = (float(((r - r.min()) < 1e-3).float().mean()),
              float(((r.max() - r) < 1e-3).float().mean()))
    print(f"R~ mean expert {r[e].mean():.2f} other {r[o].mean():.2f}; AUC expert>other "
          f"{auc(r[e], r[o]):.3f}; rows at lower / upper clip {lo:.3f} / {hi:.3f}")
    batch_ess = np.mean([ess(y[torch.randint(len(y), (c.policy_batch,))]) for _ in range(200)])
    print(f"y mass on expert rows {float(y[e].sum() / y.sum()):.3f} (rows "
          f"{float(e.float().mean()):.3f}); E[y] {y.mean():.3f}; ESS D_o {ess(y):.0f} of "
          f"{len(y)}, expert rows {ess(y[e]):.0f} of {int(e.sum())}; mean ESS of a "
          f"{c.policy_batch}-row uniform batch {batch_ess:.1f}")
    for f in (0.5, 1.0, 2.0, 4.0):
        keep = y >= f * y.mean()
        w = y * keep
        print(f"rows with y >= {f} E[y]: {int(keep.sum())} ({int((keep & e).sum())} expert of "
              f"{int(e.sum())}); y mass on expert rows among them {float(w[e].sum() / w.sum()):.3f}"
              f"; early rows (time step < 50) among them: {int((keep & o & (t < 50)).sum())} other,"
              f" {int((keep & e & (t < 50)).sum())} expert")
    for name, m in (("expert", e), ("other", o)):
        bins = [f"{a}-{b}: {y[m & (t >= a) & (t < b)].mean():.3g}" for a, b in zip(BINS, BINS[1:])
                if bool((m & (t >= a) & (t < b)).any())]
        print(f"mean y on {name} rows by time step  " + ", ".join(bins))
    nub = [f"{a}-{b}: {nu_s[e & (t >= a) & (t < b)].mean():.1f}" for a, b in zip(BINS, BINS[1:])
           if bool((e & (t >= a) & (t < b)).any())]
    print("mean nu(s) on expert rows by time step  " + ", ".join(nub))
    print(f"delta_nu mean expert {delta[e].mean():.3f} other {delta[o].mean():.3f} (std "
          f"{delta.std():.3f}); AUC expert>other {auc(delta[e], delta[o]):.3f}; "
          f"|log y - (delta - 1)| median {(log_y - delta + 1).abs().median():.3f}; "
          f"corr(log y, delta) {float(torch.corrcoef(torch.stack([log_y, delta]))[0, 1]):.3f}")
    term = p.not_done == 0
    left = steps_to_end(p.not_done.numpy(), t)
    top = y.topk(min(100, len(y))).indices
    print(f"the 100 largest y: mass {float(y[top].sum() / y.sum()):.3f}, expert "
          f"{float(e[top].float().mean()):.2f}, terminal {float(term[top].float().mean()):.2f}, "
          f"median time step {int(t[top].median())}, median steps to the episode's end "
          f"{int(left[top].median())}; delta there {delta[top].mean():.2f}, "
          f"gamma nu(s') - nu(s) there {(c.gamma * p.not_done * nu_n - nu_s)[top].mean():.1f} "
          f"vs on other rows {(c.gamma * p.not_done * nu_n - nu_s)[o].mean():.1f}")
    print(f"y mass on terminal transitions {float(y[term].sum() / y.sum()):.3f} "
          f"({int(term.sum())} of {len(y)} rows); {p.stats}")


def main(argv: list[str] | None = None) -> int:
    args, _ = parse_args(argv, TrainConfig, prog="ollie.experiments.saddle_diag",
                         description=__doc__.split("\n\n")[0],
                         default_config="configs/ollie/hopper.yaml")
    cfg = load_train_config(args.config, list(args.overrides), args.quick)
    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    data = build_data(cfg.data)
    mean, std = state_stats(data)
    p = OLLIEPretrainer(data, Normalizer(torch.as_tensor(mean), torch.as_tensor(std)),
                        cfg.offline)
    mask, t = expert_mask(data, cfg.data.n_expert_in_s), time_steps(data.union)
    gen = torch.Generator().manual_seed(cfg.seed)
    c = cfg.offline
    for i in range(p.prep_steps):
        p.prep_step(i, gen)
        k = i + 1 - c.disc_steps
        if k > 0 and (k % 1000 == 0 or i + 1 == p.prep_steps):
            with torch.no_grad():
                y, nu = p.y(p.x_o).exp(), p.nu(p.s_o)
            line = (f"saddle step {k}: E[y] {y.mean():.3f}, y mass on expert rows "
                    f"{y[mask].sum() / y.sum():.3f} (rows {float(mask.float().mean()):.3f}), "
                    f"nu in [{nu.min():.1f}, {nu.max():.1f}]")
            if c.absorbing:
                line += (f", nu_abs {float(p.nu_abs) / (1 - c.gamma):.1f}, "
                         f"log y_abs {float(p.log_y_abs):.2f}")
            print(line, flush=True)
    report(p, mask, t, cfg)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
