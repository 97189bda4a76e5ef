"""What each arm imitates: the share of its policy loss on expert and on other rows.

    python -m offline_il_select.experiments.loss_share \\
        --setting halfcheetah-medium-replay+1expert --seed 3 --dwbc-steps 10000 --fit-steps 20000

Every arm here is weighted BC, so its loss is sum_i w_i (-log pi(a_i | s_i)) over the rows of
D_e ∪ D_b, with w_i the expected weight of row i in a step's loss (its draw probability times its
weight in the term that draws it). This probe computes w for

- ILID (and ILID without beta) after its preparation at the bench's discriminator budget: a row
  of D_u = D_e ∪ D_s gets alpha_i / |D_u|, a row of D_s also beta_i / |D_s| (`ilid_row_weights`);
- DWBC after `--dwbc-steps` joint steps of its policy and discriminator: a D_e row
  (alpha - eta / (d (1 - d)) - 1) / |D_e|, a D_b row (1 / (1 - d) - 1) 1[d >= 0.5] / |D_b|
  (`shared.il.dwbc.DWBC.row_weights`, the weights of its `loss` at its current discriminator);
- BC-E: 1 / |D_e| on D_e.

It reports the share of sum |w| on D_e, on D_b's expert trajectories and on D_b's other rows
(D_b's ground-truth labels, which no method sees), and the loss-weighted mean return of the
episodes the imitated rows come from. With `--fit-steps` it also trains, from the same
preparation, ILID and ILID with D_s cut to D_b's expert rows (an oracle that uses the labels: a
diagnostic, not a method), and scores both (`--eval-episodes` episodes at the end and half-way).
Writes loss_share.json into the run dir.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from offline_il_select.bench import SETTINGS, _arm_cfg, refuse_config
from offline_il_select.data import ILData, build_data
from offline_il_select.ilid import ILID
from offline_il_select.train import evaluate, fit, prepare, setup
from shared.cli import build_parser, run
from shared.errors import ConfigError
from shared.il.datasets import episode_ids, episode_returns
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger, setup_logging

log = get_logger("offline_il_select.experiments.loss_share")


def ilid_row_weights(n_e: int, selected: np.ndarray, alpha: np.ndarray, beta: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Expected per-row weight of ILID's loss: D_e rows (n_e,) and D_b rows (N_b,).

    The loss is mean_{D_u batch}[alpha (-log pi)] + mean_{D_s batch}[beta (-log pi)] with
    uniform draws, D_u = D_e then D_s (D_s = D_b's selected rows in D_b order); alpha (n_e +
    |D_s|,), beta (|D_s|,)."""
    sel = np.flatnonzero(selected)
    n_u = n_e + len(sel)
    w_e = alpha[:n_e] / n_u
    w_b = np.zeros(len(selected))
    if len(sel):
        w_b[sel] = alpha[n_e:] / n_u + beta / len(sel)
    return w_e, w_b


def shares(w_e: np.ndarray, w_b: np.ndarray, b_is_expert: np.ndarray, ret_e: float,
           ret_b_rows: np.ndarray) -> dict:
    """Share of sum |w| on D_e, D_b's expert rows and D_b's other rows; the |w|-weighted mean
    episode return of the imitated rows (overall and over D_b's other rows)."""
    a_e, a_b = np.abs(w_e), np.abs(w_b)
    total = a_e.sum() + a_b.sum()
    other = a_b * ~b_is_expert
    return {"share_D_e": float(a_e.sum() / total),
            "share_D_b_expert": float((a_b * b_is_expert).sum() / total),
            "share_D_b_other": float(other.sum() / total),
            "rows_D_b_other_weighted": int((other > 0).sum()),
            "imitated_return": float((a_e.sum() * ret_e + (a_b * ret_b_rows).sum()) / total),
            "imitated_return_D_b_other": float((other * ret_b_rows).sum() / other.sum())
            if other.sum() > 0 else float("nan")}


