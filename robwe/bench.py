"""`python -m robwe.bench`: RobWE against its baselines on one federation, one process.

Arms (same data split, initial weights, keys and client sampling; only the named switch
differs):
- `fedrep`: FedRep without watermarks (fidelity reference);
- `robwe`: head + slice watermarks, detection on, honest clients;
- `shared-L`, `shared-fedipr`: every client embeds its slice key into the *same* shared
  weights (carrier of length L = one slice, or FedIPR-sized `fedipr_len`): the conflict;
- `robwe-mal{p}`: p% malicious clients forging their key, detection on;
- `gaussmal{p}`: the paper's mean/std detector instead of our median/MAD one;
- `nodetect-mal{p}`: the same forgers, detection off.
Then, on the `robwe` models: the N x N uniqueness matrix, fine-tuning (on another client's
data), magnitude pruning, and the removal-attack suite of `robwe.attacks` as curves (owner bits
and accuracy vs attack strength) for each attacker data share and lr, with the ownership
disputes of the thief. Ablation arms switch one scheme option back off (`contiguous`: the
paper's public slice positions; `ecc`: a repetition code; `nocatchup`: plain sampling) and
rerun the attacks at `ablation_frac`. Writes bench.json / bench.md / bench.png,
uniqueness.png, robustness.png, attacks_<share>.png and ablation.png under the run dir.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from robwe.config import AttackConfig, RobWEConfig
from robwe.federation import build_federation, evaluate_clients, under_embedded
from robwe.models import shared_weight_vector
from robwe.robustness import (
    attack_curves,
    finetune_curve,
    overwrite_scores,
    ownership_disputes,
    prune_curve,
    uniqueness,
    victims,
)
from robwe.watermark import bit_accuracy
from shared.bench import BenchReport, save_figure
from shared.cli import build_parser, parse_args, run
from shared.fl import run_rounds
from shared.io import make_run_dir
from shared.log import get_logger
from shared.runtime import set_seed

log = get_logger("robwe.bench")


@dataclass
class BenchConfig(RobWEConfig):
    malicious_fracs: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3])
    nodetect_frac: float = 0.2  # forgers in the detection-off arm
    gaussian_arm: bool = True  # also run the paper's mean/std detector at nodetect_frac
    fedipr_len: int = 200  # carrier length of the FedIPR-style shared baseline
    attack_clients: int = 5  # victims of the fine-tuning / pruning / overwriting attacks
    finetune_epochs: int = 10
    overwrite_epochs: int = 10
    prune_rates: list[float] = field(
        default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    attack: AttackConfig = field(default_factory=AttackConfig)  # the removal-attack suite
    ablations: list[str] = field(default_factory=lambda: ["contiguous", "ecc", "nocatchup"])
    ablation_frac: float = 0.1  # attacker data share for the ablation arms' attacks
    ecc_repeat: int = 4  # repetition of the `ecc` ablation arm
    dispute_weights: list[float] = field(default_factory=lambda: [1.0, 10.0, 100.0])  # thief's


QUICK = ["data.num_clients=20", "fl.rounds=12", "malicious_fracs=[0.2]", "attack_clients=3",
         "finetune_epochs=10", "overwrite_epochs=5", "prune_rates=[0.0, 0.3, 0.5, 0.7, 0.9]",
         "attack.data_fracs=[0.1]", "ablations=[contiguous, nocatchup]",
         "dispute_weights=[10.0]"]
ABLATIONS = {"contiguous": {"watermark.layout": "contiguous"},
             "strided": {"watermark.layout": "strided"},
             "ecc": {"watermark.repeat": "ecc_repeat"},
             "last": {"watermark.carrier": "last"},
             "nocatchup": {"fl.catch_up": 0}}
MAX_DROP, MIN_BITS = 2.0, 0.9  # the threat model: removal = bits < 0.9 at <= 2 points cost


def _arm(cfg: BenchConfig, name: str, data=None, **switches):
    """Train one arm; `switches` = {"section.field": value}. Returns (fed, private, secs)."""
    sections: dict[str, dict] = {}
    for key, value in switches.items():
        sec, fld = key.split(".")
        sections.setdefault(sec, {})[fld] = value
    arm_cfg = dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s), **v)
                                          for s, v in sections.items()})
    fed = build_federation(arm_cfg, data)
    private: dict = {}
    t0 = time.perf_counter()
    run_rounds(fed.strategy, fed.client, fed.client_ids, arm_cfg.fl.rounds, private=private)
    secs = time.perf_counter() - t0
    log.info("arm %s: %d rounds in %.1fs", name, arm_cfg.fl.rounds, secs)
    return fed, private, secs


def _honest(fed) -> np.ndarray:
    return np.array([c not in fed.malicious for c in fed.client_ids])


def _summary(fed, private) -> dict:
    ev = evaluate_clients(fed, private)
    h = _honest(fed)
    out = {"acc": float(np.mean(ev["acc"][h]))}
    for k in ("head_bits", "slice_bits"):
        if not np.isnan(ev[k]).all():
            out[k + "_mean"] = float(np.mean(ev[k][h]))
            out[k + "_min"] = float(np.min(ev[k][h]))
    return out


def _detection(fed) -> dict:
    mal, flagged = set(fed.malicious), set(fed.strategy.banned)
    honest = [c for c in fed.client_ids if c not in mal]
    out = {"detection_rate": len(mal & flagged) / len(mal) if mal else float("nan"),
           "false_flag_rate": len(flagged - mal) / len(honest),
           "flag_rounds": [fed.strategy.flag_round.get(c) for c in sorted(mal)]}
    # accountability: the forgers' slices in the aggregated body, under the true vs forged key
    if mal:
        y = _global_vector(fed)
        out["forger_true_key_bits"] = float(np.mean([bit_accuracy(fed.slice_keys[c], y)
                                                     for c in mal]))
        out["forger_forged_key_bits"] = float(np.mean([bit_accuracy(fed.client.slice_keys[c], y)
                                                       for c in mal]))
    return out


def _global_vector(fed):
    return shared_weight_vector(fed.strategy.global_state, fed.names)


def _plots(run_dir, uniq: np.ndarray, prune: list[dict], finetune: list[dict],
           detection: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    im = ax.imshow(uniq, vmin=0, vmax=1, cmap="viridis")
    ax.set_xlabel("head key of client j")
    ax.set_ylabel("personalised model of client i")
    ax.set_title("uniqueness: head bit accuracy")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_figure(fig, run_dir / "uniqueness.png")
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for metric in ("head_bits", "slice_bits", "acc"):
        axes[0].plot([p["rate"] for p in prune], [p[metric] for p in prune], marker="o",
                     label=metric)
        axes[1].plot([f["epoch"] for f in finetune], [f[metric] for f in finetune], marker="o",
                     label=metric)
    axes[0].set_xlabel("magnitude pruning rate")
    axes[1].set_xlabel("fine-tuning epochs (another client's data)")
    for ax in axes[:2]:
        ax.axhline(0.9, color="grey", ls=":", lw=1)
        ax.set_ylim(0, 1.02)
        ax.legend()
        ax.grid(alpha=0.3)
    fr = [d["malicious_frac"] for d in detection]
    axes[2].plot(fr, [d["detection_rate"] for d in detection], marker="o", label="detected")
    axes[2].plot(fr, [d["false_flag_rate"] for d in detection], marker="s", label="false flags")
    axes[2].set_xlabel("malicious fraction")
    axes[2].set_ylim(-0.02, 1.02)
    axes[2].legend()
    axes[2].grid(alpha=0.3)
    fig.suptitle("robwe: robustness (mean over victims) and detection")
    fig.tight_layout()
    save_figure(fig, run_dir / "robustness.png")
    plt.close(fig)


def _attack_plots(run_dir, curves: dict, ablations: dict) -> None:
    """attacks_<share>.png: per attack, owner head / slice bits and accuracy vs strength (one
    line style per attacker lr); ablation.png: each arm's cheapest removal per attack."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for frac, by_lr in curves.items():
        names = list(next(iter(by_lr.values())))
        fig, axes = plt.subplots(2, (len(names) + 1) // 2, figsize=(4 * ((len(names) + 1) // 2),
                                                                     7.5), squeeze=False)
        for ax, name in zip(axes.flat, names):
            for (lr, cur), ls in zip(by_lr.items(), ("-", "--", ":", "-.")):
                pts = cur[name]
                xs = [p["strength"] for p in pts]
                for metric, color in (("head_bits", "C0"), ("slice_bits", "C1"), ("acc", "C2")):
                    if metric in pts[0]:
                        ax.plot(xs, [p[metric] for p in pts], ls, color=color, marker="o",
                                ms=3, label=f"{metric} lr x{lr:g}")
            if name in ("overwrite", "noise_head", "noise_slice"):
                ax.set_xscale("log")
            ax.axhline(MIN_BITS, color="grey", ls=":", lw=1)
            ax.set_title(name)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
        axes.flat[0].legend(fontsize=6)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        fig.suptitle(f"robwe: owner bits and accuracy vs attack strength, attacker holds "
                     f"{frac:.0%} of the victim's data (mean over victims)")
        fig.tight_layout()
        save_figure(fig, run_dir / f"attacks_{round(100 * frac)}pct.png")
        plt.close(fig)
    arms = {k: v["cheap"] for k, v in ablations.items() if "cheap" in v}
    if arms:
        fig, ax = plt.subplots(figsize=(11, 4))
        names = list(next(iter(arms.values())))
        width = 0.8 / (2 * len(arms))
        for i, (arm, cheap) in enumerate(arms.items()):
            for j, k in enumerate(("head", "slice")):
                ax.bar([n + (2 * i + j) * width for n in range(len(names))],
                       [cheap[a][k] for a in names], width, label=f"{arm}: {k}")
        ax.set_xticks([n + 0.4 - width / 2 for n in range(len(names))], names, fontsize=8)
        ax.axhline(MIN_BITS, color="grey", ls=":", lw=1)
        ax.set_ylabel(f"lowest owner bits at <= {MAX_DROP:g} pts cost")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        save_figure(fig, run_dir / "ablation.png")
        plt.close(fig)


