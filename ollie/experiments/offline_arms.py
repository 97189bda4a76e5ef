"""Offline arms side by side on one dataset: OLLIE, BC-E and DWBC (scores and y's spread).

    python -m ollie.experiments.offline_arms [--quick] [--set key=value ...] [--arms a,b]

Builds D_e and D_s once, runs each offline arm's whole offline phase with the config's budgets
and prints its normalised score; for OLLIE also the share of y's mass on expert rows (D_e and
the expert trajectories mixed into D_s) beside their share of D_o's rows, and y's effective
number of rows. The figures behind
results/ollie/NOTES.md's offline tables.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import torch

from ollie.config import TrainConfig, load_train_config
from ollie.data import build_data, state_stats
from ollie.train import build_pretrainer, fit_offline
from shared.cli import parse_args, run
from shared.il.datasets import episode_bounds
from shared.il.models import Normalizer, TanhGaussianPolicy


def expert_rows(data, n_expert_in_s: int) -> torch.Tensor:
    """Mask (N_o,) of D_o's expert rows: D_e, then the last `n_expert_in_s` episodes of D_s."""
    n_e, n_s = len(data.expert["actions"]), len(data.imperfect["actions"])
    mask = torch.zeros(n_e + n_s, dtype=torch.bool)
    mask[:n_e] = True
    bounds = episode_bounds(data.imperfect)
    if n_expert_in_s:
        mask[n_e + bounds[-n_expert_in_s][0]:] = True
    return mask


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    arms = ["ollie", "bc_expert", "dwbc"]
    if "--arms" in argv:
        k = argv.index("--arms")
        arms = argv[k + 1].split(",")
        del argv[k:k + 2]
    args, _ = parse_args(argv, TrainConfig, prog="ollie.experiments.offline_arms",
                         description=__doc__.split("\n\n")[0],
                         default_config="configs/ollie/hopper.yaml")
    cfg = load_train_config(args.config, list(args.overrides), args.quick)
    torch.set_num_threads(1)
    data = build_data(cfg.data)
    mean, std = state_stats(data)
    norm = Normalizer(torch.as_tensor(mean), torch.as_tensor(std))
    S, A = mean.shape[0], data.expert["actions"].shape[1]
    mask = expert_rows(data, cfg.data.n_expert_in_s)
    for arm in arms:
        c = dataclasses.replace(cfg, pretrain=arm)
        torch.manual_seed(c.seed)
        t0 = time.time()
        method = build_pretrainer(c, data, norm)
        policy = TanhGaussianPolicy(S, A, c.policy_hidden, norm)
        res = fit_offline(c, data, policy, method, torch.Generator().manual_seed(c.seed), None)
        line = f"{arm}: score {res['score']:.1f} ({time.time() - t0:.0f} s)"
        if arm == "ollie":
            y = method.weights()
            line += (f"; y mass on expert rows {float(y[mask].sum() / y.sum()):.3f} "
                     f"(rows {float(mask.float().mean()):.3f}), on D_e "
                     f"{float(y[:len(method.x_e)].sum() / y.sum()):.3f}; effective rows "
                     f"(sum y)^2 / sum y^2 {float(y.sum() ** 2 / (y ** 2).sum()):.0f}")
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
