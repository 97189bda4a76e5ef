"""Train SAC expert policies.

    python -m shared.il.train_expert --config shared/il/configs/hopper.yaml

Writes into the run dir (`--out`, default runs/shared_il/sac-<time>): `ckpt.pt` (resume by
rerunning with the same --out, under the same config but for `RESUME_FREE`), `snapshots.pt`
(actor snapshots of the best agent with their evaluation returns) and `history.json`.
Export committed policies with `shared.il.export`.
"""

from __future__ import annotations

import sys

import torch

from shared.cli import parse_args, run
from shared.config import save_config
from shared.il.sac import SACConfig, train_sac
from shared.io import atomic_write_json, check_resume, make_run_dir
from shared.log import get_logger
from shared.runtime import pick_device

log = get_logger("shared.il.train_expert")
# what a resumed run may change: the step budget (no schedule depends on it; the replay buffer
# goes on filling as in the longer run), checkpointing and the wall-clock limit
RESUME_FREE = ("total_steps", "ckpt_every", "ckpt_buffer", "time_limit_s")


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(
        argv, SACConfig, prog="shared.il.train_expert",
        description="Train E independent SAC agents (seeds) on a gymnasium MuJoCo env in lockstep "
                    "and keep actor snapshots of the best one. Rerun with the same --out to "
                    "resume from its checkpoint.",
        quick={"total_steps": 2_000, "learning_starts": 500, "eval_every": 1_000,
               "eval_episodes": 1})
    try:
        cfg.validate()
    except ValueError as e:
        from shared.errors import ConfigError

        raise ConfigError(str(e)) from None
    if not cfg.device.startswith("cuda"):
        torch.set_num_threads(1)
    if args.out is not None:  # an existing run: before its config.yaml
        check_resume(args.out, cfg, RESUME_FREE)
    device = pick_device(cfg.device)
    run_dir = make_run_dir(args.out, "shared_il", "sac")
    save_config(cfg, run_dir / "config.yaml")
    log.info("training %d SAC agent(s) on %s (%s) -> %s", cfg.num_agents, cfg.env_id, device,
             run_dir)
    summary = train_sac(cfg, run_dir, device)
    atomic_write_json(run_dir / "summary.json", summary)
    log.info("done: %s", summary)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