def honest_arms(rep: BenchReport, cfg: BenchConfig, data, setting: str) -> dict:
    """FedRep without watermarks, then RobWE with honest clients (and the attacks on its models),
    then the shared-carrier baselines. Returns {"fedrep": summary, "robwe": summary, "attacks":
    attack_study(...), "shared": {arm: summary}}."""
    fed, priv, _ = _arm(cfg, "fedrep", data, **{"watermark.head": False,
                                               "watermark.slice": False})
    base = _summary(fed, priv)
    rep.add("fedrep", setting, **base)

    fed, priv, _ = _arm(cfg, "robwe", data)
    main_sum = _summary(fed, priv)
    main_sum["under_embedded"] = under_embedded(fed, evaluate_clients(fed, priv))
    clean_det = _detection(fed)
    rep.add("robwe", setting, **{k: v for k, v in main_sum.items() if k != "under_embedded"},
            under_embedded=len(main_sum["under_embedded"]),
            false_flag_rate=clean_det["false_flag_rate"])
    attacks = attack_study(cfg, fed, priv)
    attacks["clean_run_false_flags"] = clean_det["false_flag_rate"]

    shared = {}
    for name, length in (("shared-L", 0), ("shared-fedipr", cfg.fedipr_len)):
        f, p, _ = _arm(cfg, name, data, **{"watermark.placement": "shared",
                                          "watermark.shared_len": length,
                                          "detection.enabled": False})
        shared[name] = _summary(f, p)
        rep.add(name, setting, **shared[name])
    return {"fedrep": base, "robwe": main_sum, "attacks": attacks, "shared": shared}


