"""Probe of the offline saddle point on a real dataset: how y spreads over D_o as it trains.

    python -m ollie.experiments.saddle_diag [--quick] [--set key=value ...]

Trains OLLIE's d, then (ν, y), printing every 1000 saddle steps E_o[y], the share of y's mass on
D_e rows (beside D_e's share of rows), the range of ν and, with `offline.absorbing`, the absorbing
state's ν and log y; at the end, the share of y's mass on terminal transitions. These are the
numbers behind results/ollie/NOTES.md.
"""

from __future__ import annotations

import sys

import torch

from ollie.config import TrainConfig, load_train_config
from ollie.data import build_data, state_stats
from ollie.offline import OLLIEPretrainer
from shared.cli import parse_args, run
from shared.il.models import Normalizer


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
    gen = torch.Generator().manual_seed(cfg.seed)
    n_e, c = len(p.x_e), cfg.offline
    for i in range(p.prep_steps):
        p.prep_step(i, gen)
        k = i + 1 - c.disc_steps
        if k > 0 and (k % 1000 == 0 or i + 1 == p.prep_steps):
            with torch.no_grad():
                y, nu = p.y(p.x_o).exp(), p.nu(p.s_o)
            line = (f"saddle step {k}: E[y] {y.mean():.3f}, y mass on D_e "
                    f"{y[:n_e].sum() / y.sum():.3f} (rows {n_e / len(y):.3f}), "
                    f"nu in [{nu.min():.1f}, {nu.max():.1f}]")
            if c.absorbing:
                line += (f", nu_abs {float(p.nu_abs) / (1 - c.gamma):.1f}, "
                         f"log y_abs {float(p.log_y_abs):.2f}")
            print(line, flush=True)
    y = p.weights()
    term = p.not_done == 0
    print(f"y mass on terminal transitions {float(y[term].sum() / y.sum()):.3f} "
          f"({int(term.sum())} of {len(y)} rows); {p.stats}")
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
