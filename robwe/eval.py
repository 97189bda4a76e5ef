"""`python -m robwe.eval --run DIR`: ownership checks and attacks on a trained RobWE run.

Loads DIR/config.yaml and DIR/ckpt.pt (written by `robwe.train`), rebuilds the federation
(keys are derived from the config's seed) and writes DIR/eval.json and DIR/uniqueness.png:
the N x N uniqueness matrix (every personalised model against every client's head key),
bit and task accuracy under magnitude pruning (0-90%), fine-tuning on another client's data,
and overwriting with the attacker's own watermark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robwe.config import RobWEConfig
from robwe.federation import build_federation
from robwe.robustness import finetune_curve, overwrite_scores, prune_curve, uniqueness, victims
from shared.cli import build_parser, parse_args, run
from shared.config import load_config
from shared.errors import DataError, UserError
from shared.io import Checkpointer, atomic_write_json
from shared.log import get_logger

log = get_logger("robwe.eval")


def evaluate_run(run_dir: Path, num_victims: int = 5, finetune_epochs: int = 10,
                 rates: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                 overwrite_epochs: int = 10) -> dict:
    cfg = load_config(run_dir / "config.yaml", RobWEConfig)
    torch.set_num_threads(cfg.threads)
    state = Checkpointer(run_dir).load()
    if state is None:
        raise DataError(f"{run_dir}: no ckpt.pt (train first with robwe.train --out {run_dir})")
    fed = build_federation(cfg)
    fed.strategy.load_state_dict(state["strategy"])
    private = state["private"]
    out: dict = {"round": state["round"]}
    vic = victims(fed, num_victims)
    out["victims"] = vic
    if fed.head_keys:
        u = uniqueness(fed, private)
        off = u[~np.eye(len(u), dtype=bool)]
        out["uniqueness"] = {"matrix": u.tolist(), "diagonal_min": float(np.diag(u).min()),
                             "off_diagonal_mean": float(off.mean())}
        _heatmap(u, run_dir / "uniqueness.png")
    out["prune_curve"] = prune_curve(fed, private, vic, list(rates))
    out["finetune_curve"] = finetune_curve(fed, private, vic, finetune_epochs)
    if fed.head_keys and fed.slice_keys:
        out["overwrite"] = overwrite_scores(fed, private, vic, overwrite_epochs)
    atomic_write_json(run_dir / "eval.json", out)
    return out


def _heatmap(u: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shared.bench import save_figure

    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    im = ax.imshow(u, vmin=0, vmax=1)
    ax.set_xlabel("head key of client j")
    ax.set_ylabel("model of client i")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


@dataclass
class EvalConfig:
    """What `robwe.eval` measures on a finished run."""

    victims: int = 5  # clients attacked
    finetune_epochs: int = 10  # fine-tuning attack epochs on another client's data
    overwrite_epochs: int = 10  # overwriting attack epochs


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("robwe.eval", __doc__, run="a run directory written by robwe.train")
    args, ec = parse_args(argv, EvalConfig, prog="robwe.eval", description=__doc__,
                          parser=parser, quick={"victims": 2, "finetune_epochs": 2,
                                                "overwrite_epochs": 2})
    if args.run is None:
        raise UserError("--run DIR is required (a robwe.train run dir)")
    if ec.victims < 1 or ec.finetune_epochs < 0 or ec.overwrite_epochs < 0:
        raise UserError("victims must be >= 1 and the epochs >= 0")
    run_dir = Path(args.run)
    out = evaluate_run(run_dir, ec.victims, ec.finetune_epochs,
                       overwrite_epochs=ec.overwrite_epochs)
    if "uniqueness" in out:
        log.info("uniqueness: diagonal min %.3f, off-diagonal mean %.3f",
                 out["uniqueness"]["diagonal_min"], out["uniqueness"]["off_diagonal_mean"])
    half = [r for r in out["prune_curve"] if abs(r["rate"] - 0.5) < 1e-9]
    if half:
        log.info("50%% pruning: %s", half[0])
    log.info("after fine-tuning: %s", out["finetune_curve"][-1])
    log.info("wrote %s", run_dir / "eval.json")
    return 0


if __name__ == "__main__":
    run(main)
