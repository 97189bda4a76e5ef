"""Pick the expert and medium actors out of a SAC run's `snapshots.pt` and save them as policies.

    python -m shared.il.export SNAPSHOTS.pt --name hopper [--medium-fraction 0.33]

expert = the snapshot with the highest evaluation return; medium = the earlier snapshot of the
same agent whose return is closest to `medium_fraction` x the expert's (D4RL's "medium" policies
are likewise a partially trained SAC agent). Files go to
`shared/il/policies/<name>_{expert,medium}.pt`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from shared.cli import run
from shared.errors import DataError
from shared.il.policy import save_policy
from shared.log import get_logger, setup_logging
from shared.validate import brief

log = get_logger("shared.il.export")
POLICY_DIR = Path(__file__).parent / "policies"


def pick_snapshots(snapshots: list[dict], medium_fraction: float) -> tuple[dict, dict]:
    """-> (expert, medium) snapshot dicts (each with step, eval_return, state_dict)."""
    if not snapshots:
        raise DataError("snapshots list is empty")
    expert = max(snapshots, key=lambda s: s["eval_return"])
    earlier = [s for s in snapshots if s["step"] < expert["step"]] or [expert]
    target = medium_fraction * expert["eval_return"]
    medium = min(earlier, key=lambda s: abs(s["eval_return"] - target))
    return expert, medium


def export(snapshot_file: str | Path, name: str, out_dir: str | Path = POLICY_DIR,
           medium_fraction: float = 1 / 3) -> dict[str, Path]:
    snapshot_file = Path(snapshot_file)
    if not snapshot_file.is_file():
        raise DataError(f"snapshot file not found: {snapshot_file}")
    try:  # weights only: a snapshot file runs no code when read
        d = torch.load(snapshot_file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{snapshot_file}: not a snapshot file ({brief(e)})") from None
    if not isinstance(d, dict) or "snapshots" not in d:
        raise DataError(f"{snapshot_file}: not a snapshot file (no 'snapshots')")
    expert, medium = pick_snapshots(d["snapshots"], medium_fraction)
    out = {}
    for level, snap in (("expert", expert), ("medium", medium)):
        path = Path(out_dir) / f"{name}_{level}.pt"
        save_policy(path, d["env_id"], snap["state_dict"], d["obs_dim"], d["act_dim"],
                    d["hidden"], d["depth"], d["action_low"], d["action_high"],
                    level=level, train_steps=snap["step"], train_eval_return=snap["eval_return"],
                    seed=d["seed"])
        log.info("%s: %s policy from step %d (eval return %.0f during training)", path, level,
                 snap["step"], snap["eval_return"])
        out[level] = path
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shared.il.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("snapshots", help="snapshots.pt written by shared.il.train_expert")
    p.add_argument("--name", required=True, help="file stem, e.g. hopper")
    p.add_argument("--out", default=str(POLICY_DIR), help="output folder")
    p.add_argument("--medium-fraction", type=float, default=1 / 3,
                   help="medium policy's target return as a fraction of the expert's")
    args = p.parse_args(argv)
    setup_logging()
    export(args.snapshots, args.name, args.out, args.medium_fraction)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
