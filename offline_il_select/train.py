"""Train ILID or a baseline.

    python -m offline_il_select.train --config configs/offline_il_select/hopper-random+1expert.yaml

The recipe: build D_e and D_b (`data.py`; user files are read, cut and checked against the
environment before the run dir exists), normalise states with D_e ∪ D_b statistics, let the
method prepare (ILID: discriminators + selection; ISW-BC: its discriminator), then run
`policy.steps` weighted-BC steps, evaluating the deterministic policy every `eval_every` steps
(normalised score, D4RL convention: 0 = random, 100 = our deterministic expert; also against
D4RL's published references). The run dir
holds `config.yaml`, a resumable `ckpt.pt` (rerun with the same --out to resume, under the
same config but for `RESUME_FREE`), `curve.csv`,
`result.json` and `policy.pt`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from offline_il_select.baselines import BC, DWBC, ISWBC
from offline_il_select.config import TrainConfig
from offline_il_select.data import ILData, build_data, selection_quality, state_stats
from offline_il_select.ilid import ILID
from offline_il_select.models import Normalizer, TanhGaussianPolicy
from shared.cli import parse_args, run
from shared.config import save_config
from shared.errors import ConfigError
from shared.il.rollout import evaluate_policy
from shared.io import (
    Checkpointer,
    atomic_torch_save,
    atomic_write_csv,
    atomic_write_json,
    check_resume,
    make_run_dir,
)
from shared.log import get_logger, progress
from shared.metrics import normalized_return
from shared.runtime import pick_device, set_seed

# what a resumed run may change: the step budget (the rate is constant), evaluation,
# checkpoint frequency, and the device index (its type is checked by `resume_state`)
RESUME_FREE = ("policy.steps", "eval_every", "eval_episodes", "ckpt_every", "device")

__all__ = ["build_method", "fit", "resume_state", "evaluate", "main"]

log = get_logger("offline_il_select.train")


def build_method(cfg: TrainConfig, data: ILData, norm: Normalizer):
    e, b = data.expert, data.imperfect
    if cfg.method == "ilid":
        return ILID(e, b, norm, cfg.ilid, cfg.policy)
    if cfg.method == "bc_expert":
        return BC(e, b, cfg.policy, "expert", norm.mean.device)
    if cfg.method == "bc_all":
        return BC(e, b, cfg.policy, "all", norm.mean.device)
    if cfg.method == "dwbc":
        return DWBC(e, b, norm, cfg.policy, cfg.baselines, cfg.ilid)
    if cfg.method == "iswbc":
        return ISWBC(e, b, norm, cfg.policy, cfg.baselines, cfg.ilid)
    raise ConfigError(f"method: unknown '{cfg.method}'")


def evaluate(policy: TanhGaussianPolicy, data: ILData, episodes: int, seed: int,
             make=None) -> dict:
    """Mean return and normalised scores of `policy` acting deterministically; `make(env_id)`
    builds the environments (default: the data's own task; e.g. `shared.il.envs.
    make_perturbed_env` for out-of-family dynamics, scored against the same references)."""
    dev = next(policy.parameters()).device
    rets = evaluate_policy(lambda o: policy.act(torch.as_tensor(o, device=dev)).cpu().numpy(),
                           data.env_id, episodes, seed, make=make)
    r = float(rets.mean())
    out = {"return": r, "score": normalized_return(r, data.ref_random, data.ref_expert)}
    if "d4rl" in data.refs:  # the same return against D4RL's published references
        out["score_d4rl"] = normalized_return(r, *data.refs["d4rl"])
    return out


def resume_state(run_dir: str | Path, device: torch.device) -> dict | None:
    """The run's latest checkpoint mapped onto `device` (None if there is none). A run resumes
    only on the device type it was trained on: the batch generator's state belongs to it."""
    st = Checkpointer(run_dir).load(map_location=str(device))
    if st is not None and st.get("device", "cpu") != device.type:
        was = st.get("device", "cpu")
        raise ConfigError(f"device: {run_dir} was trained on {was}; resume it with --set "
                          f"device={was} (not {device.type})")
    return st


def _clocks(device: torch.device) -> tuple[float, float]:
    """Wall and CPU seconds, after the device's queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter(), time.process_time()


def setup(cfg: TrainConfig, data: ILData) -> tuple[torch.device, torch.Generator, object,
                                                  TanhGaussianPolicy]:
    """A run's device, batch generator, method and initial policy, seeded in this order (the
    bench's --ensemble prepares its members through here, so they start as `fit` starts)."""
    device = torch.device(pick_device(cfg.device))
    set_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    mean, std = state_stats(data)
    norm = Normalizer(torch.as_tensor(mean), torch.as_tensor(std)).to(device)
    method = build_method(cfg, data, norm)
    S, A = data.expert["observations"].shape[1], data.expert["actions"].shape[1]
    # initialised on the CPU, then moved: the same weights on every device
    policy = TanhGaussianPolicy(S, A, cfg.policy.hidden, norm).to(device)
    return device, gen, method, policy


def prepare(cfg: TrainConfig, data: ILData, method, gen: torch.Generator,
            device: torch.device) -> dict:
    """`method.prepare(gen)`, timed (`prep_s`, `prep_cpu_s`); ILID's with its selection quality."""
    t0, c0 = _clocks(device)
    prep = method.prepare(gen)
    t1, c1 = _clocks(device)
    prep.update(prep_s=t1 - t0, prep_cpu_s=c1 - c0)
    if cfg.method == "ilid":
        prep["selection_quality"] = selection_quality(
            data.imperfect, method.artifacts["selected"].numpy())
    return prep


def fit(cfg: TrainConfig, data: ILData, run_dir: str | Path | None = None,
        prepared: tuple[dict, dict] | None = None) -> dict:
    """Train `cfg.method` on `data`; resumes from `run_dir/ckpt.pt` when present.

    Returns the final score/return (mean of the last two evaluations), the learning curve,
    `train_s` / `train_cpu_s` (wall-clock and process CPU seconds of preparation + policy steps,
    evaluation excluded; on a shared machine the CPU time is the fair cost) and the method's
    preparation statistics. `prepared` = (artifacts, stats) of an earlier `prepare()` with the
    same data and seed skips preparation (the bench's no-beta ablation reuses ILID's selection).
    """
    device, gen, method, policy = setup(cfg, data)

    def clocks() -> tuple[float, float]:  # wall and CPU seconds, after the device's queued work
        return _clocks(device)

    opt = torch.optim.Adam(policy.parameters(), lr=cfg.policy.lr,
                           weight_decay=cfg.policy.weight_decay)
    ckpt = Checkpointer(run_dir) if run_dir is not None else None
    st = resume_state(run_dir, device) if run_dir is not None else None
    if st is not None:
        policy.load_state_dict(st["policy"])
        opt.load_state_dict(st["opt"])
        method.load_state_dict(st["method"])
        gen.set_state(st["gen"].cpu())
        start, curve, prep = st["step"], st["curve"], st["prep"]
        train_s, cpu_s = st["train_s"], st["train_cpu_s"]
        log.info("resumed %s at step %d", run_dir, start)
    elif prepared is not None:
        method.load_state_dict(prepared[0])
        prep, train_s, cpu_s = dict(prepared[1]), prepared[1]["prep_s"], prepared[1]["prep_cpu_s"]
        start, curve = 0, []
    else:
        prep = prepare(cfg, data, method, gen, device)
        train_s, cpu_s = prep["prep_s"], prep["prep_cpu_s"]
        start, curve = 0, []
        log.info("%s prepared in %.1fs: %s", cfg.method, train_s, prep)
    steps = cfg.policy.steps
    t0, c0 = clocks()
    for step in progress(range(start, steps), desc=cfg.method, initial=start, total=steps):
        loss = method.loss(policy, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n = step + 1
        if n % cfg.eval_every == 0 or n == steps:
            t1, c1 = clocks()
            train_s, cpu_s = train_s + t1 - t0, cpu_s + c1 - c0
            ev = evaluate(policy, data, cfg.eval_episodes, seed=100_000 + 1000 * cfg.seed)
            curve.append({"step": n, "loss": loss.item(), **ev})
            log.debug("%s step %d: score %.1f", cfg.method, n, ev["score"])
            t0, c0 = clocks()
        if ckpt and (n % cfg.ckpt_every == 0 or n == steps):
            t1, c1 = clocks()
            train_s, cpu_s = train_s + t1 - t0, cpu_s + c1 - c0
            ckpt.save({"policy": policy.state_dict(), "opt": opt.state_dict(),
                       "method": method.state_dict(), "gen": gen.get_state(), "step": n,
                       "curve": curve, "prep": prep, "train_s": train_s, "train_cpu_s": cpu_s,
                       "device": device.type})
            log.info("%s: checkpoint at step %d of %d", cfg.method, n, steps)
            t0, c0 = clocks()
    t1, c1 = clocks()
    train_s, cpu_s = train_s + t1 - t0, cpu_s + c1 - c0
    last = curve[-2:]
    return {"method": cfg.method, "score": sum(c["score"] for c in last) / len(last),
            "score_d4rl": sum(c.get("score_d4rl", float("nan")) for c in last) / len(last),
            "return": sum(c["return"] for c in last) / len(last), "curve": curve,
            "train_s": train_s, "train_cpu_s": cpu_s, "prep": prep, "policy": policy,
            "artifacts": getattr(method, "artifacts", None)}


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(
        argv, TrainConfig, prog="offline_il_select.train",
        quick={"policy.steps": 500, "eval_every": 250, "ckpt_every": 250, "eval_episodes": 3,
               "ilid.disc_steps": 200, "data.n_s": 100},
        description="Offline imitation from one expert episode plus imperfect data: ILID "
                    "(resultant-state selection + weighted BC) or a baseline (bc_expert, bc_all, "
                    "dwbc, iswbc; --set method=...). Datasets come from shared.il's committed "
                    "SAC policies (or --set data.imperfect_file=...). Rerun with the same --out "
                    "to resume.",
        default_config="configs/offline_il_select/hopper-random+1expert.yaml")
    try:
        cfg.validate()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    cfg.device = pick_device(cfg.device)  # no CUDA here: an error before anything is written
    if args.out and Path(args.out).is_dir():  # resuming: refuse a device or config change
        resume_state(args.out, torch.device(cfg.device))  # up front
        check_resume(args.out, cfg, RESUME_FREE)
    torch.set_num_threads(1)
    data = build_data(cfg.data)  # fails on bad data before the run dir is made
    run_dir = make_run_dir(args.out, "offline_il_select", f"train-{cfg.method}")
    save_config(cfg, run_dir / "config.yaml")
    log.info("%s on %s (%s) -> %s", cfg.method, cfg.data.env_id, data.description, run_dir)
    res = fit(cfg, data, run_dir)
    atomic_write_csv(run_dir / "curve.csv", res["curve"])
    pol = res["policy"]
    atomic_torch_save({"state_dict": pol.state_dict(), "obs_dim": pol.net[0].in_features,
                       "act_dim": pol.net[-1].out_features // 2, "hidden": cfg.policy.hidden,
                       "env_id": cfg.data.env_id}, run_dir / "policy.pt")
    out = {k: res[k] for k in ("method", "score", "score_d4rl", "return", "train_s",
                                "train_cpu_s", "prep")}
    out["data"] = data.description
    out["n_expert_transitions"] = int(len(data.expert["rewards"]))
    out["n_imperfect_transitions"] = int(len(data.imperfect["rewards"]))
    atomic_write_json(run_dir / "result.json", out)
    log.info("%s: normalised score %.1f (return %.0f) in %.1fs of training", cfg.method,
             res["score"], res["return"], res["train_s"])
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