def attack_study(cfg: BenchConfig, fed, private) -> dict:
    """On the honest RobWE models: the N x N uniqueness matrix and, on `attack_clients` victims,
    the pruning curve, the fine-tuning curve and the overwriting scores. Returns
    {uniqueness, victims, prune, finetune, overwrite}."""
    uniq = uniqueness(fed, private)
    vic = victims(fed, cfg.attack_clients)
    prune = prune_curve(fed, private, vic, cfg.prune_rates)
    finetune = finetune_curve(fed, private, vic, cfg.finetune_epochs)
    overwrite = overwrite_scores(fed, private, vic, cfg.overwrite_epochs)
    curves = {frac: suite(cfg, fed, private, vic, frac) for frac in cfg.attack.data_fracs}
    disputes = ownership_disputes(fed, private, vic, cfg.attack.steps,
                                  cfg.dispute_weights, cfg.ablation_frac,
                                  min(cfg.attack.lr_mults))
    return {"uniqueness": uniq, "victims": vic, "prune": prune, "finetune": finetune,
            "overwrite": overwrite, "curves": curves, "disputes": disputes}


def suite(cfg: BenchConfig, fed, private, vic: list[int], frac: float) -> dict:
    """The attack suite at one attacker data share, for every attacker lr:
    {lr_mult: {attack: [points]}}."""
    t0 = time.perf_counter()
    out = {lr: attack_curves(fed, private, vic, cfg.attack, frac, lr)
           for lr in cfg.attack.lr_mults}
    log.info("attack suite at %g of the victims' data: %.1fs", frac, time.perf_counter() - t0)
    return out