def composition(data: ILData) -> dict:
    """D_b's episodes: returns of its source and expert parts."""
    b, is_exp = data.imperfect, data.imperfect_is_expert
    rets, ids = episode_returns(b), episode_ids(b)
    ep_exp = np.bincount(ids, weights=is_exp.astype(float)) > 0
    src = rets[~ep_exp]
    return {"D_b_rows": int(len(ids)), "D_b_expert_rows": int(is_exp.sum()),
            "source_episodes": int(len(src)),
            "source_return_quantiles": np.quantile(src, [0.1, 0.25, 0.5, 0.75, 0.9]).round(0)
            .tolist(),
            "source_return_mean": float(src.mean()),
            "source_steps_mean": float(np.bincount(ids)[~ep_exp].mean()),
            "expert_return_mean": float(rets[ep_exp].mean()) if ep_exp.any() else float("nan"),
            "D_e_return": float(episode_returns(data.expert).mean())}


def ilid_report(ilid: ILID, data: ILData, ret_rows: np.ndarray) -> dict:
    """Where D_s comes from, and ILID's (and ILID-without-beta's) loss shares."""
    a, is_exp = ilid.artifacts, data.imperfect_is_expert
    sel = a["selected"].numpy().astype(bool)
    n_e = len(data.expert["observations"])
    alpha, beta = a["alpha"].cpu().numpy().astype(np.float64), a["beta"].cpu().numpy()
    ids = episode_ids(data.imperfect)
    first = np.r_[0, np.flatnonzero(np.diff(ids)) + 1]
    t_in_ep = np.arange(len(ids)) - first[ids]
    other_sel = sel & ~is_exp
    ret_e = float(episode_returns(data.expert).mean())
    out = {"n_selected": int(sel.sum()), "n_selected_expert": int((sel & is_exp).sum()),
           "n_selected_other": int(other_sel.sum()),
           "n_other_beta1": int(beta[~is_exp[sel]].sum()),
           "other_selected_return_mean": float(ret_rows[other_sel].mean())
           if other_sel.any() else float("nan"),
           "other_selected_step_quartiles": np.quantile(t_in_ep[other_sel], [0.25, 0.5, 0.75])
           .tolist() if other_sel.any() else None,
           "alpha_mean_D_e": float(alpha[:n_e].mean()),
           "alpha_mean_D_s_expert": float(alpha[n_e:][is_exp[sel]].mean())
           if (sel & is_exp).any() else float("nan"),
           "alpha_mean_D_s_other": float(alpha[n_e:][~is_exp[sel]].mean())
           if other_sel.any() else float("nan")}
    for name, b in (("ilid", beta), ("ilid_no_beta", np.ones_like(beta))):
        out[name] = shares(*ilid_row_weights(n_e, sel, alpha, b), is_exp, ret_e, ret_rows)
    return out


def expert_only(artifacts: dict, n_e: int, is_exp: np.ndarray) -> dict:
    """ILID's artifacts with D_s cut to D_b's expert rows (D_u with it): the oracle variant."""
    a = dict(artifacts)
    sel = a["selected"].numpy().astype(bool)
    keep = torch.as_tensor(is_exp[sel])
    keep_u = torch.cat([torch.ones(n_e, dtype=torch.bool), keep])
    for k in ("s_s", "a_s", "beta", "d_state"):
        a[k] = a[k][keep]
    for k in ("s_u", "a_u", "alpha"):
        a[k] = a[k][keep_u]
    a["selected"] = torch.as_tensor(sel & is_exp)
    return a


def _cfg(setting: str, arm: str, seed: int, steps: int, n_s: int):
    """The bench's config of `arm` (its full budget at `steps`), D_b cut to `n_s` source
    trajectories where n_s > 0."""
    cfg = _arm_cfg(setting, arm, seed, False, steps)
    if n_s:
        cfg.data.n_s = n_s
    return cfg


