"""Benchmark: ILID vs BC-E, BC-U, DWBC, ISW-BC (+ ablations) in the paper's data protocol.

    python -m offline_il_select.bench [--quick] [--out DIR] [--workers 2] [--device cuda]

Settings are named after the paper's tasks (`configs/offline_il_select/<setting>.yaml`): D_e = one
expert trajectory; D_b = the source dataset's trajectories plus 0, 1 or 10 further expert
trajectories (`hopper-random+1expert`, ...), composed as the paper's code composes them. A
setting with expert trajectories in D_b is scored only where imitation leaves room: BC-E at
most PRECONDITION (80) normalised points; the others, and the random-only settings, are reported
beside. Every arm uses the same policy network, step budget, batches and evaluation episodes.
Reported: normalised score (against our deterministic expert and against D4RL's references) mean
+- std per arm and setting, ILID's ablations (no beta, alpha unclipped, K = 1), training time
relative to BC-E, which of D_b's expert rows ILID selects and gates, selection quality on
noisy-expert data and |D_s| vs K. Out of family: every finished policy is also evaluated on the
same task with dynamics outside the data's range (`shared.il.envs.PERTURBATIONS`: body masses
x1.5, friction x0.5), never used to train or choose anything; reported beside the in-family
score. `--quick`: a CPU-sized budget, one seed, 200 source trajectories; the default (full)
budget is for a GPU machine (100k policy steps, 3 seeds).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from offline_il_select.config import TrainConfig
from offline_il_select.data import (
    build_data,
    dataset_specs,
    generate_spec,
    selection_quality,
    state_stats,
)
from offline_il_select.discriminator import train_discriminator
from offline_il_select.ensemble import DWBCSpec, EnsembleBC, Member, train_ensemble
from offline_il_select.ensemble_prep import prepare_many
from offline_il_select.ilid import t32
from offline_il_select.models import Discriminator, Normalizer, TanhGaussianPolicy
from offline_il_select.selection import ResultantStateSelector
from offline_il_select.train import evaluate, fit, setup
from shared.bench import BenchReport, save_figure
from shared.cli import build_parser, parse_args, run
from shared.config import load_config
from shared.errors import ConfigError
from shared.il.envs import PERTURBATIONS, make_perturbed_env
from shared.io import atomic_write_json, make_run_dir, read_json
from shared.log import get_logger, setup_logging
from shared.runtime import pick_device

log = get_logger("offline_il_select.bench")

CONFIG_DIR = Path("configs/offline_il_select")
SETTINGS = {name: str(CONFIG_DIR / f"{name}.yaml") for name in (  # name -> config file
    "halfcheetah-random+1expert", "halfcheetah-random+10expert",
    "halfcheetah-medium-replay+1expert", "halfcheetah-medium-replay+10expert",
    "halfcheetah-medium+1expert", "hopper-random+1expert", "hopper-random+10expert",
    "hopper-medium-replay+1expert", "hopper-medium-replay+10expert", "hopper-medium+1expert",
    "walker2d-random+1expert", "walker2d-random+10expert", "walker2d-medium-replay+1expert",
    "walker2d-medium-replay+10expert", "walker2d-medium+1expert",
    "halfcheetah-random", "hopper-random", "walker2d-random")}
QUICK_SETTINGS = ["halfcheetah-random+1expert", "halfcheetah-random+10expert",
                  "hopper-random+1expert", "hopper-random+10expert", "halfcheetah-random",
                  "hopper-random"]
FULL_SETTINGS = QUICK_SETTINGS[:4] + ["halfcheetah-medium-replay+1expert",
                                      "halfcheetah-medium-replay+10expert",
                                      "walker2d-random+1expert", "walker2d-random+10expert"
                                      ] + QUICK_SETTINGS[4:] + ["walker2d-random"]
ARMS = {  # arm -> config overrides
    "ilid": {},
    "bc_expert": {"method": "bc_expert"},
    "bc_all": {"method": "bc_all"},
    "dwbc": {"method": "dwbc"},
    "iswbc": {"method": "iswbc"},
    "ilid_no_beta": {"ilid.use_beta": False},
    "ilid_alpha_unclipped": {"ilid.clip_alpha": False},
    "ilid_k1": {"ilid.rollback": 1},
    # the paper's code's policy batch, 256 from D_u + 256 from D_s (the bench: 128 + 128); run
    # only when named: a different batch trains as a lockstep ensemble of its own
    "ilid_batch256": {"policy.batch_size": 256},
    "ilid_no_beta_batch256": {"ilid.use_beta": False, "policy.batch_size": 256},
}
NAMED_ONLY = ("ilid_batch256", "ilid_no_beta_batch256")  # not in the default arm lists
QUICK_ARMS = [a for a in ARMS if a != "ilid_k1" and a not in NAMED_ONLY]
FULL_ARMS = [a for a in ARMS if a not in NAMED_ONLY]
BASELINES = ("bc_expert", "bc_all", "dwbc", "iswbc")
ABLATIONS = ("ilid_no_beta", "ilid_alpha_unclipped", "ilid_k1")
K_SWEEP = (1, 2, 5, 10, 20, 50)
PRECONDITION = 80.0  # a setting is scored only where BC-E <= 80% of the expert
# Shorter runs than the paper's 1M steps at lr 1e-4: a higher lr, as for every arm.
SHARED_BUDGET = ["policy.lr=3e-4", "policy.batch_size=128", "ilid.disc_lr=3e-4",
                 "ilid.disc_batch=128"]
FULL_STEPS, QUICK_STEPS = 100_000, 10_000  # default policy steps of the full and quick benches
QUICK_SOURCE = 200  # source trajectories in D_b under --quick (the paper: 1000)
DISC_FRACTION = 10  # the paper: 100k steps per discriminator for 1M policy steps
MIN_DISC_STEPS = 100  # floor for short (quick) budgets


def refuse_config(args, tool: str) -> None:
    """The bench's side tools (diagnose, steptime) share its settings and budget: their
    --config/--set flags (from `build_parser`) are an error."""
    if args.config or args.overrides:
        raise ConfigError(f"--config/--set: {tool} takes no config (it uses the bench's "
                          "settings and budget)")


def budget(quick: bool, steps: int | None = None) -> list[str]:
    """Config overrides shared by every arm: `steps` policy steps (default FULL_STEPS or
    QUICK_STEPS), steps / 10 per discriminator (the paper's proportion), 5 (quick) or 10
    evaluations; --quick also cuts the source data to QUICK_SOURCE trajectories."""
    steps = steps or (QUICK_STEPS if quick else FULL_STEPS)
    disc = max(steps // DISC_FRACTION, MIN_DISC_STEPS)
    every = max(steps // (5 if quick else 10), 1)  # evaluations (and checkpoints)
    common = [f"policy.steps={steps}", f"ilid.disc_steps={disc}", f"eval_every={every}",
              f"ckpt_every={every}"]
    if quick:
        return common + ["eval_episodes=5", f"data.n_s={QUICK_SOURCE}"] + SHARED_BUDGET
    return common + ["eval_episodes=10"] + SHARED_BUDGET


def experts_in_imperfect(setting: str) -> int:
    """How many expert trajectories the setting puts into D_b."""
    return load_config(SETTINGS[setting], TrainConfig).data.n_s_expert


def _arm_cfg(setting: str, arm: str, seed: int, quick: bool, steps: int | None,
             device: str = "cpu") -> TrainConfig:
    over = budget(quick, steps) + [f"{k}={v}" for k, v in ARMS[arm].items()] + [
        f"seed={seed}", f"device={device}"]
    return load_config(SETTINGS[setting], TrainConfig, over)


_WARM: set[str] = set()


def warm_up(device: str) -> None:
    """Once per process and CUDA device: a few policy and discriminator steps on random data,
    so that CUDA's one-time library and kernel loading is not timed inside the process's first
    job (the bench runs ILID first, so it would bear all of it)."""
    if not device.startswith("cuda") or device in _WARM:
        return
    from offline_il_select.discriminator import train_discriminator
    from offline_il_select.models import Discriminator, TanhGaussianPolicy
    from offline_il_select.wbc import weighted_bc_loss

    g = torch.Generator(device=device).manual_seed(0)
    s, a = torch.randn(256, 8, device=device), torch.rand(256, 2, device=device) * 2 - 1
    w = torch.ones(256, device=device)
    pol = TanhGaussianPolicy(8, 2).to(device)
    opt = torch.optim.Adam(pol.parameters(), weight_decay=5e-3)
    for _ in range(5):
        opt.zero_grad(set_to_none=True)
        weighted_bc_loss(pol, s[:128], a[:128], w[:128], s[128:], a[128:], w[128:]).backward()
        opt.step()
    disc = Discriminator(8).to(device)
    train_discriminator(disc, s[:128], s, 5, 64, 3e-4, 5e-3, g)
    disc.predict(s)
    torch.cuda.synchronize(device)
    _WARM.add(device)


def out_of_family(policy, data, episodes: int, seed: int) -> dict[str, float]:
    """Normalised score of the finished policy under each perturbed dynamics (same references and
    episode count as in family; seeds disjoint from the in-family evaluation's)."""
    return {name: evaluate(policy, data, episodes, 200_000 + 1000 * seed,
                           make=partial(make_perturbed_env, mass_scale=m, friction_scale=f)
                           )["score"] for name, (m, f) in PERTURBATIONS.items()}


def run_job(job: tuple[str, int, str, bool, int | None, str]) -> dict:
    """One arm on one (setting, seed) on a device. Every arm of a (setting, seed) sees the same
    data and budget; `ilid_no_beta` repeats ILID's (deterministic) preparation, so it has the same
    d(s), D_s and D(s, a) as `ilid` and differs only in beta. Returns one result row."""
    setting, seed, arm, quick, steps, device = job
    torch.set_num_threads(1)
    warm_up(device)
    cfg = _arm_cfg(setting, arm, seed, quick, steps, device)
    data = build_data(cfg.data)
    res = fit(cfg, data)
    row = {"setting": setting, "seed": seed, "arm": arm, "device": device, "score": res["score"],
           "score_d4rl": res["score_d4rl"], "return": res["return"], "train_s": res["train_s"],
           "train_cpu_s": res["train_cpu_s"], "prep_cpu_s": res["prep"].get("prep_cpu_s", 0.0),
           "curve": res["curve"],
           "ood": out_of_family(res["policy"], data, cfg.eval_episodes, seed)}
    if cfg.method == "ilid":
        row.update({k: res["prep"][k] for k in ("n_selected", "selection_quality", "beta_mean",
                                                "alpha_max")})
        row.update(expert_rows(res["artifacts"], data.imperfect_is_expert))
    log.info("%s seed %d %-13s score %6.1f  out of family %s  (%.1f CPU s)", setting, seed, arm,
             res["score"], " ".join(f"{k} {v:.1f}" for k, v in row["ood"].items()),
             res["train_cpu_s"])
    return row


def expert_rows(artifacts: dict, is_expert: np.ndarray) -> dict:
    """What ILID does with D_b's expert rows: how many it selects, and the mean beta on those
    selected (beta = 0 drops them from the D_s term; they still enter D_u's alpha term)."""
    sel = artifacts["selected"].numpy().astype(bool)
    on_sel = is_expert[sel]  # D_s rows (in D_b order) that are expert rows
    beta = artifacts["beta"].cpu().numpy()
    return {"n_expert_rows": int(is_expert.sum()), "n_selected_expert": int(on_sel.sum()),
            "beta_mean_selected_expert": float(beta[on_sel].mean()) if on_sel.any()
            else float("nan"),
            "n_selected_gated_in": int(beta.sum())}


PART_EPISODES = 100  # a dataset of at least this many episodes is rolled out in slices


def warm_data(settings: list[str], quick: bool, ex: ProcessPoolExecutor, workers: int = 1
              ) -> None:
    """Roll out every dataset the bench needs once, on the pool's `workers` processes, before
    the runs read the cache: the small ones one per process, each large one (PART_EPISODES
    episodes or more: the 1000 source episodes) in `workers` slices of episodes, one per process
    (the same dataset as one rollout: `shared.il.generate.dataset`'s `parts`)."""
    cfgs = [_arm_cfg(s, "ilid", 0, quick, None).data for s in settings]
    cfgs += [_study_cfg(e, quick).data for e in _study_envs(settings)]
    specs = {}
    for c in cfgs:
        for sp in dataset_specs(c)["expert"] + dataset_specs(c)["source"]:
            specs.setdefault(sp, c)
    small = [ex.submit(generate_spec, sp, c) for sp, c in specs.items() if sp[2] < PART_EPISODES]
    for sp, c in specs.items():
        if sp[2] >= PART_EPISODES:
            generate_spec(sp, c, parts=workers, map_fn=ex.map)
    for f in small:
        f.result()


def _study_envs(settings: list[str]) -> list[str]:
    return list(dict.fromkeys(s.split("-")[0] + "-random" for s in settings))


def _study_cfg(env_setting: str, quick: bool, steps: int | None = None) -> TrainConfig:
    over = budget(quick, steps) + ["data.source=noisy", "data.n_s_expert=0",
                                   "data.n_s=" + ("20" if quick else "50")]
    return load_config(SETTINGS[env_setting], TrainConfig, over)


def selection_study(env_setting: str, quick: bool, steps: int | None = None) -> dict:
    """On 1 expert + noisy-expert episodes: selection quality and |D_s| for each K (d(s) trained
    with the discriminator budget that goes with `steps` policy steps)."""
    torch.set_num_threads(1)
    cfg = _study_cfg(env_setting, quick, steps)
    data = build_data(cfg.data)
    mean, std = state_stats(data)
    norm = Normalizer(torch.as_tensor(mean), torch.as_tensor(std))
    gen = torch.Generator().manual_seed(0)
    c = cfg.ilid
    d = Discriminator(mean.shape[0], c.disc_hidden, c.clip, norm)
    train_discriminator(d, t32(data.expert["observations"]), t32(data.imperfect["observations"]),
                        c.disc_steps, c.disc_batch, c.disc_lr, c.disc_weight_decay, gen)
    d_next = d.predict(t32(data.imperfect["next_observations"])).numpy()
    b = data.imperfect
    out = {"K": [], "n_selected": [], "selection_quality": [], "n_imperfect": len(b["rewards"])}
    for k in K_SWEEP:
        sel = ResultantStateSelector(c.sigma, k)(d_next, b["terminals"], b["timeouts"])
        out["K"].append(k)
        out["n_selected"].append(int(sel.sum()))
        out["selection_quality"].append(selection_quality(b, sel))
    # Reference point: a random subset of D_b has quality = share of "good" transitions.
    out["random_pick_quality"] = selection_quality(b, np.ones(len(b["rewards"]), bool))
    return out


def _plot(rows: list[dict], studies: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    fig, axes = plt.subplots(1, len(settings) + 1, figsize=(4.2 * (len(settings) + 1), 3.6),
                             squeeze=False)
    for ax, s in zip(axes[0], settings):
        for arm in ARMS:
            curves = [r["curve"] for r in rows if r["setting"] == s and r["arm"] == arm]
            if not curves:
                continue
            steps = [p["step"] for p in curves[0]]
            mean = np.mean([[p["score"] for p in c] for c in curves], axis=0)
            ax.plot(steps, mean, marker=".", label=arm, lw=2 if arm == "ilid" else 1)
        ax.set_title(s, fontsize=9)
        ax.set_xlabel("policy steps")
        ax.set_ylabel("normalised score")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    ax = axes[0][-1]
    for name, st in studies.items():
        ax.plot(st["K"], st["n_selected"], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("K (rollback)")
    ax.set_ylabel("|D_s| (noisy-expert D_b)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _mean(rs: list[dict], key: str) -> float:
    vals = [r[key] for r in rs if key in r]
    return statistics.mean(vals) if vals else float("nan")


def ood_mean(rs: list[dict]) -> float:
    """Mean over seeds and perturbations of the out-of-family score (nan for rows that predate
    the out-of-family arm)."""
    vals = [v for r in rs for v in r.get("ood", {}).values()]
    return statistics.mean(vals) if vals else float("nan")


def add_rows(rep: BenchReport, rows: list[dict], settings: list[str], arms: list[str]) -> dict:
    """One report row per (setting, arm): scores (mean +- std over seeds, both normalisations),
    out-of-family scores (per perturbation and their mean), times and ILID's selection figures.
    Returns {(setting, arm): mean score} and {("ood", setting, arm): mean out-of-family score}."""
    mean_of = {}
    for s in settings:
        for arm in arms:
            rs = [r for r in rows if r["setting"] == s and r["arm"] == arm]
            sc = [r["score"] for r in rs]
            mean_of[(s, arm)] = statistics.mean(sc)
            extra = {k: _mean(rs, k) for k in ("n_selected", "selection_quality", "beta_mean",
                                               "n_selected_expert", "beta_mean_selected_expert")
                     if k in rs[0]}
            mean_of[("ood", s, arm)] = ood_mean(rs)
            ood = {f"ood_{k}": statistics.mean(r["ood"][k] for r in rs)
                   for k in PERTURBATIONS if all(k in r.get("ood", {}) for r in rs)}
            rep.add(arm, s, score=mean_of[(s, arm)],
                    score_std=statistics.pstdev(sc) if len(sc) > 1 else 0.0,
                    score_ood=mean_of[("ood", s, arm)], **ood,
                    score_d4rl=_mean(rs, "score_d4rl"), train_s=_mean(rs, "train_s"),
                    train_cpu_s=_mean(rs, "train_cpu_s"), seeds=len(sc), **extra)
    return mean_of


def classify(settings: list[str], mean_of: dict, experts: dict[str, int]) -> dict[str, str]:
    """Per setting: 'scored' (experts in D_b, BC-E <= PRECONDITION), 'precondition not met'
    (experts in D_b, BC-E above it) or 'random only' (no expert in D_b): reported beside."""
    return {s: ("random only" if not experts[s] else "scored"
                if mean_of[(s, "bc_expert")] <= PRECONDITION else "precondition not met")
            for s in settings}


def win_checks(rep: BenchReport, scored: list[str], mean_of: dict, arms: list[str],
               quick: bool) -> dict:
    """The claim on the scored settings: ILID >= BC-E, DWBC and ISW-BC on >= 3 of 4, and
    >= 1.3x BC-E on >= 2 of 4 (the same shares of another number of settings)."""
    n = len(scored)
    rep.check("settings with expert trajectories in D_b where BC-E <= 80 (scored)", n, ">=",
              2 if quick else 4)
    rivals = [a for a in ("bc_expert", "dwbc", "iswbc") if a in arms]
    beats = [s for s in scored if all(mean_of[(s, "ilid")] >= mean_of[(s, a)] for a in rivals)]
    ratio = {s: mean_of[(s, "ilid")] / max(mean_of[(s, "bc_expert")], 1e-9) for s in scored}
    big = [s for s in scored if ratio[s] >= 1.3]
    names = "BC-E" + ", DWBC" * ("dwbc" in arms) + ", ISW-BC" * ("iswbc" in arms)
    rep.check(f"scored settings where ILID >= {names} (of {n})", len(beats), ">=",
              max(1, math.ceil(0.75 * n)))
    rep.check(f"scored settings where ILID >= 1.3x BC-E (of {n})", len(big), ">=",
              max(1, math.ceil(0.5 * n)))
    ood = {s: mean_of[("ood", s, "ilid")] for s in scored}
    beats_ood = [s for s in scored if all(ood[s] >= mean_of[("ood", s, a)] for a in rivals)]
    if scored and not any(math.isnan(v) for v in ood.values()):
        rep.check(f"out of family: scored settings where ILID >= {names} (of {n})",
                  len(beats_ood), ">=", max(1, math.ceil(0.75 * n)))
    return {"beats_all": beats, "ilid_over_bc_expert": ratio, "at_least_1.3x": big,
            "beats_all_out_of_family": beats_ood,
            "ilid_over_bc_expert_out_of_family": {
                s: ood[s] / max(mean_of[("ood", s, "bc_expert")], 1e-9) for s in scored}}


def ablation_table(settings: list[str], mean_of: dict, arms: list[str]) -> dict:
    """Per setting: ILID and each ablation arm's mean score, and ILID minus the arm."""
    return {s: {a: {"score": mean_of[(s, a)], "ilid_minus": mean_of[(s, "ilid")] - mean_of[(s, a)]}
                for a in ABLATIONS if a in arms} for s in settings}


def time_ratio(rows: list[dict], settings: list[str]) -> tuple[str, dict]:
    """ILID / BC-E training time per setting. On a CPU: process CPU seconds (on a shared machine
    wall-clock mostly measures others). On a GPU: synchronised wall-clock seconds (the host's CPU
    time there is launch overhead and spin-waiting). Rows of an --ensemble share one policy loop
    and are left out (settings without timed ILID and BC-E rows are missing from the result)."""
    rows = [r for r in rows if r.get("timing") != "ensemble"]
    on_gpu = bool(rows) and all(str(r.get("device", "cpu")).startswith("cuda") for r in rows)
    key = "train_s" if on_gpu else "train_cpu_s"

    def t(s, arm):
        return statistics.mean(r[key] for r in rows if r["setting"] == s and r["arm"] == arm)

    have = {(r["setting"], r["arm"]) for r in rows}
    return ("wall time on the GPU" if on_gpu else "CPU time",
            {s: t(s, "ilid") / t(s, "bc_expert") for s in settings
             if (s, "ilid") in have and (s, "bc_expert") in have})


def summarise(rows: list[dict], studies: dict, quick: bool, command: list[str],
              steps: int | None = None) -> BenchReport:
    rep = BenchReport("offline_il_select", baseline="bc_expert", command=command)
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    arms = [a for a in ARMS if any(r["arm"] == a for r in rows)]  # a --arms subset, in order
    mean_of = add_rows(rep, rows, settings, arms)
    experts = {s: experts_in_imperfect(s) if s in SETTINGS else 1 for s in settings}
    status = classify(settings, mean_of, experts)
    scored = [s for s in settings if status[s] == "scored"]
    wins = win_checks(rep, scored, mean_of, arms, quick)
    with_experts = [s for s in settings if experts[s]]
    if "ilid_no_beta" in arms and with_experts:
        rep.check("ILID minus ILID without beta, mean over settings with experts in D_b",
                  statistics.mean(mean_of[(s, "ilid")] - mean_of[(s, "ilid_no_beta")]
                                  for s in with_experts), ">", 0)
    what, t_ratio = time_ratio(rows, settings)
    mean_t = statistics.mean(t_ratio.values()) if t_ratio else float("nan")
    if t_ratio:
        rep.check(f"ILID training {what} / BC-E training {what} (mean over settings)", mean_t,
                  "<=", 1.5)
    else:
        rep.notes.append("runtime: every row trained in an --ensemble (one shared policy loop); "
                         "ILID / BC-E per step comes from `python -m "
                         "offline_il_select.experiments.steptime`")
    on = scored or settings
    avg = {arm: statistics.mean(mean_of[(s, arm)] for s in on) for arm in arms}
    avg_ood = {arm: statistics.mean(mean_of[("ood", s, arm)] for s in on) for arm in arms}
    best = max((a for a in BASELINES if a in arms), key=lambda a: avg[a])
    rep.headline(claim="ILID beats BC-E/DWBC/ISW-BC, typically 2-5x (20 of 21 D4RL tasks)",
                 measured=f"ILID {avg['ilid']:.1f} vs BC-E {avg['bc_expert']:.1f}, best "
                          f"baseline {best} {avg[best]:.1f} (mean normalised score, "
                          f"{len(on)} {'scored ' * bool(scored)}settings)",
                 baseline="bc_expert", ratio=avg["ilid"] / max(avg["bc_expert"], 1e-9),
                 setting="quick" if quick else "full")
    if t_ratio:
        rep.headline(claim="ILID runs at about BC's cost", measured=f"{mean_t:.2f}x BC-E "
                     f"training {what}", baseline="bc_expert", ratio=1 / mean_t,
                     setting="quick" if quick else "full")
    rep.extra.update(status=status, scored=scored, wins=wins, mean_score=avg,
                     mean_score_out_of_family=avg_ood, perturbations=PERTURBATIONS,
                     ablation=ablation_table(settings, mean_of, arms), selection_study=studies,
                     curves=[{k: r[k] for k in ("setting", "seed", "arm", "curve")}
                             for r in rows])
    rep.extra["ilid_over_bc_expert_" + ("gpu_wall" if what.startswith("wall") else
                                        "cpu_time")] = t_ratio
    _notes(rep, status, quick, steps, studies)
    return rep


def _notes(rep: BenchReport, status: dict, quick: bool, steps: int | None, studies: dict) -> None:
    rep.notes.append("score = 100 (R - R_random) / (R_expert - R_random) against our references "
                     "(random policy; the expert acting deterministically, as the imitating "
                     "policies do; shared/il/policies/reference_returns.json); score_d4rl = the "
                     "same return against D4RL's published v2 references")
    for s, st in status.items():
        rep.notes.append(f"{s}: {st}")
    rep.notes.append("out of family (score_ood, ood_*): the same finished policies on dynamics "
                     "outside the data's range, " + ", ".join(
                         f"{k} = masses x{m}, friction x{f}" for k, (m, f) in PERTURBATIONS.items())
                     + "; never used to train or choose anything")
    rep.notes.append("budget: " + ", ".join(budget(quick, steps)) + "; the paper trains 1M "
                     "policy and 100k discriminator steps")
    for name, st in studies.items():
        quality = [round(q, 3) for q in st["selection_quality"]]
        rep.notes.append(f"selection on {name} noisy-expert D_b: K={st['K']} |D_s|="
                         f"{st['n_selected']} quality={quality}"
                         f" (all of D_b: {st['random_pick_quality']:.3f})")


def _parser():
    """The command line: the common flags plus the choice of settings, seeds, arms and budget."""
    p = build_parser("offline_il_select.bench", __doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes (one thread each) for the (setting, seed, arm) jobs "
                        "(default 1)")
    p.add_argument("--settings", default="",
                   help="comma-separated subset of " + ", ".join(SETTINGS) + " (default: "
                        + ", ".join(FULL_SETTINGS) + "; --quick: " + ", ".join(QUICK_SETTINGS)
                        + ")")
    p.add_argument("--seeds", type=int, default=3,
                   help="training seeds per setting: 0 .. SEEDS-1 (default 3)")
    p.add_argument("--seed-list", default="",
                   help="comma-separated training seeds instead (e.g. to complete a cut-short run)")
    p.add_argument("--steps", type=int, default=0,
                   help=f"policy steps per arm (default {FULL_STEPS}, --quick {QUICK_STEPS}); "
                        f"each discriminator gets 1/{DISC_FRACTION} of them, as in the paper")
    p.add_argument("--arms", default="",
                   help="comma-separated subset of " + ", ".join(ARMS) + " (default: all; "
                        "--quick: all but ilid_k1; ilid and bc_expert are always needed)")
    p.add_argument("--ensemble", action="store_true",
                   help="train every arm in lockstep as one batched network on --device (a "
                        "GPU: the full bench's affordable path; DWBC's discriminators batched "
                        "beside it), the ILID and ISW-BC discriminators of the preparations "
                        "too; datasets and evaluation run on the worker processes; any subset "
                        "of --arms")
    p.add_argument("--data-only", action="store_true",
                   help="roll out (and cache) every dataset the chosen settings need, then stop")
    p.add_argument("--from-rows", default="",
                   help="summarise the rows.json of an earlier (possibly partial) run instead "
                        "of training; several files comma-separated are merged")
    return p


def chosen(args) -> tuple[list[str], list[str], list[int], int | None]:
    """The settings, arms, training seeds and policy steps (None: the default budget) the flags
    choose; a ConfigError for an unknown or inconsistent choice."""
    settings = [s for s in args.settings.split(",") if s] or (
        QUICK_SETTINGS if args.quick else FULL_SETTINGS)
    for s in settings:
        if s not in SETTINGS:
            raise ConfigError(f"--settings: unknown '{s}' (known: {', '.join(SETTINGS)})")
    arms = [a for a in args.arms.split(",") if a] or (QUICK_ARMS if args.quick else FULL_ARMS)
    for a in arms:
        if a not in ARMS:
            raise ConfigError(f"--arms: unknown '{a}' (known: {', '.join(ARMS)})")
    if not {"ilid", "bc_expert"} <= set(arms) and not args.ensemble:
        raise ConfigError("--arms: must include ilid and bc_expert (the summary compares them; "
                          "an --ensemble part may leave them out and writes rows.json only)")
    for f in (f for f in args.from_rows.split(",") if f):
        if not Path(f).is_file():
            raise ConfigError(f"--from-rows: file not found: {f}")
    if args.steps < 0 or args.workers < 1:
        raise ConfigError("--steps must be >= 0 and --workers >= 1")
    try:
        seeds = [int(x) for x in args.seed_list.split(",") if x.strip()] or list(
            range(1 if args.quick else args.seeds))
    except ValueError:
        raise ConfigError(f"--seed-list: expected integers, got '{args.seed_list}'") from None
    return settings, arms, seeds, args.steps or None


# arm -> the arm whose preparation it shares under --ensemble: ILID without beta has ILID's d(s),
# D_s and D(s, a) (its preparation is deterministic) and differs only in beta on D_s
SHARED_PREP = {"ilid_no_beta": "ilid", "ilid_no_beta_batch256": "ilid_batch256"}


def prep_units(jobs: list[tuple]) -> list[tuple[tuple, tuple[str, ...]]]:
    """--ensemble's preparations: (job, arms that take its preparation: the job's own first).
    An arm of SHARED_PREP rides on its partner's job where the partner is prepared too."""
    own = {(j[0], j[1], j[2]) for j in jobs}
    units = []
    for j in jobs:
        partner = SHARED_PREP.get(j[2])
        if partner is not None and (j[0], j[1], partner) in own:
            continue
        riders = tuple(a for a, p in SHARED_PREP.items() if p == j[2]
                       and (j[0], j[1], a) in own)
        units.append((j, (j[2],) + riders))
    return units


_DATA: dict = {}


def _data(cfg: TrainConfig):
    """`build_data(cfg.data)`, once per process for each data config (the same for every arm and
    seed of a setting)."""
    key = repr(cfg.data)
    if key not in _DATA:
        _DATA[key] = build_data(cfg.data)
    return _DATA[key]


def prepare_units(units: list[tuple[tuple, tuple[str, ...]]], device: str = "cpu",
                  stage: Callable[[str], None] | None = None) -> list[dict]:
    """The preparations of `prep_units` units, in this process: each run set up through
    `train.setup` on the CPU as `fit` sets up the same run there (same seeding order, so the same
    initial policy and discriminators, its batches drawn from its own CPU generator), then the
    discriminators of all of them trained in lockstep on `device` (`ensemble_prep.prepare_many`:
    the same preparation as each run's own, up to float rounding). Per arm of each unit: its
    weighted-BC terms, initial policy weights, normaliser and preparation statistics (DWBC: also
    its initial discriminator, as a `DWBCSpec`). A rider without beta takes the same artifacts
    with beta = 1 (what its own preparation gives, tested)."""
    runs, gens, methods = [], [], []
    for job, arms in units:
        setting, seed, arm, quick, steps, _ = job
        cfg = _arm_cfg(setting, arm, seed, quick, steps, "cpu")
        data = _data(cfg)
        _, gen, method, policy = setup(cfg, data)
        if cfg.method == "ilid":  # right after the policy: they draw from the global RNG
            method.init_discriminators()
        elif cfg.method == "iswbc":
            method.init_discriminator()
        runs.append((job, arms, cfg, data, policy))
        gens.append(gen)
        methods.append(method)
    preps = prepare_many(methods, gens, pick_device(device), stage)
    out = []
    for (job, arms, cfg, data, policy), method, prep in zip(runs, methods, preps):
        setting, seed, arm, quick, steps, device_ = job
        if cfg.method == "ilid":
            prep["selection_quality"] = selection_quality(
                data.imperfect, method.artifacts["selected"].numpy())
        init = {k: v.detach().cpu() for k, v in policy.net.state_dict().items()}
        for a in arms:
            c = cfg if a == arm else _arm_cfg(setting, a, seed, quick, steps, "cpu")
            p = dict(prep)
            if a != arm:  # a SHARED_PREP rider: ILID's artifacts without beta
                method.artifacts["beta"] = torch.ones_like(method.artifacts["beta"])
                p.update(method.stats())
            o = {"job": (setting, seed, a, quick, steps, device_), "cfg": c,
                 "terms": method.terms(), "prep": p, "mean": policy.norm.mean.cpu().numpy(),
                 "std": policy.norm.std.cpu().numpy(), "init": init}
            if c.method == "ilid":
                o["expert_rows"] = expert_rows(method.artifacts, data.imperfect_is_expert)
            if c.method == "dwbc":
                o["dwbc"] = DWBCSpec({k: v.detach().cpu()
                                      for k, v in method.disc.state_dict().items()},
                                     c.baselines.dwbc_alpha, c.baselines.dwbc_eta, c.ilid.clip)
            out.append(o)
    return out


def prep_job(unit: tuple[tuple, tuple[str, ...]]) -> list[dict]:
    """One unit's preparation on the CPU (`prepare_units` of that unit alone)."""
    torch.set_num_threads(1)
    return prepare_units([unit], "cpu")


def eval_task(setting: str, quick: bool, steps: int | None):
    """What evaluating a policy of `setting` needs (task and reference returns), without the
    datasets: small to send to a worker with every evaluation."""
    d = _data(_arm_cfg(setting, "ilid", 0, quick, steps))
    return replace(d, expert={"actions": d.expert["actions"][:0]}, imperfect={},
                   imperfect_is_expert=None)


def eval_job(job: tuple) -> dict:
    """Evaluate one ensemble member (CPU weights): in family as `train.fit` does, or out of
    family (`kind` 'ood'). `task` from `eval_task`."""
    task, seed, weights, mean, std, hidden, episodes, kind = job
    torch.set_num_threads(1)
    S, A = len(mean), task.expert["actions"].shape[1]
    pol = TanhGaussianPolicy(S, A, hidden, Normalizer(torch.as_tensor(mean), torch.as_tensor(std)))
    pol.net.load_state_dict(weights)
    if kind == "ood":
        return out_of_family(pol, task, episodes, seed)
    return evaluate(pol, task, episodes, seed=100_000 + 1000 * seed)


def _member_row(p: dict, cfg: TrainConfig, curve: list[dict], ood: dict, loop: tuple,
                device: str, quiet: bool = False) -> dict:
    """A result row of an ensemble member, with the same fields as `run_job`'s; its time is its
    preparation plus its share (1/K) of the ensemble's policy loop."""
    (setting, seed, arm, *_), last = p["job"], curve[-2:]
    prep = p["prep"]
    row = {"setting": setting, "seed": seed, "arm": arm, "device": device, "timing": "ensemble",
           "score": statistics.mean(c["score"] for c in last),
           "score_d4rl": statistics.mean(c.get("score_d4rl", float("nan")) for c in last),
           "return": statistics.mean(c["return"] for c in last),
           "train_s": prep["prep_s"] + loop[0], "train_cpu_s": prep["prep_cpu_s"] + loop[1],
           "prep_cpu_s": prep["prep_cpu_s"], "curve": curve, "ood": ood}
    if cfg.method == "ilid":
        row.update({k: prep[k] for k in ("n_selected", "selection_quality", "beta_mean",
                                         "alpha_max")}, **p["expert_rows"])
    if not quiet:
        log.info("%s seed %d %-13s score %6.1f  out of family %s  (ensemble)", setting, seed,
                 arm, row["score"], " ".join(f"{k} {v:.1f}" for k, v in ood.items()))
    return row


class StageLog:
    """Stage timestamps of a bench run, logged and appended to `path` (seconds since the start),
    so a run cut short by a time limit still tells which stage it reached and when."""

    def __init__(self, path: Path):
        self.path, self.t0 = Path(path), time.perf_counter()

    def __call__(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} +{time.perf_counter() - self.t0:5.0f} s  {msg}"
        log.info("stage %s", line)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def train_ensemble_group(preps: list[dict], quick: bool, steps: int | None, device: str,
                         ex: ProcessPoolExecutor, stage: StageLog, run_dir: Path,
                         on_rows: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Train prepared members that share state/action sizes and policy budget (DWBC's last) as
    one `EnsembleBC` on `device`. Their evaluations go to `ex`'s processes while the loop runs on;
    the curves of the finished evaluation rounds are rewritten to `run_dir`/curves_partial.json
    after each; `on_rows` gets the rows without their out-of-family scores as soon as the loop and
    its evaluations are done. Returns their rows."""
    cfgs = [p["cfg"] for p in preps]
    c = cfgs[0]
    settings = list(dict.fromkeys(p["job"][0] for p in preps))
    storages = []
    for s in settings:
        d = _data(_arm_cfg(s, "ilid", 0, quick, steps))
        storages.append(tuple(np.concatenate([d.expert[k], d.imperfect[k]])
                              for k in ("observations", "actions")))
    tasks = {s: eval_task(s, quick, steps) for s in settings}
    members = [Member(settings.index(p["job"][0]), p["terms"], p["init"], p["mean"], p["std"],
                      p.get("dwbc")) for p in preps]
    ens = EnsembleBC(members, storages, c.policy.hidden, c.policy.batch_size, c.policy.lr,
                     c.policy.weight_decay, pick_device(device), seed=c.seed)
    stage(f"ensemble of {ens.K} on {ens.device}: {c.policy.steps} steps, evaluation every "
          f"{c.eval_every}")

    clock = [time.perf_counter(), 0]  # when the last round was submitted, its step

    def submit(policies, kind):
        if kind == "in":  # the loop's pace, from the submission of one round to the next
            now, n = time.perf_counter(), min(clock[1] + c.eval_every, c.policy.steps)
            stage(f"ensemble of {ens.K}: step {n} ({1000 * (now - clock[0]) / (n - clock[1]):.2f}"
                  " ms a step since the last round, evaluations submitted)")
            clock[:] = [now, n]
        return [ex.submit(eval_job, (tasks[p["job"][0]], p["job"][1], pol.net.state_dict(),
                                     p["mean"], p["std"], c.policy.hidden, c.eval_episodes, kind))
                for p, pol in zip(preps, policies)]

    def on_round(curves):
        stage(f"ensemble of {ens.K}: evaluations up to step {curves[0][-1]['step']} done, "
              f"mean score {statistics.mean(cu[-1]['score'] for cu in curves):.1f}")
        atomic_write_json(run_dir / "curves_partial.json", [
            {"setting": p["job"][0], "seed": p["job"][1], "arm": p["job"][2], "curve": cu}
            for p, cu in zip(preps, curves)])

    curves, wall, cpu = train_ensemble(ens, c.policy.steps, c.eval_every,
                                       lambda pols: submit(pols, "in"),
                                       desc=f"ensemble of {ens.K}", on_round=on_round)
    stage(f"ensemble of {ens.K}: policy loop {wall:.0f} s ({1000 * wall / c.policy.steps:.2f} ms "
          "a step); out-of-family evaluation")
    loop = (wall / ens.K, cpu / ens.K)
    if on_rows is not None:  # the in-family rows first: a run cut in the next stage keeps them
        on_rows([_member_row(p, cf, cu, {}, loop, device, quiet=True)
                 for p, cf, cu in zip(preps, cfgs, curves)])
    oods = [f.result() for f in submit([ens.policy(k) for k in range(ens.K)], "ood")]
    return [_member_row(p, cf, cu, o, loop, device)
            for p, cf, cu, o in zip(preps, cfgs, curves, oods)]


def ensemble_train_rows(run_dir: Path, settings: list[str], seeds: list[int], arms: list[str],
                        quick: bool, steps: int | None, workers: int,
                        device: str) -> tuple[list[dict], dict]:
    """--ensemble: the datasets rolled out on `workers` processes; every arm prepared in this
    process, the discriminators of all of them in lockstep on `device` (`prepare_units`; ILID
    without beta shares ILID's preparation, DWBC's is its initial networks) while the workers run
    the selection studies; then every arm trained in lockstep (one `EnsembleBC` per state/action
    size and budget, DWBC's discriminators batched beside the policies) on `device` while the
    workers run its evaluations. Stage times go to `run_dir`/stages.log; rows.json is rewritten
    as each ensemble finishes. Returns what `train_rows` returns."""
    stage = StageLog(run_dir / "stages.log")
    jobs = [(s, seed, arm, quick, steps, device) for s in settings for seed in seeds
            for arm in arms]
    units = prep_units([(*j[:5], "cpu") for j in jobs])
    ctx = mp.get_context("spawn") if device.startswith("cuda") else None
    rows: list[dict] = []
    studies: dict = {}
    stage(f"start: {len(settings)} settings x {len(seeds)} seeds x {len(arms)} arms, "
          f"{len(units)} preparations (discriminators batched on {device}), {workers} workers")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=setup_logging) as ex:
        warm_data(settings, quick, ex, workers)
        stage("datasets ready")
        futs = {ex.submit(selection_study, e, quick, steps): e.split("-")[0]
                for e in _study_envs(settings) if "ilid" in arms}  # on the workers meanwhile
        preps = prepare_units(units, device, stage)
        for i, (job, unit_arms) in enumerate(units):
            p = next(p for p in preps if p["job"][:3] == job[:3])
            stage(f"prepared {job[0]} seed {job[1]} {'+'.join(unit_arms)} in "
                  f"{p['prep']['prep_s']:.1f} s, its share ({i + 1} of {len(units)})")
        groups: dict = {}
        order = {j[:3]: i for i, j in enumerate(jobs)}
        for p in sorted(preps, key=lambda p: (p["job"][2] == "dwbc", order[p["job"][:3]])):
            c = p["cfg"]
            key = (len(p["mean"]), c.policy.hidden, c.policy.batch_size, c.policy.lr,
                   c.policy.weight_decay, c.policy.steps, c.eval_every, c.eval_episodes)
            groups.setdefault(key, []).append(p)
        for group in groups.values():
            rows += train_ensemble_group(
                group, quick, steps, device, ex, stage, run_dir,
                lambda r, done=list(rows): atomic_write_json(run_dir / "rows.json", done + r))
            atomic_write_json(run_dir / "rows.json", rows)
            stage(f"ensemble of {len(group)} done: rows.json has {len(rows)} rows")
        collect(futs, rows, studies, run_dir, stage)
    return finish(rows, settings, run_dir), studies


def data_only(settings: list[str], quick: bool, workers: int) -> int:
    """Roll out (and cache) every dataset the settings need; the exit status."""
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as ex:
        warm_data(settings, quick, ex, workers)
    log.info("datasets ready in %.0f s", time.perf_counter() - t0)
    return 0


def rows_from_file(path: str, run_dir: Path, arms: list[str], quick: bool,
                   steps: int | None) -> tuple[list[dict], list[str], dict]:
    """An earlier run's rows (`path`: one rows.json or several, comma-separated, e.g. the parts
    of a full bench run one (settings, seeds) subset at a time), all copied to this run's
    rows.json, kept where every chosen arm has its (setting, seed); the selection studies rerun.
    Returns (rows, settings, studies)."""
    all_rows = [r for p in path.split(",") if p for r in read_json(p)]  # parts of one bench
    atomic_write_json(run_dir / "rows.json", all_rows)  # all of them, even when incomplete
    rows = [r for r in all_rows if r["arm"] in arms
            and sum(q["setting"] == r["setting"] and q["seed"] == r["seed"]
                    and q["arm"] in arms for q in all_rows) == len(arms)]
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    studies = {e.split("-")[0]: selection_study(e, quick, steps) for e in _study_envs(settings)}
    return rows, settings, studies


def collect(futs: dict, rows: list[dict], studies: dict, run_dir: Path,
            stage: StageLog | None = None) -> None:
    """Gather finished futures as they come: a job's row (key None; rows.json rewritten after
    each, so a crash loses little) or an environment's selection study (key: the env)."""
    for f in as_completed(futs):
        if futs[f] is None:
            rows.append(f.result())
            atomic_write_json(run_dir / "rows.json", rows)
            what = f"{rows[-1]['setting']} seed {rows[-1]['seed']} {rows[-1]['arm']}"
        else:
            studies[futs[f]] = f.result()
            what = f"selection study on {futs[f]}"
        if stage is not None:
            stage(f"done: {what}")


def finish(rows: list[dict], settings: list[str], run_dir: Path) -> list[dict]:
    """The rows in setting, seed, arm order, written to rows.json."""
    rows.sort(key=lambda r: (settings.index(r["setting"]), r["seed"], list(ARMS).index(
        r["arm"])))
    atomic_write_json(run_dir / "rows.json", rows)
    return rows


def train_rows(run_dir: Path, settings: list[str], seeds: list[int], arms: list[str],
               quick: bool, steps: int | None, workers: int,
               device: str) -> tuple[list[dict], dict]:
    """One job per (setting, seed, arm) and a selection study per environment, on `workers`
    processes; rows.json rewritten after each job (a crash loses little). Returns (rows in
    setting, seed, arm order, {env: study})."""
    # HalfCheetah and the two-network arms first (longest).
    jobs = [(s, seed, arm, quick, steps, device) for s in settings for seed in seeds
            for arm in arms]
    jobs.sort(key=lambda j: (not j[0].startswith("halfcheetah"),
                             j[2] not in ("dwbc", "iswbc") and not j[2].startswith("ilid")))
    rows: list[dict] = []
    studies: dict = {}
    # CUDA in forked workers needs a parent without a CUDA context; spawn avoids the question
    ctx = mp.get_context("spawn") if device.startswith("cuda") else None
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=setup_logging) as ex:
        t0 = time.perf_counter()
        warm_data(settings, quick, ex, workers)
        log.info("datasets ready in %.0f s", time.perf_counter() - t0)
        futs = {ex.submit(selection_study, e, quick, steps): e.split("-")[0]
                for e in _study_envs(settings)}
        futs.update({ex.submit(run_job, j): None for j in jobs})
        collect(futs, rows, studies, run_dir)
    return finish(rows, settings, run_dir), studies


def main(argv: list[str] | None = None) -> int:
    args, _ = parse_args(argv, TrainConfig, prog="offline_il_select.bench",
                         description=__doc__, parser=_parser())
    settings, arms, seeds, steps = chosen(args)
    if args.data_only:
        return data_only(settings, args.quick, args.workers)
    run_dir = make_run_dir(args.out, "offline_il_select", "bench-quick" if args.quick else "bench")
    device = pick_device(args.device or "cpu")
    if args.from_rows:
        rows, settings, studies = rows_from_file(args.from_rows, run_dir, arms, args.quick, steps)
    else:
        rows, studies = (ensemble_train_rows if args.ensemble else train_rows)(
            run_dir, settings, seeds, arms, args.quick, steps, args.workers, device)
    studies = {k: studies[k] for k in (e.split("-")[0] for e in _study_envs(settings))
               if k in studies}
    if not {"ilid", "bc_expert"} <= {r["arm"] for r in rows}:
        log.info("wrote %s/rows.json (a part without ILID or BC-E: summarise the parts "
                 "together with --from-rows)", run_dir)
        return 0
    rep = summarise(rows, studies, args.quick, ["python", "-m", "offline_il_select.bench"] +
                    list(sys.argv[1:] if argv is None else argv), steps)
    rep.write(run_dir, plot_metrics=["score", "train_cpu_s"])
    _plot(rows, studies, run_dir / "curves.png")
    log.info("wrote %s", run_dir)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])