def cheap_bits(by_lr: dict) -> dict[str, dict]:
    """Per attack, the attacker's best removal at <= MAX_DROP points of accuracy, over every
    lr and strength (the unattacked model counts as one such point, with its own bits):
    {attack: {"head": bits, "slice": bits, "point": (lr, strength) of the lowest}}."""
    out: dict[str, dict] = {}
    for lr, curves in by_lr.items():
        for name, pts in curves.items():
            o = out.setdefault(name, {"head": 1.0, "slice": 1.0, "point": None})
            for p in pts:
                if p["acc_drop"] > MAX_DROP:
                    continue
                for k in ("head", "slice"):
                    b = p.get(k + "_bits", 1.0)
                    if b < o[k]:
                        o[k], o["point"] = b, (lr, p["strength"])
    return out


def ablation_arms(rep: BenchReport, cfg: BenchConfig, data, setting: str) -> dict:
    """One arm per scheme option switched (back) off; their attack suite at `ablation_frac`
    (not for `nocatchup`, a sampling option) and their under-embedded clients."""
    out = {}
    for name in cfg.ablations:
        if name not in ABLATIONS:
            raise ValueError(f"ablations: unknown arm '{name}' (known: {sorted(ABLATIONS)})")
        switches = {k: getattr(cfg, v) if isinstance(v, str) and hasattr(cfg, v) else v
                    for k, v in ABLATIONS[name].items()}
        fed, priv, _ = _arm(cfg, f"ablation-{name}", data, **switches)
        ev = evaluate_clients(fed, priv)
        row = {**_summary(fed, priv), "under_embedded": len(under_embedded(fed, ev))}
        rep.add(f"robwe-{name}", setting, **row)
        out[name] = {"summary": row, "under": under_embedded(fed, ev)}
        if name != "nocatchup":
            by_lr = suite(cfg, fed, priv, victims(fed, cfg.attack_clients), cfg.ablation_frac)
            out[name].update(curves=by_lr, cheap=cheap_bits(by_lr))
    return out


