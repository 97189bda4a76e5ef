"""The online phase's PPO step from one π⁰, as the package runs it and as it ran before: log π
from the pre-tanh sample u or recomputed from a = tanh(u); the KL stop per minibatch or per
epoch.

    OMP_NUM_THREADS=1 python -m ollie.experiments.online_logp [--env halfcheetah] [--arm naive_gail]
        [--seed 2] [--steps 10240] [--variants new,epoch,old] [--set key=value ...]

Runs the bench's arm (`bench.arm_config`: the environment's YAML, the arm's keys, the seed) once
offline, then its online phase from the same π⁰ once per variant: 'new' = the package;
'epoch' = the package with `online.kl_check=epoch` (the first epoch runs whole); 'old' = as
before both fixes: `kl_check=epoch`, log π of the rollout and of every PPO step recomputed from
a = tanh(u) through `TanhGaussianPolicy.log_prob` (atanh of a clamped to ±(1 - 1e-6)) and the
ratio unclamped. Prints π⁰'s pre-tanh |mean| and log std quantiles on D_e's states, then, per
PPO iteration, the approximate KL after the epochs, the largest
|log ratio| seen, the lowest stored log π, and the share of actions that float32 rounds to ±1;
then the score curve. A variant that diverges ends with the DataError the package raises.
"""

from __future__ import annotations

import copy
import json
import sys
import time

import torch

import ollie.bench as bench
import ollie.gail as gail
from ollie.data import build_data
from ollie.ppo import clipped_policy_loss, sample_action
from ollie.train import fit_online, pretrain
from shared.cli import build_parser, parse_args, run
from shared.errors import DataError


@torch.no_grad()
def _old_sample(policy, s, gen):
    a, u, _ = sample_action(policy, s, gen)
    return a, u, policy.log_prob(s, a)


def _old_logp(policy, s, u):
    return policy.log_prob(s, torch.tanh(u))


def _old_loss(logp, logp_old, adv, eps):
    ratio = torch.exp(logp - logp_old)
    return -torch.min(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv).mean()


def run_variant(variant: str, cfg, data, res) -> dict:
    rec = {"max_abs_log_ratio": 0.0, "min_logp_old": 0.0}
    loss_fn = _old_loss if variant == "old" else clipped_policy_loss

    def loss(logp, logp_old, adv, eps):
        lr = (logp - logp_old).detach()
        rec["max_abs_log_ratio"] = max(rec["max_abs_log_ratio"], float(lr.abs().max()))
        rec["min_logp_old"] = min(rec["min_logp_old"], float(logp_old.min()))
        return loss_fn(logp, logp_old, adv, eps)

    orig = {k: getattr(gail, k) for k in ("sample_action", "log_prob_pre_tanh",
                                          "clipped_policy_loss", "_iteration")}
    iters = []

    def iteration(st, roll, x_e, c, warmup, where="online"):
        out = orig["_iteration"](st, roll, x_e, c, warmup, where)
        iters.append({"kl": round(out["approx_kl"], 4), "policy_steps": out["policy_steps"],
                      **{k: round(v, 2) for k, v in rec.items()},
                      "saturated": float((roll["a"].abs() >= 1).float().mean())})
        rec.update(max_abs_log_ratio=0.0, min_logp_old=0.0)
        return out

    gail.clipped_policy_loss, gail._iteration = loss, iteration
    if variant == "old":
        gail.sample_action, gail.log_prob_pre_tanh = _old_sample, _old_logp
    try:
        torch.set_rng_state(res["rng"])
        pol = copy.deepcopy(res["policy"])
        gen = torch.Generator().set_state(res["gen"].get_state())
        c = copy.deepcopy(cfg)
        c.online.kl_check = "minibatch" if variant == "new" else "epoch"
        st = fit_online(c, data, pol, res["method"], res["norm"], gen, None)
        out = {"curve": [round(p["score"], 1) for p in st.curve]}
    except DataError as e:
        out = {"error": str(e)}
    finally:
        for k, v in orig.items():
            setattr(gail, k, v)
    return {"variant": variant, **out, "iterations": iters}


def main(argv: list[str] | None = None) -> int:
    p = build_parser("ollie.experiments.online_logp", __doc__.split("\n\n")[0])
    p.set_defaults(config=None)
    p.add_argument("--env", default="halfcheetah", choices=list(bench.SETTINGS))
    p.add_argument("--arm", default="naive_gail", choices=[a for a in bench.ARMS
                                                            if a not in ("bc_expert", "bc_all")])
    p.add_argument("--steps", type=int, default=10240, help="online env steps")
    p.add_argument("--variants", default="new,epoch,old")
    args, _ = parse_args(argv, bench.TrainConfig, prog="ollie.experiments.online_logp",
                         description=__doc__, parser=p)
    seed = args.seed if args.seed is not None else 2
    extra = list(args.overrides) + [f"online.env_steps={args.steps}"]
    cfg = bench.arm_config(args.env, args.arm, seed, args.quick, extra)
    torch.set_num_threads(1)
    data = build_data(cfg.data)
    t0 = time.time()
    res = pretrain(cfg, data)
    with torch.no_grad():  # how sharp π⁰ is on D_e's states
        mean, log_std = res["policy"].dist_params(
            torch.as_tensor(data.expert["observations"], dtype=torch.float32))
    q = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    print(json.dumps({"env": args.env, "arm": args.arm, "seed": seed,
                      "offline_score": round(res["offline_score"], 1),
                      "offline_s": round(time.time() - t0),
                      "abs_pre_tanh_mean_q0_10_50_90_100":
                          [round(v, 2) for v in torch.quantile(mean.abs().flatten(), q).tolist()],
                      "log_std_q0_10_50_90_100":
                          [round(v, 2) for v in torch.quantile(log_std.flatten(), q).tolist()]}),
          flush=True)
    for v in args.variants.split(","):
        t0 = time.time()
        out = run_variant(v, cfg, data, res)
        out["wall_s"] = round(time.time() - t0)
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
