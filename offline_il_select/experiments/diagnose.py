"""Diagnostics behind the README's reading of where ILID loses (not part of the method).

    python -m offline_il_select.experiments.diagnose --setting halfcheetah-random \\
        --steps 12000 prep            # or: --steps 2000 variants, --steps 5000 randominit

- `prep`: ILID's preparation on the bench's data and budget: |D_s|, where in their episodes the
  selected transitions lie, d(s) on D_e (overall and its first states), the share of D_b's next
  states rated expert-like, beta, and alpha (overall and on the expert's first transitions).
- `variants`: the policy trained `--steps` steps on the same prepared data with ILID's loss, the
  alpha-weighted D_u term alone, unweighted expert BC + the beta-gated D_s term, and BC-E; the
  score and the action each takes at the expert's first states.
- `randominit`: D_b rebuilt the way D4RL builds random data (a randomly initialised tanh-Gaussian
  policy: untrained MLP mean, pre-tanh std 1, instead of uniform actions); ILID and BC-E on it.
Writes diagnose.json into the run dir.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from offline_il_select.bench import SETTINGS, _arm_cfg, refuse_config
from offline_il_select.data import ILData, build_data, state_stats
from offline_il_select.ilid import ILID
from offline_il_select.models import Normalizer, TanhGaussianPolicy
from offline_il_select.train import evaluate, fit
from offline_il_select.wbc import bc_loss
from shared.cli import build_parser, run
from shared.errors import ConfigError
from shared.il.datasets import episode_ids, episode_returns
from shared.il.policy import GaussianPolicy
from shared.il.rollout import rollout
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger, setup_logging
from shared.runtime import set_seed

log = get_logger("offline_il_select.experiments.diagnose")


def _prepared(setting: str, steps: int, seed: int) -> tuple[ILID, ILData, Normalizer]:
    cfg = _arm_cfg(setting, "ilid", seed, False, steps)
    data = build_data(cfg.data)
    mean, std = state_stats(data)
    norm = Normalizer(torch.as_tensor(mean), torch.as_tensor(std))
    set_seed(seed)  # as train.fit does: the same discriminators as the bench's run of this seed
    ilid = ILID(data.expert, data.imperfect, norm, cfg.ilid, cfg.policy)
    ilid.prepare(torch.Generator().manual_seed(seed))
    return ilid, data, norm


def prep_report(setting: str, steps: int, seed: int) -> dict:
    ilid, data, norm = _prepared(setting, steps, seed)
    a, b, sigma = ilid.artifacts, data.imperfect, ilid.cfg.sigma
    ids = episode_ids(b)
    first = np.r_[0, np.flatnonzero(np.diff(ids)) + 1]
    t_in_ep = np.arange(len(ids)) - first[ids]
    sel = a["selected"].numpy()
    d_e = ilid.state_disc.predict(torch.as_tensor(data.expert["observations"])).numpy()
    z_e, z_s = norm(torch.as_tensor(data.expert["observations"])), norm(a["s_s"])
    nearest = {}  # normalised-state distance of the expert's first states to D_s / the rest of D_e
    for t in (0, 1, 2):
        rest = torch.cat([z_e[:t], z_e[t + 1:]])
        nearest[t] = {"D_s": float(torch.cdist(z_e[t:t + 1], z_s).min()) if len(z_s) else None,
                      "other_D_e": float(torch.cdist(z_e[t:t + 1], rest).min())}
    return {**ilid.stats(), "expert_like_share_of_D_e": float((d_e >= sigma).mean()),
            "d_on_first_expert_states": d_e[:10].round(3).tolist(),
            "alpha_on_first_expert_transitions": a["alpha"][:10].numpy().round(2).tolist(),
            "alpha_on_D_e_quartiles": np.quantile(a["alpha"][:len(d_e)].numpy(),
                                                  [0.25, 0.5, 0.75]).round(2).tolist(),
            "nearest_to_first_expert_states": nearest,
            "selected_step_in_episode_quartiles":
                np.quantile(t_in_ep[sel], [0.25, 0.5, 0.75]).tolist() if sel.any() else None}


def variants(setting: str, steps: int, seed: int) -> dict:
    ilid, data, norm = _prepared(setting, steps, seed)
    a, B = ilid.artifacts, ilid.pcfg.batch_size
    ne = len(data.expert["observations"])
    s_e, a_e = a["s_u"][:ne], a["a_u"][:ne]

    def draw(n: int, g: torch.Generator) -> torch.Tensor:
        return torch.randint(n, (B,), generator=g)

    def du_only(pol, g):
        i = draw(len(a["s_u"]), g)
        return bc_loss(pol, a["s_u"][i], a["a_u"][i], a["alpha"][i])

    def expert_plus_ds(pol, g):
        i, j = draw(ne, g), draw(len(a["s_s"]), g)
        return bc_loss(pol, s_e[i], a_e[i]) + bc_loss(pol, a["s_s"][j], a["a_s"][j], a["beta"][j])

    def bc_expert(pol, g):
        i = draw(ne, g)
        return bc_loss(pol, s_e[i], a_e[i])

    out = {"prep": ilid.stats(), "expert_first_actions": data.expert["actions"][:3].tolist()}
    for name, loss_fn in (("ilid", ilid.loss), ("du_only", du_only),
                          ("expert_plus_ds", expert_plus_ds), ("bc_expert", bc_expert)):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        pol = TanhGaussianPolicy(s_e.shape[1], a_e.shape[1], ilid.pcfg.hidden, norm)
        opt = torch.optim.Adam(pol.parameters(), lr=ilid.pcfg.lr,
                               weight_decay=ilid.pcfg.weight_decay)
        for _ in range(steps):
            loss = loss_fn(pol, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        ev = evaluate(pol, data, 5, 100_000 + 1000 * seed)
        out[name] = {"score": ev["score"],
                     "action_at_first_expert_states": pol.act(s_e[:3]).round(decimals=2).tolist()}
        log.info("%s: score %.1f", name, ev["score"])
    return out


class _RandomInitPolicy(GaussianPolicy):
    """An untrained tanh-Gaussian policy as D4RL's random data use: MLP mean, pre-tanh std 1."""

    @torch.no_grad()
    def mean_std(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, _ = self.net(torch.as_tensor(np.asarray(obs), dtype=torch.float32)).chunk(2, -1)
        return mean.numpy(), np.ones(mean.shape, np.float32)


def random_init(setting: str, steps: int, seed: int, episodes: int) -> dict:
    base_cfg = _arm_cfg(setting, "ilid", seed, False, steps)
    base = build_data(base_cfg.data)
    S, A = base.expert["observations"].shape[1], base.expert["actions"].shape[1]
    torch.manual_seed(123)
    d_b = rollout(base.env_id, episodes, base_cfg.data.data_seed, "expert",
                  _RandomInitPolicy(S, A), max_steps=base_cfg.data.max_episode_steps)
    d_b.pop("infos/noise_std", None)
    data = ILData(base.expert, d_b, base.env_id, base.ref_random, base.ref_expert,
                  "random-init-policy D_b")
    out = {"D_b_return": float(episode_returns(d_b).mean()),
           "D_b_mean_abs_action": float(np.abs(d_b["actions"]).mean())}
    for arm in ("ilid", "bc_expert"):
        res = fit(_arm_cfg(setting, arm, seed, False, steps), data)
        out[arm] = {"score": res["score"], "n_selected": res["prep"].get("n_selected"),
                    "beta_mean": res["prep"].get("beta_mean")}
        log.info("%s on random-init D_b: score %.1f", arm, res["score"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = build_parser("offline_il_select.experiments.diagnose", __doc__.split("\n\n")[0])
    p.add_argument("what", choices=("prep", "variants", "randominit"))
    p.add_argument("--setting", default="halfcheetah-random", help="one of " + ", ".join(SETTINGS))
    p.add_argument("--steps", type=int, default=12_000,
                   help="policy steps (discriminators: 1/10, as in the bench)")
    p.add_argument("--episodes", type=int, default=1000, help="randominit: D_b episodes")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    refuse_config(args, "diagnose")
    if args.setting not in SETTINGS:
        raise ConfigError(f"--setting: unknown '{args.setting}' (known: {', '.join(SETTINGS)})")
    if args.steps < 1 or args.episodes < 1:
        raise ConfigError("--steps and --episodes must be >= 1")
    torch.set_num_threads(1)
    seed = args.seed or 0
    if args.what == "prep":
        res = prep_report(args.setting, args.steps, seed)
    elif args.what == "variants":
        res = variants(args.setting, args.steps, seed)
    else:
        res = random_init(args.setting, args.steps, seed, args.episodes)
    res.update(what=args.what, setting=args.setting, steps=args.steps, seed=seed)
    run_dir = make_run_dir(args.out, "offline_il_select", f"diagnose-{args.what}")
    atomic_write_json(run_dir / "diagnose.json", res)
    log.info("%s", res)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