def forger_arms(rep: BenchReport, cfg: BenchConfig, data, setting: str) -> tuple[list, dict]:
    """Forging clients at each malicious fraction (detection on), the paper's mean/std detector
    (into `rep.extra["gaussian_detector"]`) and detection off. Returns (detection per fraction,
    the detection-off arm's `_detection`)."""
    detection = []
    for frac in cfg.malicious_fracs:
        f, p, _ = _arm(cfg, f"robwe-mal{frac:g}", data, **{"threat.malicious_frac": frac})
        d = {"malicious_frac": frac, "num_malicious": len(f.malicious), **_detection(f)}
        detection.append(d)
        rep.add(f"robwe-mal{round(100 * frac)}", setting, **_summary(f, p),
                **{k: v for k, v in d.items() if k != "flag_rounds"})
    if cfg.gaussian_arm:
        f, p, _ = _arm(cfg, "gauss", data, **{"threat.malicious_frac": cfg.nodetect_frac,
                                              "detection.estimator": "gaussian",
                                              "detection.min_std": 0.0})
        d = {"malicious_frac": cfg.nodetect_frac, "estimator": "gaussian", **_detection(f)}
        rep.extra["gaussian_detector"] = d
        rep.add(f"gaussmal{round(100 * cfg.nodetect_frac)}", setting, **_summary(f, p),
                **{k: v for k, v in d.items() if k not in ("flag_rounds", "estimator")})
    f, p, _ = _arm(cfg, "nodetect", data, **{"threat.malicious_frac": cfg.nodetect_frac,
                                             "detection.enabled": False})
    nd = _detection(f)
    rep.add(f"nodetect-mal{round(100 * cfg.nodetect_frac)}", setting, **_summary(f, p),
            forger_true_key_bits=nd.get("forger_true_key_bits"),
            forger_forged_key_bits=nd.get("forger_forged_key_bits"))
    return detection, nd


def _at(points: list[dict], key: str, value: float) -> list[dict]:
    """The points whose `key` is `value` (0 or 1 of them)."""
    return [p for p in points if abs(p[key] - value) < 1e-9]


def _off_diagonal(uniq: np.ndarray) -> np.ndarray:
    return uniq[~np.eye(len(uniq), dtype=bool)]


def checks(rep: BenchReport, cfg: BenchConfig, arms: dict, detection: list[dict]) -> None:
    """The package's targets on the figures just measured."""
    base, main_sum, att = arms["fedrep"], arms["robwe"], arms["attacks"]
    uniq, off = att["uniqueness"], _off_diagonal(att["uniqueness"])
    rep.check("FedRep (no watermark) personalised accuracy >= 0.90", base["acc"], ">=", 0.90)
    rep.check("RobWE accuracy - FedRep accuracy (points) >= -1",
              100 * (main_sum["acc"] - base["acc"]), ">=", -1.0)
    rep.check("min head bits over honest clients >= 0.99", main_sum["head_bits_min"], ">=", 0.99)
    rep.check("min slice bits (aggregated body) over honest clients >= 0.99",
              main_sum["slice_bits_min"], ">=", 0.99)
    rep.check("uniqueness diagonal min >= 0.99", float(np.diag(uniq).min()), ">=", 0.99)
    rep.check("uniqueness off-diagonal mean >= 0.4", float(off.mean()), ">=", 0.4)
    rep.check("uniqueness off-diagonal mean <= 0.6", float(off.mean()), "<=", 0.6)
    rep.check("shared-carrier (FedIPR-sized) slice bits after aggregation <= 0.85",
              arms["shared"]["shared-fedipr"]["slice_bits_mean"], "<=", 0.85)
    at20 = _at(detection, "malicious_frac", 0.2)
    if at20:
        rep.check("20% malicious: detection rate >= 0.90", at20[0]["detection_rate"], ">=", 0.9)
        rep.check("20% malicious: honest false-flag rate <= 0.05", at20[0]["false_flag_rate"],
                  "<=", 0.05)
    ft = att["finetune"][-1]
    rep.check(f"head bits after {cfg.finetune_epochs} fine-tuning epochs >= 0.90",
              ft["head_bits"], ">=", 0.9)
    rep.check(f"slice bits after {cfg.finetune_epochs} fine-tuning epochs >= 0.90",
              ft["slice_bits"], ">=", 0.9)
    p50 = _at(att["prune"], "rate", 0.5)
    if p50:
        rep.check("head bits after 50% pruning >= 0.90", p50[0]["head_bits"], ">=", 0.9)
        rep.check("slice bits after 50% pruning >= 0.90", p50[0]["slice_bits"], ">=", 0.9)


