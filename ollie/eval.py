"""Evaluate a trained policy of a run directory, in-family and under out-of-family dynamics.

    python -m ollie.eval --out runs/ollie/train-... [--set eval_episodes=20] [--quick]

Reads `model.json` + `policy.safetensors` (or `policy0.safetensors` with `--set
which=policy0`), never a pickle, and reports the normalised score on the training dynamics and
under each `data.PERTURBATIONS` entry. Writes `eval.json` into the run directory.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import torch

from ollie.data import PERTURBATIONS, make_perturbed_env
from shared.cli import parse_args, run
from shared.errors import ConfigError, DataError
from shared.il.generate import reference_returns
from shared.il.models import Normalizer, TanhGaussianPolicy
from shared.il.rollout import evaluate_policy
from shared.io import atomic_write_json, read_json
from shared.log import get_logger
from shared.metrics import normalized_return

__all__ = ["EvalConfig", "load_policy", "evaluate_run", "main"]

log = get_logger("ollie.eval")


@dataclass
class EvalConfig:
    which: Literal["policy", "policy0"] = "policy"  # final policy or the offline π⁰
    eval_episodes: int = 10  # deterministic episodes per dynamics
    seed: int = 0  # evaluation seed
    device: str = "cpu"  # unused: evaluation runs on the CPU


def load_policy(run_dir: str | Path, which: str = "policy") -> tuple[TanhGaussianPolicy, dict]:
    """(policy, model.json) from a run directory (safetensors weights). Runs no code from the
    files; model.json's sizes are checked, the policy is shaped on the meta device and the
    weights' header checked against it before anything is allocated: a corrupt, foreign or
    mismatched file is a one-line DataError."""
    from shared.io import load_weights
    from shared.validate import check_state_dict, safetensors_shapes

    run_dir = Path(run_dir)
    meta = read_json(run_dir / "model.json")
    path = run_dir / f"{which}.safetensors"
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    src = run_dir / "model.json"
    ok = isinstance(meta, dict) and all(
        isinstance(meta.get(k), int) and not isinstance(meta.get(k), bool)
        and 0 < meta[k] <= 4096 for k in ("obs_dim", "act_dim", "hidden")) \
        and isinstance(meta.get("env_id"), str)
    if not ok:
        raise DataError(f"{src}: needs env_id and obs_dim, act_dim, hidden in 1..4096")
    S, A = meta["obs_dim"], meta["act_dim"]
    with torch.device("meta"):  # shapes only
        shape = TanhGaussianPolicy(S, A, meta["hidden"], Normalizer(torch.zeros(S), torch.ones(S)))
    want = {k: tuple(v.shape) for k, v in shape.state_dict().items()}
    got = safetensors_shapes(path)
    bad = sorted(set(want) ^ set(got)) or [k for k in want if got[k] != want[k]]
    if bad:
        raise DataError(f"{path}: weights do not fit model.json (tensor '{bad[0]}')")
    state, _ = load_weights(path, "ollie.weights")
    pol = TanhGaussianPolicy(S, A, meta["hidden"], Normalizer(torch.zeros(S), torch.ones(S)))
    pol.load_state_dict(check_state_dict(state, shape, str(path)))
    return pol.eval(), meta


def evaluate_run(run_dir: str | Path, cfg: EvalConfig) -> dict:
    pol, meta = load_policy(run_dir, cfg.which)
    ref = reference_returns(meta["env_id"])

    def score(make=None) -> float:
        rets = evaluate_policy(lambda o: pol.act(torch.as_tensor(o)).numpy(), meta["env_id"],
                               cfg.eval_episodes, 300_000 + cfg.seed, make=make)
        return normalized_return(float(rets.mean()), ref["random"], ref["expert"])

    out = {"env_id": meta["env_id"], "which": cfg.which, "episodes": cfg.eval_episodes,
           "in_family": score()}
    for name, (m, f) in PERTURBATIONS.items():
        out[f"ood_{name}"] = score(partial(make_perturbed_env, mass_scale=m, friction_scale=f))
    return out


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv, EvalConfig, prog="ollie.eval",
                           description=__doc__.split("\n\n")[0])
    if not args.out:
        raise ConfigError("--out: give the run directory to evaluate")
    if cfg.eval_episodes < 1:
        raise ConfigError("eval_episodes must be >= 1")
    if args.quick:
        cfg.eval_episodes = min(cfg.eval_episodes, 3)
    torch.set_num_threads(1)
    res = evaluate_run(args.out, cfg)
    atomic_write_json(Path(args.out) / "eval.json", res)
    log.info("%s", res)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
