"""Datasets from the committed policies, cached; reference returns; the dataset CLI.

    python -m shared.il.generate --env Hopper-v5 --kind expert --episodes 10 --out hopper.hdf5
    python -m shared.il.generate --references      # recompute policies/reference_returns.json
    python -m shared.il.generate --deterministic-references   # add only the deterministic expert's

`dataset(env_id, kind, n_episodes, seed)` rolls out (see `rollout.py`) and caches the arrays
under a key of (env, kind, episodes, seed, the policy file's hash), so a seed always gives the
same dataset and a retrained policy never serves stale data. `parts` > 1 rolls the episodes out
in up to that many slices through `map_fn` (a process pool's `map`: one slice per worker), each
starting at a multiple of the rollout batch: the same dataset (see `rollout.py` for when bit for
bit).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from shared.cache import cached_arrays
from shared.cli import run
from shared.errors import ConfigError, DataError
from shared.il.datasets import episode_returns, write_d4rl_hdf5, write_minari
from shared.il.policy import load_policy
from shared.il.rollout import BATCH, D4RL_REF_SCORES, DATASET_KINDS, evaluate_policy, rollout
from shared.io import atomic_write_json, read_json
from shared.log import get_logger, setup_logging

__all__ = ["POLICY_DIR", "policy_path", "dataset", "reference_returns", "compute_references",
           "deterministic_expert_returns", "add_deterministic_references"]

log = get_logger("shared.il.generate")
POLICY_DIR = Path(__file__).parent / "policies"
REFERENCE_FILE = "reference_returns.json"
ENVS = ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")
ROLLOUT_VERSION = 2  # bump when rollout() changes what a seed produces


def env_stem(env_id: str) -> str:
    """'HalfCheetah-v5' -> 'halfcheetah' (policy file stem)."""
    return env_id.split("-")[0].lower()


def policy_path(env_id: str, level: str, policy_dir: str | Path | None = None) -> Path:
    return Path(policy_dir or POLICY_DIR) / f"{env_stem(env_id)}_{level}.pt"


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def dataset(env_id: str, kind: str, n_episodes: int, seed: int,
            policy_dir: str | Path | None = None, max_steps: int = 1000,
            noise_levels: tuple[float, ...] = (0.1, 0.3, 0.5, 1.0), parts: int = 1,
            map_fn=map) -> dict[str, np.ndarray]:
    """D4RL-layout arrays of `n_episodes` episodes of `kind` (cached; deterministic per seed);
    on a cache miss rolled out in `parts` slices of episodes through `map_fn`."""
    if kind not in DATASET_KINDS:
        raise ConfigError(f"dataset kind '{kind}' unknown (use one of {DATASET_KINDS})")
    policy, phash, policy_file = None, None, None
    if kind != "random":
        level = "medium" if kind in ("medium", "medium_replay") else "expert"
        path = policy_file = policy_path(env_id, level, policy_dir)
        policy, info = load_policy(path)
        if info["env_id"] != env_id:
            raise DataError(f"{path}: policy is for {info['env_id']}, not {env_id}")
        phash = _file_hash(path)
    key = {"env": env_id, "kind": kind, "n": n_episodes, "seed": seed, "policy": phash,
           "max_steps": max_steps, "noise": list(noise_levels)}

    def gen():
        log.info("rolling out %d %s episodes of %s (seed %d)", n_episodes, kind, env_id, seed)
        if parts <= 1:
            return rollout(env_id, n_episodes, seed, kind, policy, noise_levels,
                           max_steps=max_steps)
        blocks = -(-n_episodes // BATCH)  # slices of whole batches, as one rollout groups them
        cut = [min(n_episodes, BATCH * int(b))
               for b in np.linspace(0, blocks, min(parts, blocks) + 1)]
        pfile = str(policy_file) if policy_file else None
        slices = list(map_fn(_rollout_slice, [(env_id, kind, hi - lo, seed, lo, pfile,
                                                noise_levels, max_steps)
                                               for lo, hi in zip(cut[:-1], cut[1:])]))
        return {k: np.concatenate([x[k] for x in slices]) for k in slices[0]}

    return cached_arrays("shared-il-rollout", key, gen, version=ROLLOUT_VERSION)


def _rollout_slice(args: tuple) -> dict[str, np.ndarray]:
    """`rollout` of episodes first .. first + n - 1 (args: env_id, kind, n, seed, first, policy
    file or None, noise_levels, max_steps), in a worker process."""
    env_id, kind, n, seed, first, path, noise_levels, max_steps = args
    policy = load_policy(path)[0] if path else None
    return rollout(env_id, n, seed, kind, policy, noise_levels, max_steps=max_steps, first=first)


def reference_returns(env_id: str, policy_dir: str | Path | None = None) -> dict:
    """{'random': R, 'expert': R, 'd4rl_random': ..., 'd4rl_expert': ...} for normalised scores."""
    path = Path(policy_dir or POLICY_DIR) / REFERENCE_FILE
    refs = read_json(path)
    if env_id not in refs:
        raise DataError(f"{path}: no reference returns for '{env_id}' "
                        f"(run python -m shared.il.generate --references)")
    return refs[env_id]


def deterministic_expert_returns(env_id: str, episodes: int = 100, seed: int = 10_000,
                                 policy_dir: str | Path | None = None) -> np.ndarray:
    """(episodes,) returns of the expert acting deterministically (tanh of its mean), the way
    an imitating policy is evaluated; episode i resets with `seed + i`."""
    policy, _ = load_policy(policy_path(env_id, "expert", policy_dir))
    return evaluate_policy(lambda o: policy.act(o, deterministic=True), env_id, episodes, seed)


def compute_references(episodes: int = 100, seed: int = 10_000,
                       policy_dir: str | Path | None = None) -> dict:
    """Mean returns of `episodes` random, medium and expert episodes per env (expert and medium
    sampled from their policies, as the datasets are; the expert also acting deterministically),
    written to the JSON with D4RL's published references beside them."""
    out = {}
    for env_id in ENVS:
        r = {k: episode_returns(dataset(env_id, k, episodes, seed, policy_dir)) for k in
             ("random", "expert", "medium")}
        d4rl = D4RL_REF_SCORES[env_id.split("-")[0]]
        det = deterministic_expert_returns(env_id, episodes, seed, policy_dir)
        out[env_id] = {"random": float(r["random"].mean()), "expert": float(r["expert"].mean()),
                       "expert_std": float(r["expert"].std()),
                       "expert_deterministic": float(det.mean()),
                       "expert_deterministic_std": float(det.std()),
                       "medium": float(r["medium"].mean()), "medium_std": float(r["medium"].std()),
                       "episodes": episodes, "d4rl_random": d4rl["random"],
                       "d4rl_expert": d4rl["expert"]}
        log.info("%s: %s", env_id, out[env_id])
    atomic_write_json(Path(policy_dir or POLICY_DIR) / REFERENCE_FILE, out)
    return out