def probe(setting: str, seed: int, steps: int, dwbc_steps: int, fit_steps: int,
          eval_episodes: int, n_s: int = 0) -> dict:
    cfg = _cfg(setting, "ilid", seed, steps, n_s)
    data = build_data(cfg.data)
    ret_rows = episode_returns(data.imperfect)[episode_ids(data.imperfect)]
    out = {"composition": composition(data), "disc_steps": cfg.ilid.disc_steps}
    device, gen, ilid, _ = setup(cfg, data)
    prep = prepare(cfg, data, ilid, gen, device)
    out.update(ilid_report(ilid, data, ret_rows))
    n_e = len(data.expert["observations"])
    ret_e = float(episode_returns(data.expert).mean())
    out["bc_expert"] = shares(np.ones(n_e) / n_e, np.zeros(len(ret_rows)),
                              data.imperfect_is_expert, ret_e, ret_rows)
    log.info("%s seed %d: ILID %s", setting, seed, {k: out[k] for k in ("ilid", "ilid_no_beta")})
    if dwbc_steps:
        dcfg = _cfg(setting, "dwbc", seed, steps, n_s)
        _, dgen, dwbc, pol = setup(dcfg, data)
        opt = torch.optim.Adam(pol.parameters(), lr=dcfg.policy.lr,
                               weight_decay=dcfg.policy.weight_decay)
        for _ in range(dwbc_steps):
            loss = dwbc.loss(pol, dgen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        w_e, w_b = dwbc.row_weights(pol)
        out["dwbc"] = {**shares(w_e, w_b, data.imperfect_is_expert, ret_e, ret_rows),
                       "steps": dwbc_steps, "w_D_e_mean": float(w_e.mean() * n_e),
                       "n_D_b_weighted": int((w_b > 0).sum()),
                       "n_D_b_expert_weighted": int(((w_b > 0) & data.imperfect_is_expert).sum()),
                       **evaluate(pol, data, eval_episodes, 300_000 + 1000 * seed)}
        log.info("DWBC after %d steps: %s", dwbc_steps, out["dwbc"])
    if fit_steps:
        fcfg = _cfg(setting, "ilid", seed, steps, n_s)
        fcfg.policy.steps, fcfg.eval_every, fcfg.eval_episodes = fit_steps, fit_steps // 2, \
            eval_episodes
        prep = {**prep, "prep_s": 0.0, "prep_cpu_s": 0.0}
        for name, arts in (("ilid", ilid.artifacts),
                           ("ilid_expert_rows_only",
                            expert_only(ilid.artifacts, n_e, data.imperfect_is_expert))):
            res = fit(fcfg, data, prepared=(arts, prep))
            out.setdefault("fit", {})[name] = [round(c["score"], 1) for c in res["curve"]]
            log.info("%s, %d steps: scores %s", name, fit_steps, out["fit"][name])
    return out


def main(argv: list[str] | None = None) -> int:
    p = build_parser("offline_il_select.experiments.loss_share", __doc__.split("\n\n")[0])
    p.add_argument("--setting", default="halfcheetah-random+1expert",
                   help="one of " + ", ".join(SETTINGS))
    p.add_argument("--steps", type=int, default=100_000,
                   help="the bench budget whose discriminator steps ILID's preparation takes "
                        "(1/10 of it)")
    p.add_argument("--dwbc-steps", type=int, default=10_000, help="DWBC steps (0: skip DWBC)")
    p.add_argument("--fit-steps", type=int, default=0,
                   help="policy steps of ILID and its expert-rows-only oracle (0: skip)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--n-s", type=int, default=0,
                   help="source trajectories in D_b instead of the setting's (0: the setting's)")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    refuse_config(args, "loss_share")
    if args.setting not in SETTINGS:
        raise ConfigError(f"--setting: unknown '{args.setting}' (known: {', '.join(SETTINGS)})")
    if args.steps < 1 or min(args.dwbc_steps, args.fit_steps, args.n_s) < 0 \
            or args.eval_episodes < 1 or args.fit_steps == 1:
        raise ConfigError("--steps, --eval-episodes must be >= 1, --dwbc-steps, --n-s >= 0, "
                          "--fit-steps 0 or >= 2")
    torch.set_num_threads(1)
    seed = args.seed if args.seed is not None else 3
    res = probe(args.setting, seed, args.steps, args.dwbc_steps, args.fit_steps,
                args.eval_episodes, args.n_s)
    res.update(setting=args.setting, seed=seed, steps=args.steps, n_s=args.n_s or None)
    run_dir = make_run_dir(args.out, "offline_il_select", "loss-share")
    atomic_write_json(run_dir / "loss_share.json", res)
    log.info("wrote %s", run_dir)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
