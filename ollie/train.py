"""Train OLLIE or a baseline arm, offline then (optionally) online.

    python -m ollie.train --config configs/ollie/hopper.yaml [--quick] [--set key=value ...]

The recipe: build D_e and D_s (`data.py`), normalise states with D_e ∪ D_s statistics (shared by
both phases), run the offline phase `pretrain` (OLLIE's steps 1-3 or a baseline) to get π⁰,
then, when `online.env_steps > 0`, GAIL + PPO from π⁰ with the aligned D⁰ or a random
discriminator. The run dir holds `config.yaml`, resumable checkpoints of both phases
(`offline.pt`, `online.pt`: rerun with the same --out to resume, mid-online too, under the
same config but for `resume_free`),
`offline_curve.csv`, `online_curve.csv`, `result.json`, and the weights as safetensors with a
JSON description (`policy0.safetensors` = π⁰, `policy.safetensors` = final policy,
`offline_nets.safetensors` = d, ν, y; `model.json`).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

from ollie.alignment import AlignedDiscriminator, RandomDiscriminator
from ollie.baselines import BC, DWBC, NoPretraining
from ollie.config import TrainConfig, load_train_config
from ollie.data import OLLIEData, build_data, state_stats
from ollie.gail import OnlineState, ValueNet, run_online
from ollie.offline import OLLIEPretrainer, t32
from shared.cli import parse_args, run
from shared.config import save_config
from shared.il.models import Normalizer, TanhGaussianPolicy
from shared.il.rollout import evaluate_policy
from shared.io import (
    Checkpointer,
    atomic_write_csv,
    atomic_write_json,
    check_resume,
    make_run_dir,
    save_weights,
)
from shared.log import get_logger, progress
from shared.metrics import normalized_return
from shared.runtime import pick_device, set_seed

__all__ = ["build_pretrainer", "evaluate", "fit_offline", "pretrain", "online_starts",
           "start_online", "build_online", "fit", "finetune", "fit_online", "resume_free", "main"]

log = get_logger("ollie.train")


def resume_free(run_dir: Path) -> tuple[str, ...]:
    """Config keys a resumed run may change: the online budget (no schedule depends on it),
    evaluation and checkpoint frequency, and, until the online phase has begun from π⁰, the
    offline policy steps (constant rates: a longer run extends the shorter one)."""
    free = ("online.env_steps", "online.eval_every", "online.ckpt_every", "eval_episodes",
            "offline_eval_every", "offline_ckpt_every")
    online = Checkpointer(run_dir, "online")
    if any(p.exists() for p in (online.path, online.prev)):
        return free
    return free + ("offline.policy_steps", "baselines.bc_steps")


def build_pretrainer(cfg: TrainConfig, data: OLLIEData, norm: Normalizer):
    if cfg.pretrain == "ollie":
        return OLLIEPretrainer(data, norm, cfg.offline)
    if cfg.pretrain in ("bc_expert", "bc_all"):
        return BC(data, norm, cfg.baselines, cfg.pretrain.split("_")[1])
    if cfg.pretrain == "dwbc":
        return DWBC(data, norm, cfg.baselines, cfg.offline)
    return NoPretraining()


def evaluate(policy: TanhGaussianPolicy, data: OLLIEData, episodes: int, seed: int,
             make=None) -> dict:
    """Deterministic (tanh of the mean) returns -> {'return', 'score'} (D4RL normalised)."""
    dev = next(policy.parameters()).device
    rets = evaluate_policy(lambda o: policy.act(torch.as_tensor(o, device=dev)).cpu().numpy(),
                           data.env_id, episodes, seed, make=make)
    return {"return": float(rets.mean()),
            "score": normalized_return(float(rets.mean()), data.ref_random, data.ref_expert)}


def fit_offline(cfg: TrainConfig, data: OLLIEData, policy: TanhGaussianPolicy, method,
                gen: torch.Generator, run_dir: Path | None) -> dict:
    """The offline phase, resumable from `offline.pt`; returns {'curve', 'score', 'stats'}."""
    total = method.prep_steps + method.policy_steps
    lr = cfg.offline.policy_lr if cfg.pretrain == "ollie" else cfg.baselines.bc_lr
    wd = cfg.offline.policy_weight_decay if cfg.pretrain == "ollie" else \
        cfg.baselines.bc_weight_decay
    opt = torch.optim.Adam(policy.parameters(), lr=lr, weight_decay=wd)
    ckpt = Checkpointer(run_dir, "offline") if run_dir is not None else None
    st = ckpt.load() if ckpt else None
    start, curve = 0, []
    if st is not None:
        policy.load_state_dict(st["policy"])
        opt.load_state_dict(st["opt"])
        method.load_state_dict(st["method"])
        gen.set_state(st["gen"])
        start, curve = st["step"], st["curve"]
        log.info("resumed offline phase of %s at step %d", run_dir, start)
    seed = 100_000 + 1000 * cfg.seed
    for i in progress(range(start, total), desc=f"offline {cfg.pretrain}", initial=start,
                      total=total):
        if i < method.prep_steps:
            method.prep_step(i, gen)
        else:
            loss = method.loss(policy, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n = i + 1 - method.prep_steps
            if n % cfg.offline_eval_every == 0 or n == method.policy_steps:
                curve.append({"policy_step": n, "loss": loss.item(),
                              **evaluate(policy, data, cfg.eval_episodes, seed)})
        if ckpt and ((i + 1) % cfg.offline_ckpt_every == 0 or i + 1 == total):
            ckpt.save({"policy": policy.state_dict(), "opt": opt.state_dict(),
                       "method": method.state_dict(), "gen": gen.get_state(), "step": i + 1,
                       "curve": curve})
    if total and method.policy_steps:
        if hasattr(method, "extraction_weights"):
            method.extraction_weights()  # fills the y statistics after a resume, too
        score = curve[-1]["score"]
    else:  # no offline phase: π⁰ is the random initial policy
        score = evaluate(policy, data, cfg.eval_episodes, seed)["score"]
    return {"curve": curve, "score": score, "stats": dict(getattr(method, "stats", {}))}


def build_online(cfg: TrainConfig, policy: TanhGaussianPolicy, method, norm: Normalizer,
                 gen: torch.Generator) -> OnlineState:
    """π⁰ with a fresh value function and the initial discriminator (aligned D⁰ or random)."""
    S = norm.mean.shape[0]
    A = policy.net[-1].out_features // 2
    dev = norm.mean.device
    c = cfg.online
    if c.discriminator == "aligned":
        disc = AlignedDiscriminator(method.d, method.y)
    else:
        disc = RandomDiscriminator(S + A, c.disc_hidden, norm.with_actions(A))
    disc = disc.to(dev)
    value = ValueNet(S, c.value_hidden, norm).to(dev)
    return OnlineState(
        policy=policy, value=value, disc=disc,
        policy_opt=torch.optim.Adam(policy.parameters(), lr=c.policy_lr),
        value_opt=torch.optim.Adam(value.parameters(), lr=c.value_lr),
        disc_opt=torch.optim.Adam(disc.parameters(), lr=c.disc_lr), gen=gen)


def pretrain(cfg: TrainConfig, data: OLLIEData, run_dir: str | Path | None = None) -> dict:
    """The offline phase of `cfg` on `data` (resuming from `run_dir`'s `offline.pt`).

    Returns the offline score, curve and stats, π⁰ (`policy`, trained, and `policy0`, its state
    dict) and what the online phase starts from: the pretrainer (OLLIE's d, ν, y), the state
    normaliser, the generator and the global torch RNG state (`rng`) as the offline phase left
    them.
    """
    device = torch.device(pick_device(cfg.device))
    run_dir = Path(run_dir) if run_dir is not None else None
    set_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    mean, std = state_stats(data)
    norm = Normalizer(torch.as_tensor(mean), torch.as_tensor(std)).to(device)
    S, A = data.expert["observations"].shape[1], data.expert["actions"].shape[1]
    policy = TanhGaussianPolicy(S, A, cfg.policy_hidden, norm).to(device)
    method = build_pretrainer(cfg, data, norm)
    off = fit_offline(cfg, data, policy, method, gen, run_dir)
    policy0 = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    return {"pretrain": cfg.pretrain, "offline_score": off["score"],
            "offline_curve": off["curve"], "offline_stats": off["stats"], "policy0": policy0,
            "policy": policy, "method": method, "norm": norm, "gen": gen,
            "rng": torch.get_rng_state()}


def with_discriminator(cfg: TrainConfig, discriminator: str) -> TrainConfig:
    cv = copy.deepcopy(cfg)
    cv.online.discriminator = discriminator
    return cv


def online_starts(cfg: TrainConfig, res: dict, variants: list[str]) -> dict[str, dict]:
    """What each online phase in `variants` starts from, as tensors and plain values (no
    objects, so it can be sent to another process): π⁰'s and the pretrainer's state dicts, the
    generator's state and the global torch RNG state. The variants draw their fresh networks
    (value function, random discriminator) from the global RNG in turn, as
    `fit(variants=...)` runs them, so each start carries the RNG state that the variants
    before it left; `start_online` rebuilds the same objects from it."""
    starts = {}
    torch.set_rng_state(res["rng"])
    for v in variants:
        starts[v] = {"policy0": res["policy0"], "method": res["method"].state_dict(),
                     "gen": res["gen"].get_state(), "rng": torch.get_rng_state()}
        gen = torch.Generator(device=res["gen"].device).set_state(res["gen"].get_state())
        build_online(with_discriminator(cfg, v), copy.deepcopy(res["policy"]), res["method"],
                     res["norm"], gen)  # draws the networks as the variant will
    return starts


def start_online(cfg: TrainConfig, data: OLLIEData, start: dict) -> dict:
    """The objects of `pretrain`'s result rebuilt from one of `online_starts` (no offline
    step is run); the global RNG is left as the start says."""
    device = torch.device(pick_device(cfg.device))
    mean, std = state_stats(data)
    norm = Normalizer(torch.as_tensor(mean), torch.as_tensor(std)).to(device)
    S, A = data.expert["observations"].shape[1], data.expert["actions"].shape[1]
    policy = TanhGaussianPolicy(S, A, cfg.policy_hidden, norm).to(device)
    policy.load_state_dict(start["policy0"])
    method = build_pretrainer(cfg, data, norm)
    method.load_state_dict(start["method"])
    gen = torch.Generator(device=device).set_state(start["gen"])
    torch.set_rng_state(start["rng"])
    return {"policy": policy, "method": method, "norm": norm, "gen": gen}


def fit(cfg: TrainConfig, data: OLLIEData, run_dir: str | Path | None = None,
        variants: list[str] | None = None) -> dict:
    """Both phases of `cfg` on `data` (resuming from `run_dir`'s checkpoints when present).

    Returns the offline score and curve, the online curve (env_steps, return, score), π⁰'s and
    the final policy, the pretrainer (OLLIE's d, ν, y) and the online state. `variants` (a list
    of online.discriminator values) runs one online phase per variant from the same π⁰ (without
    checkpoints), one after the other, and returns their results under 'variants' (the bench
    runs them as separate jobs from `online_starts`, with the same results).
    """
    return finetune(cfg, data, pretrain(cfg, data, run_dir), run_dir, variants)


def finetune(cfg: TrainConfig, data: OLLIEData, out: dict, run_dir: str | Path | None = None,
             variants: list[str] | None = None) -> dict:
    """`fit`'s online part from `pretrain`'s result `out` (updated and returned)."""
    out.update(online_curve=[], state=None)
    policy, method, norm, gen = out["policy"], out["method"], out["norm"], out["gen"]
    if variants is not None:
        out["variants"] = {}
        for v in variants:
            pol = copy.deepcopy(policy)
            g = torch.Generator(device=gen.device).set_state(gen.get_state())
            st = fit_online(with_discriminator(cfg, v), data, pol, method, norm, g, None)
            out["variants"][v] = {"online_curve": st.curve, "policy": pol}
        return out
    if cfg.online.env_steps == 0:
        return out
    st = fit_online(cfg, data, policy, method, norm, gen,
                    Path(run_dir) if run_dir is not None else None)
    out.update(online_curve=st.curve, state=st)
    return out


def fit_online(cfg: TrainConfig, data: OLLIEData, policy: TanhGaussianPolicy, method,
               norm: Normalizer, gen: torch.Generator, run_dir: Path | None) -> OnlineState:
    """The online phase from π⁰ = `policy` (trained in place), resumable from `online.pt`."""
    device = norm.mean.device
    st = build_online(cfg, policy, method, norm, gen)
    ckpt = Checkpointer(run_dir, "online") if run_dir is not None else None
    saved = ckpt.load() if ckpt else None
    if saved is not None:
        st.load_state_dict(saved)
        log.info("resumed online phase of %s at env step %d", run_dir, st.env_steps)

    def save(s: OnlineState) -> None:
        done = s.env_steps >= cfg.online.env_steps
        if ckpt and (s.iteration % cfg.online.ckpt_every == 0 or done):
            ckpt.save(s.state_dict())

    x_e = torch.cat([t32(data.expert["observations"], device),
                     t32(data.expert["actions"], device)], 1)
    seed = 100_000 + 1000 * cfg.seed
    where = (f"online phase of pretrain={cfg.pretrain} + {cfg.online.discriminator} "
             f"discriminator on {cfg.data.env_id}, seed {cfg.seed}")
    return run_online(st, data.env_id, x_e, cfg.online, cfg.seed,
                      lambda p: evaluate(p, data, cfg.eval_episodes, seed), save,
                      lambda **kw: progress(desc=f"online {cfg.online.discriminator} D", **kw),
                      where)


def _prefixed(**modules) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}


def write_run(run_dir: Path, cfg: TrainConfig, data: OLLIEData, res: dict) -> dict:
    policy = res["policy"]
    S, A = data.expert["observations"].shape[1], data.expert["actions"].shape[1]
    kind = {"kind": "ollie.weights"}  # model.json describes the shapes
    save_weights(run_dir / "policy0.safetensors", res["policy0"], kind)
    save_weights(run_dir / "policy.safetensors", policy.state_dict(), kind)
    if cfg.pretrain == "ollie":
        m = res["method"]
        save_weights(run_dir / "offline_nets.safetensors", _prefixed(d=m.d, nu=m.nu, y=m.y),
                     kind)
    atomic_write_json(run_dir / "model.json", {
        "format": "ollie.policy/1", "env_id": cfg.data.env_id, "obs_dim": S, "act_dim": A,
        "hidden": cfg.policy_hidden, "offline_hidden": cfg.offline.hidden,
        "policy": "shared.il.models.TanhGaussianPolicy (state dict incl. norm.mean/std)"})
    atomic_write_csv(run_dir / "offline_curve.csv", res["offline_curve"])
    atomic_write_csv(run_dir / "online_curve.csv", res["online_curve"])
    out = {"pretrain": cfg.pretrain, "discriminator": cfg.online.discriminator,
           "env_id": cfg.data.env_id, "offline_score": res["offline_score"],
           "offline_stats": res["offline_stats"], "online_curve": res["online_curve"],
           "final_score": res["online_curve"][-1]["score"] if res["online_curve"]
           else res["offline_score"], "data": data.description}
    atomic_write_json(run_dir / "result.json", out)
    return out


def main(argv: list[str] | None = None) -> int:
    args, _ = parse_args(
        argv, TrainConfig, prog="ollie.train",
        description="Offline-to-online imitation: OLLIE (offline d, saddle point, y-weighted BC, "
                    "then GAIL + PPO from the aligned discriminator D⁰) or a baseline arm "
                    "(--set pretrain=bc_expert|bc_all|dwbc|none, online.discriminator=random, "
                    "online.env_steps=0 for offline only). Rerun with the same --out to resume.",
        default_config="configs/ollie/hopper.yaml")
    over = list(args.overrides) + [f"{k}={getattr(args, k)}" for k in ("seed", "device")
                                   if getattr(args, k) is not None]
    cfg = load_train_config(args.config, over, args.quick)
    cfg.device = pick_device(cfg.device)  # no CUDA here: an error before anything is written
    torch.set_num_threads(1)
    if args.out is not None:  # an existing run: before the data and its config.yaml
        out = Path(args.out)  # a finished run may hold no checkpoint (pretrain=none, no online)
        check_resume(out, cfg, resume_free(out), names=("offline", "online"),
                     resuming=True if (out / "result.json").exists() else None)
    data = build_data(cfg.data)  # bad data fail here, before the run dir is made
    run_dir = make_run_dir(args.out, "ollie", f"train-{cfg.pretrain}-{cfg.online.discriminator}")
    save_config(cfg, run_dir / "config.yaml")
    log.info("%s + %s discriminator on %s (%s) -> %s", cfg.pretrain, cfg.online.discriminator,
             cfg.data.env_id, data.description, run_dir)
    res = fit(cfg, data, run_dir)
    out = write_run(run_dir, cfg, data, res)
    log.info("offline score %.1f; final score %.1f after %d env steps", out["offline_score"],
             out["final_score"], cfg.online.env_steps)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