def add_deterministic_references(episodes: int = 100, seed: int = 10_000,
                                 policy_dir: str | Path | None = None) -> dict:
    """Add (or refresh) only `expert_deterministic(_std)` in the reference JSON, leaving the
    sampled references as they are."""
    path = Path(policy_dir or POLICY_DIR) / REFERENCE_FILE
    refs = read_json(path)
    for env_id in refs:
        det = deterministic_expert_returns(env_id, episodes, seed, policy_dir)
        refs[env_id].update(expert_deterministic=float(det.mean()),
                            expert_deterministic_std=float(det.std()))
        log.info("%s: deterministic expert %.1f +- %.1f", env_id, det.mean(), det.std())
    atomic_write_json(path, refs)
    return refs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shared.il.generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Hopper-v5", help="gymnasium env id")
    p.add_argument("--kind", default="expert", choices=DATASET_KINDS)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write a D4RL-layout HDF5 file here")
    p.add_argument("--minari", help="also export a Minari dataset directory under this root")
    p.add_argument("--references", action="store_true",
                   help="recompute reference returns (100 random + 100 expert episodes per env)")
    p.add_argument("--deterministic-references", action="store_true",
                   help="add the deterministic expert's returns (100 episodes per env) to the "
                        "reference file, keeping the rest")
    args = p.parse_args(argv)
    setup_logging()
    if args.references:
        compute_references()
        return 0
    if args.deterministic_references:
        add_deterministic_references()
        return 0
    data = dataset(args.env, args.kind, args.episodes, args.seed)
    rets = episode_returns(data)
    log.info("%d transitions, %d episodes, return %.1f +- %.1f", len(data["rewards"]), len(rets),
             rets.mean(), rets.std())
    if args.out:
        write_d4rl_hdf5(args.out, data, {"env_id": args.env, "kind": args.kind,
                                         "seed": args.seed})
        log.info("wrote %s", args.out)
    if args.minari:
        ref = reference_returns(args.env)
        d = write_minari(args.minari, data, f"{env_stem(args.env)}/{args.kind}-v0", args.env,
                         ref["random"], ref["expert"])
        log.info("wrote %s", d)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
