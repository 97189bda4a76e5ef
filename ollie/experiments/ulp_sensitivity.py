"""How much one rounding-level change moves an offline phase: the bench's offline job for one
environment and seed, as the bench runs it and with one element of d's first weight moved by one
ulp (`torch.nextafter` upwards) before step 0.

    python -m ollie.experiments.ulp_sensitivity [--env hopper] [--seed 2] [--elements -1,0,1,2]
        [--out runs/ollie/ulp.json] [--set key=value ...]

Element -1 is the unperturbed run; for each run the moved value (before, after), the score of
π⁰, d's loss at steps 0, 1 and the last of its steps, R̃'s mean on D_e and y's mean on D_e / D_s.
The table behind
results/ollie/NOTES.md's "The offline phase turns a rounding-level difference into hop or fall"
(Hopper seed 2: 105.8 unperturbed; 29.6 / 58.0 / 4.5 with elements 0 / 1 / 2 moved). One core,
one offline phase at a time (~150 s each on the development machine).
"""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from ollie.bench import SETTINGS, arm_config
from ollie.data import build_data, state_stats
from ollie.train import build_pretrainer, fit_offline
from shared.cli import run
from shared.errors import ConfigError
from shared.il.models import Normalizer, TanhGaussianPolicy
from shared.io import atomic_write_json
from shared.log import setup_logging
from shared.runtime import set_seed

log = logging.getLogger("ollie.ulp_sensitivity")


def offline_run(cfg, data, element: int) -> dict:
    """`train.pretrain`'s offline phase of `cfg` on `data`, with d's first weight's `element` (if
    >= 0) moved one ulp up after initialisation; d's losses are recorded step by step."""
    set_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    mean, std = state_stats(data)
    norm = Normalizer(torch.as_tensor(mean), torch.as_tensor(std))
    S, A = data.expert["observations"].shape[1], data.expert["actions"].shape[1]
    policy = TanhGaussianPolicy(S, A, cfg.policy_hidden, norm)
    method = build_pretrainer(cfg, data, norm)
    moved = None
    if element >= 0:
        with torch.no_grad():
            w = next(method.d.parameters()).view(-1)
            if element >= w.numel():
                raise ConfigError(f"--elements: {element} is past d's first weight "
                                  f"({w.numel()} elements)")
            before = float(w[element])
            w[element] = torch.nextafter(w[element], torch.tensor(float("inf")))
            moved = (before, float(w[element]))
    losses: list[float] = []
    step = method.prep_step

    def recorded(i, g):
        loss = step(i, g)
        if i < cfg.offline.disc_steps:
            losses.append(loss)
        return loss

    method.prep_step = recorded
    off = fit_offline(cfg, data, policy, method, gen, None)
    n_e = len(data.expert["actions"])
    y = method.y_o
    return {"element": element, "moved": moved, "score": off["score"],
            "d_loss": {"0": losses[0], "1": losses[1], str(len(losses) - 1): losses[-1]},
            "reward_mean_expert": float(method.reward[:n_e].mean()),
            "y_mean_expert": float(y[:n_e].mean()), "y_mean_imperfect": float(y[n_e:].mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ollie.experiments.ulp_sensitivity",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="hopper", help=f"one of {', '.join(SETTINGS)}")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--elements", default="-1,0,1,2",
                   help="elements of d's first weight to move (-1: none), comma-separated")
    p.add_argument("--out", default="runs/ollie/ulp_sensitivity.json")
    p.add_argument("--set", action="append", default=[], dest="overrides",
                   help="config override key=value (repeatable)")
    args = p.parse_args(argv)
    setup_logging()
    if args.env not in SETTINGS:
        raise ConfigError(f"--env: unknown '{args.env}' (known: {', '.join(SETTINGS)})")
    try:
        elements = [int(e) for e in args.elements.split(",") if e]
    except ValueError:
        raise ConfigError(f"--elements: integers expected, got {args.elements!r}") from None
    cfg = arm_config(args.env, "ollie", args.seed, False, list(args.overrides))
    torch.set_num_threads(1)
    data = build_data(cfg.data)
    rows = []
    for k in elements:
        rows.append(offline_run(cfg, data, k))
        log.info("%s seed %d element %d: %s", args.env, args.seed, k, rows[-1])
    atomic_write_json(args.out, {"env": args.env, "seed": args.seed, "rows": rows})
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
