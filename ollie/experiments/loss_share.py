"""What each offline arm imitates: the share of its policy loss on D_e, on D_s's expert
trajectories and on D_s's other rows.

    python -m ollie.experiments.loss_share --env halfcheetah --seed 3 [--dwbc-steps N] \\
        [--y-cut C[,C...]] [--quick] [--set key=value ...] [--out DIR]

Every offline arm here is weighted BC, so its loss is Σ_i w_i (−log π(a_i|s_i)) over D_o's rows,
w_i = the expected weight of row i in one step's loss (its draw probability times its weight):

- OLLIE (step 3, `extraction.py`) after steps 1–2 at the config's budget: with batches drawn ∝ y
  and equal weights, w_i = y_i / Σy; with uniform batches weighted y / mean_B y, w_i is the batch
  mean normalisation's expectation, estimated over `--batches` uniform batches (y after the
  config's low-y cut, `offline.extraction_y_cut`, if set);
- DWBC after `--dwbc-steps` joint steps of its policy and discriminator (the config's policy-step
  budget by default): a D_e-term row (α − η/(d(1−d)) − 1)/|D_e|, a D_o-term row
  (1/(1−d) − 1)·1[d ≥ 0.5]/|D_o| (`shared.il.dwbc.DWBC.loss` at its current discriminator; D_e's
  rows are in both terms and get the sum);
- BC-E: 1/|D_e| on D_e;
- BC on all expert rows (D_e and D_s's expert trajectories, uniform; an oracle that uses the
  labels, a diagnostic and no method): the data OLLIE's y selects, without y's weights.

It reports the share of Σ|w| on each row group (the labels of D_s's parts, which no method
sees; "other" = the random trajectories in the bench's configs), y's AUC of D_s's expert rows
(and of D_e) above D_s's other rows, and each policy's score, gradient norm and −log π per
group; with `--y-expert-only` also the score of OLLIE's extraction with y zeroed on D_s's other
rows, and with `--y-cut C,...` the shares, rows cut and score of OLLIE's extraction from the
same y with `offline.extraction_y_cut` = C (label-free). Writes loss_share.json into the run dir.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
import torch
from scipy.stats import rankdata

from ollie import bench
from ollie.data import build_data, state_stats
from ollie.offline import OLLIEPretrainer
from ollie.train import build_pretrainer, evaluate
from shared.cli import build_parser, parse_args, run
from shared.errors import ConfigError
from shared.il.bc import PlainBC
from shared.il.datasets import episode_bounds
from shared.il.models import Normalizer, TanhGaussianPolicy
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger

log = get_logger("ollie.experiments.loss_share")

GROUPS = ("D_e", "D_s_expert", "D_s_other")  # row-group codes 0, 1, 2
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)  # y's distribution per group
ARMS = ("ollie", "dwbc", "bc_expert", "bc_expert_rows")


def row_groups(n_e: int, imperfect: dict, n_expert_in_s: int) -> np.ndarray:
    """(N_o,) group code of every D_o row: 0 D_e, 1 D_s's expert trajectories (its last
    `n_expert_in_s` episodes), 2 D_s's other rows."""
    g = np.full(n_e + len(imperfect["actions"]), 2, dtype=np.int64)
    g[:n_e] = 0
    if n_expert_in_s:
        g[n_e + episode_bounds(imperfect)[-n_expert_in_s][0]:] = 1
    return g