def robustness_checks(rep: BenchReport, cfg: BenchConfig, arms: dict) -> None:
    """The threat model's targets: no removal at <= 2 points cost with 10% of the victim's
    data, no thief named, no client left under-embedded without being named."""
    att = arms["attacks"]
    frac = 0.1 if 0.1 in att["curves"] else cfg.attack.data_fracs[0]
    for name, o in cheap_bits(att["curves"][frac]).items():
        rep.check(f"{frac:.0%} data, {name}: owner bits (min of head, slice; mean over victims) "
                  f"at <= {MAX_DROP:g} pts accuracy cost >= {MIN_BITS}",
                  min(o["head"], o["slice"]), ">=", MIN_BITS)
    d = att["disputes"]
    rep.check("ownership: later registrations refused / thief claims",
              d["late_registrations_refused"] / max(1, d["claims"]), ">=", 1.0)
    rep.check("ownership: claims naming the thief", d["thief_named"], "<=", 0)
    rep.check("ownership: owner named whenever its keys verify (named - verifying)",
              d["owner_named"] - d["owner_verifies"], ">=", 0)
    rep.check(f"honest clients below {cfg.watermark.target_bits} bits at the end "
              "(each named in the notes)", len(arms["robwe"]["under_embedded"]), "<=", 0)


def headlines(rep: BenchReport, cfg: BenchConfig, arms: dict, detection: list[dict],
              setting: str) -> None:
    """The rows of results/SUMMARY.md: fidelity, reliability, detection."""
    base, main_sum, fedipr = arms["fedrep"], arms["robwe"], arms["shared"]["shared-fedipr"]
    delta = 100 * (main_sum["acc"] - base["acc"])
    rep.headline("fidelity: watermarking costs ~no accuracy",
                 f"{main_sum['acc']:.3f} vs {base['acc']:.3f} ({delta:+.2f} pts)", "FedRep",
                 main_sum["acc"] / base["acc"], setting)
    rep.headline("reliability: disjoint slices avoid the shared-weights conflict",
                 f"slice bits {main_sum['slice_bits_mean']:.3f} vs "
                 f"{fedipr['slice_bits_mean']:.3f}",
                 f"shared carrier ({cfg.fedipr_len} weights)",
                 main_sum["slice_bits_mean"] / fedipr["slice_bits_mean"],
                 setting)
    at20 = _at(detection, "malicious_frac", 0.2)
    if at20:
        rep.headline("server detection catches tampered watermarks",
                     f"{at20[0]['detection_rate']:.2f} detected, "
                     f"{at20[0]['false_flag_rate']:.2f} false flags @20% malicious",
                     "detection off (0 detected)", None, setting)


def notes(rep: BenchReport, cfg: BenchConfig, att: dict, detection: list[dict],
          nd: dict) -> None:
    """Uniqueness, the attacks (pruning, fine-tuning, overwriting) and detection, in words."""
    uniq, off, vic = att["uniqueness"], _off_diagonal(att["uniqueness"]), att["victims"]
    p50, ft = _at(att["prune"], "rate", 0.5), att["finetune"][-1]
    rep.notes += [
        f"uniqueness: diagonal min {np.diag(uniq).min():.3f}, off-diagonal mean "
        f"{off.mean():.3f}",
        f"after 50% pruning (victims {vic}): " + (", ".join(
            f"{k}={v:.3f}" for k, v in p50[0].items() if k != "rate") if p50 else "n/a"),
        f"after {cfg.finetune_epochs} fine-tuning epochs: " + ", ".join(
            f"{k}={v:.3f}" for k, v in ft.items() if k != "epoch"),
        f"overwriting ({cfg.overwrite_epochs} epochs, attacker's own keys): " + ", ".join(
            f"{k}={v:.3f}" for k, v in att["overwrite"].items()),
        "detection: " + "; ".join(
            f"{d['malicious_frac']:.0%}: {d['detection_rate']:.2f} detected, "
            f"{d['false_flag_rate']:.2f} false flags, flagged in rounds {d['flag_rounds']}"
            for d in detection),
        "paper's mean/std detector: " + (
            f"{rep.extra['gaussian_detector']['detection_rate']:.2f} detected, "
            f"{rep.extra['gaussian_detector']['false_flag_rate']:.2f} false flags @"
            f"{cfg.nodetect_frac:.0%}" if cfg.gaussian_arm else "not run"),
        f"detection off, {cfg.nodetect_frac:.0%} forgers: their slices in the aggregated body "
        f"read {nd.get('forger_true_key_bits', float('nan')):.3f} under the true key, "
        f"{nd.get('forger_forged_key_bits', float('nan')):.3f} under the forged key",
    ]