def group_shares(w: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Share of Σ|w| on each group (w, groups (N,))."""
    a = np.abs(np.asarray(w, dtype=np.float64))
    return {name: float(a[groups == k].sum() / a.sum()) for k, name in enumerate(GROUPS)}


def extraction_row_weights(y: torch.Tensor, extraction: str, batch: int, batches: int,
                           gen: torch.Generator) -> np.ndarray:
    """Expected weight (N,) of each row in OLLIE's extraction loss for y (N,) > 0: y / Σy for
    batches drawn ∝ y; for uniform batches weighted y / mean_B y, the mean over `batches` draws
    of Σ_batch (y_i / mean_B y) / B per row."""
    y = y.double()
    if extraction == "resample":
        return (y / y.sum()).numpy()
    w = torch.zeros_like(y)
    for _ in range(batches):
        idx = torch.randint(len(y), (batch,), generator=gen)
        yb = y[idx]
        w.index_add_(0, idx, yb / yb.mean().clamp_min(1e-12) / batch)
    return (w / batches).numpy()


def dwbc_row_weights(method, policy: TanhGaussianPolicy) -> np.ndarray:
    """Expected weight (N_o,) of each D_o row in DWBC's policy loss at its current discriminator
    and policy (`shared.il.dwbc.DWBC.row_weights`); D_o = D_e then D_s, D_e's rows get their
    D_e-term weight added."""
    w_e, w = method.row_weights(policy)
    w[:len(w_e)] += w_e
    return w


def group_grad_norms(policy: TanhGaussianPolicy, s: torch.Tensor, a: torch.Tensor,
                     w: np.ndarray, groups: np.ndarray, chunk: int = 1 << 14) -> dict[str, float]:
    """‖Σ_{i in group} w_i ∇θ(−log π(a_i|s_i))‖ per group and over all rows, with w (N,)
    scaled to Σ|w| = 1: how hard each group pulls on the policy's parameters, not only how much
    weight it holds (a row whose action the policy finds unlikely pulls harder)."""
    params = [q for q in policy.parameters() if q.requires_grad]
    wt = torch.as_tensor(w / np.abs(w).sum(), dtype=torch.float32)

    def norm(rows: np.ndarray) -> float:
        for q in params:
            q.grad = None
        for i in range(0, len(rows), chunk):
            r = torch.as_tensor(rows[i:i + chunk])
            (-(wt[r] * policy.log_prob(s[r], a[r])).sum()).backward()
        return float(torch.cat([q.grad.flatten() for q in params if q.grad is not None]).norm())

    live = w != 0
    out = {name: norm(np.flatnonzero(live & (groups == k))) if (live & (groups == k)).any()
           else 0.0 for k, name in enumerate(GROUPS)}
    out["all"] = norm(np.flatnonzero(live))
    for q in params:
        q.grad = None
    return out


def neg_log_lik(policy: TanhGaussianPolicy, s: torch.Tensor, a: torch.Tensor,
                groups: np.ndarray, chunk: int = 1 << 14) -> dict[str, float]:
    """Mean −log π(a|s) per group at the policy's current parameters."""
    with torch.no_grad():
        nll = torch.cat([-policy.log_prob(s[i:i + chunk], a[i:i + chunk])
                         for i in range(0, len(s), chunk)]).double().numpy()
    return {name: float(nll[groups == k].mean()) for k, name in enumerate(GROUPS)}


def train_policy(method, cfg, data, norm, steps: int, lr: float, wd: float, episodes: int
                 ) -> tuple[TanhGaussianPolicy, dict]:
    """`steps` Adam steps on method.loss (as `train.fit_offline`), then the policy's score."""
    S, A = data.expert["observations"].shape[1], data.expert["actions"].shape[1]
    policy = TanhGaussianPolicy(S, A, cfg.policy_hidden, norm)
    opt = torch.optim.Adam(policy.parameters(), lr=lr, weight_decay=wd)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(steps):
        loss = method.loss(policy, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return policy, (evaluate(policy, data, episodes, 100_000 + 1000 * cfg.seed) if episodes
                    else {})


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a random pos outranks a random neg), ties count half (Mann-Whitney U / (n_pos n_neg))."""
    r = rankdata(np.concatenate([pos, neg]))
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def cut_report(p: OLLIEPretrainer, cfg, data, norm, groups: np.ndarray, batches: int,
               episodes: int, gen: torch.Generator) -> dict:
    """OLLIE's extraction from p's y with p.cfg's low-y cut: threshold, rows and y's mass cut
    per group, the shares of the cut weights, then the policy's score and −log π per group."""
    c = p.cfg  # the caller's `set_extraction` reset step 3 for this cut
    w = p.extraction_weights()
    y, cut = p.weights().double().numpy(), (w == 0).numpy()
    out = {"cut": c.extraction_y_cut, "quantile": c.extraction_y_cut_quantile,
           "threshold": p.stats.get("y_cut_threshold", 0.0),
           "rows_cut": {g: int(cut[groups == k].sum()) for k, g in enumerate(GROUPS)},
           "y_mass_cut": {g: float(y[cut & (groups == k)].sum() / y[groups == k].sum())
                          for k, g in enumerate(GROUPS)},
           "shares": group_shares(extraction_row_weights(w, c.extraction, c.policy_batch,
                                                         batches, gen), groups)}
    policy, score = train_policy(p, cfg, data, norm, c.policy_steps, c.policy_lr,
                                 c.policy_weight_decay, episodes)
    out.update(**score, neg_log_lik=neg_log_lik(policy, p.s_o, p.a_o, groups))
    return out


def ollie_report(cfg, data, norm, groups: np.ndarray, batches: int, episodes: int,
                 y_expert_only: bool = False, y_cuts: tuple[float, ...] = ()) -> dict:
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    p = OLLIEPretrainer(data, norm, cfg.offline)
    gen = torch.Generator().manual_seed(cfg.seed)
    for i in range(p.prep_steps):
        p.prep_step(i, gen)
    y, w_cut = p.weights(), p.extraction_weights()
    c = cfg.offline
    out = {"extraction": c.extraction, "prep_steps": p.prep_steps,
           "extraction_y_cut": c.extraction_y_cut,
           "shares": group_shares(extraction_row_weights(w_cut, c.extraction, c.policy_batch,
                                                         batches, gen), groups)}
    if c.extraction != "uniform":  # the same y under the official uniform batches
        out["shares_uniform_batches"] = group_shares(
            extraction_row_weights(y, "uniform", c.policy_batch, batches, gen), groups)
    yn = y.double().numpy()
    out.update({f"y_mean_{g}": float(yn[groups == k].mean()) for k, g in enumerate(GROUPS)})
    out["y_quantiles"] = {g: dict(zip(map(str, QUANTILES),
                                      np.quantile(yn[groups == k], QUANTILES).tolist()))
                          for k, g in enumerate(GROUPS)}
    out["y_auc_D_s_expert_over_D_s_other"] = auc(yn[groups == 1], yn[groups == 2])
    out["y_auc_D_e_over_D_s_other"] = auc(yn[groups == 0], yn[groups == 2])
    out["y_auc_D_e_over_D_s_expert"] = auc(yn[groups == 0], yn[groups == 1])
    r = p.surrogate().double().numpy()
    out["reward_auc_D_s_expert_over_D_s_other"] = auc(r[groups == 1], r[groups == 2])
    policy, score = train_policy(p, cfg, data, norm, c.policy_steps, c.policy_lr,
                                 c.policy_weight_decay, episodes)
    wn = w_cut.double().numpy()
    w = wn / wn.sum()  # resampled batches' weights, the uniform batches' large-batch limit
    out.update(policy_steps=c.policy_steps, **score,
               grad_norms=group_grad_norms(policy, p.s_o, p.a_o, w, groups),
               neg_log_lik=neg_log_lik(policy, p.s_o, p.a_o, groups))
    if y_expert_only:  # the same y with D_s's other rows set to 0 (uses the labels)
        p.set_extraction(y=y * torch.as_tensor(groups < 2, dtype=y.dtype))
        _, s2 = train_policy(p, cfg, data, norm, c.policy_steps, c.policy_lr,
                             c.policy_weight_decay, episodes)
        out["y_expert_rows_only"] = s2
        p.set_extraction(y=y)
    for v in y_cuts:  # the same y, the label-free cut at each value
        p.set_extraction(cfg=dataclasses.replace(c, extraction_y_cut=v))
        out.setdefault("y_cut", {})[str(v)] = cut_report(p, cfg, data, norm, groups, batches,
                                                         episodes, gen)
        log.info("OLLIE, y cut %s: %s", v, out["y_cut"][str(v)])
    p.set_extraction(cfg=c)
    out["wall_s"] = round(time.time() - t0)
    return out


def baseline_report(cfg, data, norm, groups: np.ndarray, arm: str, steps: int,
                    episodes: int) -> dict:
    """DWBC's, BC-E's or the expert-rows oracle's policy after `steps` steps: shares (DWBC's at
    its final discriminator), gradient norms per group, its score."""
    t0 = time.time()
    c = dataclasses.replace(cfg, pretrain=arm)
    torch.manual_seed(c.seed)
    if arm == "bc_expert_rows":
        keep = groups < 2
        method = PlainBC(torch.as_tensor(data.union["observations"][keep], dtype=torch.float32),
                         torch.as_tensor(data.union["actions"][keep], dtype=torch.float32),
                         c.baselines.bc_batch, arm)
        c = dataclasses.replace(c, pretrain="bc_expert")
    else:
        method = build_pretrainer(c, data, norm)
    policy, score = train_policy(method, c, data, norm, steps, c.baselines.bc_lr,
                                 c.baselines.bc_weight_decay, episodes)
    w = dwbc_row_weights(method, policy) if arm == "dwbc" else \
        (groups < (2 if arm == "bc_expert_rows" else 1)).astype(float)
    s_o = torch.as_tensor(data.union["observations"], dtype=torch.float32)
    a_o = torch.as_tensor(data.union["actions"], dtype=torch.float32)
    out = {"steps": steps, "shares": group_shares(w, groups),
           "negative_weight_share": float(np.abs(w[w < 0]).sum() / np.abs(w).sum()),
           "rows_weighted_D_s_other": int(((w != 0) & (groups == 2)).sum()), **score,
           "grad_norms": group_grad_norms(policy, s_o, a_o, w, groups),
           "neg_log_lik": neg_log_lik(policy, s_o, a_o, groups)}
    out["wall_s"] = round(time.time() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    p = build_parser("ollie.experiments.loss_share", __doc__.split("\n\n")[0])
    p.set_defaults(config=None)
    p.add_argument("--env", default="halfcheetah", choices=list(bench.SETTINGS))
    p.add_argument("--dwbc-steps", type=int, default=None,
                   help="the baselines' policy steps (default: the config's bc_steps; 0 skips "
                        "both)")
    p.add_argument("--batches", type=int, default=2000,
                   help="uniform batches behind the expected extraction weights")
    p.add_argument("--arms", default="ollie,dwbc,bc_expert,bc_expert_rows",
                   help="comma-separated subset of " + ", ".join(ARMS))
    p.add_argument("--y-expert-only", action="store_true",
                   help="also extract OLLIE's policy with y set to 0 on D_s's other rows "
                        "(uses the labels: a diagnostic)")
    p.add_argument("--y-cut", default="",
                   help="comma-separated offline.extraction_y_cut values in (0, 1]: also extract "
                        "OLLIE's policy from the same y with each (label-free)")
    p.add_argument("--eval-episodes", type=int, default=10,
                   help="episodes per policy score (0: none); 10 as in the bench: 3 proved too "
                        "few to order the arms on HalfCheetah (results/ollie/NOTES.md)")
    args, _ = parse_args(argv, bench.TrainConfig, prog="ollie.experiments.loss_share",
                         description=__doc__, parser=p)
    if args.config is not None:
        raise ConfigError("--config: the probe takes the bench's config of --env")
    arms = args.arms.split(",")
    if not set(arms) <= set(ARMS):
        raise ConfigError(f"--arms: unknown {sorted(set(arms) - set(ARMS))} (known: {ARMS})")
    if min(args.batches, args.eval_episodes, args.dwbc_steps or 0) < 0 or args.batches == 0:
        raise ConfigError("--batches must be >= 1, --dwbc-steps and --eval-episodes >= 0")
    try:
        y_cuts = tuple(float(v) for v in args.y_cut.split(",") if v)
    except ValueError:
        raise ConfigError(f"--y-cut: not a list of numbers: {args.y_cut!r}") from None
    if not all(0 < v <= 1 for v in y_cuts):
        raise ConfigError(f"--y-cut: values must lie in (0, 1], got {args.y_cut}")
    if y_cuts and "ollie" not in arms:
        raise ConfigError("--y-cut needs the ollie arm in --arms")
    seed = args.seed if args.seed is not None else 3
    cfg = bench.arm_config(args.env, "ollie", seed, args.quick, list(args.overrides))
    torch.set_num_threads(1)
    data = build_data(cfg.data)
    mean, std = state_stats(data)
    norm = Normalizer(torch.as_tensor(mean), torch.as_tensor(std))
    groups = row_groups(len(data.expert["actions"]), data.imperfect, cfg.data.n_expert_in_s)
    res = {"env": args.env, "seed": seed, "quick": args.quick, "overrides": list(args.overrides),
           "rows": {g: int((groups == k).sum()) for k, g in enumerate(GROUPS)}}
    if "ollie" in arms:
        res["ollie"] = ollie_report(cfg, data, norm, groups, args.batches, args.eval_episodes,
                                    args.y_expert_only, y_cuts)
        log.info("OLLIE: %s", res["ollie"])
    steps = cfg.baselines.bc_steps if args.dwbc_steps is None else args.dwbc_steps
    for arm in [a for a in arms if a != "ollie"] if steps else ():
        res[arm] = baseline_report(cfg, data, norm, groups, arm, steps, args.eval_episodes)
        log.info("%s: %s", arm, res[arm])
    run_dir = make_run_dir(args.out, "ollie", "loss-share")
    atomic_write_json(run_dir / "loss_share.json", res)
    log.info("wrote %s", run_dir / "loss_share.json")
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