def attack_notes(rep: BenchReport, arms: dict, ablations: dict) -> None:
    """Per data share and arm: each attack's cheapest removal (<= MAX_DROP points), the
    disputes, and the under-embedded clients by name."""
    att = arms["attacks"]
    for frac, by_lr in att["curves"].items():
        rep.notes.append(f"attacks, attacker holds {frac:.0%} of the victim's data: " + "; ".join(
            f"{n} head {o['head']:.3f} slice {o['slice']:.3f}"
            f"{' REMOVED' if min(o['head'], o['slice']) < MIN_BITS else ''}"
            for n, o in cheap_bits(by_lr).items()) + f" (lowest owner bits at <= {MAX_DROP:g} "
            "pts accuracy cost over every strength and lr)")
    for name, ab in ablations.items():
        if "cheap" in ab:
            rep.notes.append(f"ablation {name}: " + "; ".join(
                f"{n} head {o['head']:.3f} slice {o['slice']:.3f}"
                for n, o in ab["cheap"].items()))
        rep.notes.append(f"ablation {name}: under-embedded clients {ab['under'] or 'none'}")
    rep.notes.append(f"ownership disputes: {att['disputes']}")
    rep.notes.append("under-embedded honest clients at the end (robwe arm): "
                     f"{arms['robwe']['under_embedded'] or 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("robwe.bench", __doc__, default_config="configs/robwe/bench.yaml")
    args, cfg = parse_args(argv, BenchConfig, prog="robwe.bench", description="",
                           parser=parser, quick=QUICK)
    set_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    from robwe.data import federate, load_dataset

    data = federate(load_dataset(cfg.data), cfg.data, cfg.seed)  # checked before any file
    run_dir = make_run_dir(args.out, "robwe", "bench")
    rep = BenchReport("robwe", baseline="fedrep", command=sys.argv)
    setting = f"{cfg.data.dataset}/N{cfg.data.num_clients}/{cfg.fl.rounds}r"
    t_start = time.perf_counter()

    arms = honest_arms(rep, cfg, data, setting)
    ablations = ablation_arms(rep, cfg, data, setting)
    detection, nd = forger_arms(rep, cfg, data, setting)
    rep.extra["ratios"] = rep.ratios("acc", lower_is_better=False)
    checks(rep, cfg, arms, detection)
    robustness_checks(rep, cfg, arms)
    headlines(rep, cfg, arms, detection, setting)

    att = arms["attacks"]
    rep.extra.update({
        "uniqueness": att["uniqueness"].tolist(), "prune_curve": att["prune"],
        "finetune_curve": att["finetune"], "overwrite": att["overwrite"],
        "detection": detection, "nodetect": nd, "victims": att["victims"],
        "clean_run_false_flags": att["clean_run_false_flags"],
        "attack_curves": att["curves"], "disputes": att["disputes"],
        "under_embedded": arms["robwe"]["under_embedded"], "ablations": ablations,
        "total_s": time.perf_counter() - t_start, "config": dataclasses.asdict(cfg)})
    notes(rep, cfg, att, detection, nd)
    attack_notes(rep, arms, ablations)
    _plots(run_dir, att["uniqueness"], att["prune"], att["finetune"], detection)
    default = att["curves"].get(cfg.ablation_frac)
    _attack_plots(run_dir, att["curves"],
                  {**({"default": {"cheap": cheap_bits(default)}} if default else {}),
                   **ablations})
    rep.write(run_dir, plot_metrics=["acc", "slice_bits_mean", "head_bits_mean"])
    return 0


if __name__ == "__main__":
    run(main)
