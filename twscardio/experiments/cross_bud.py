"""`python -m twscardio.experiments.cross_bud`: the weight of the cross-bud covariance in the
fusion (`fusion.cross_bud`, `fusion.cross_bud_covariance`), arms (a) and (b).

For each weight and setting (50 Hz / 10 % bursty loss, 25 Hz / 20 %, at rest; `--settings`
adds 25 Hz / 20 % under head motion, levels 1 and 3, where both buds share the motion
residue): HR MAE and IBI MAE over every detection (the bench's figures), IBI MAE on the beats
of accepted windows, the share of windows rejected (all recordings hold beats: at rest this is
the clean-window rejection), and |r| of the fused signal with the true BCG (mean and minimum
over recordings). `--family in` (default): training-family validation subjects
(`data.validation_recordings`), on which the weight is chosen; `--family test` / `--family
out`: the bench's in-family test subjects / out-of-family recordings (`bench.test_recording`,
subjects 0..n-1), measured only. Each recording is simulated once and processed under every
weight.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from shared.cli import run
from shared.io import atomic_write_json, read_json
from shared.log import get_logger, progress, setup_logging
from twscardio.beats import beat_metrics
from twscardio.config import TrainConfig
from twscardio.data import setting_sims, validation_recordings
from twscardio.eval import simulate_test
from twscardio.experiments.fusion_method import fused_r
from twscardio.outfamily import simulate_out_of_family
from twscardio.pipeline import process

log = get_logger("twscardio.experiments.cross_bud")
SETTINGS = {"50Hz/10%": (50.0, 0.1), "25Hz/20%": (25.0, 0.2),
            "25Hz/20%/motion1": (25.0, 0.2, 1.0), "25Hz/20%/motion3": (25.0, 0.2, 3.0)}
REST = "50Hz/10%,25Hz/20%"


def recordings(cfg: TrainConfig, family: str, subjects: list[int], duration_s: float,
               settings: dict):
    """(subject, setting label, recording) of validation subjects or out-of-family ones."""
    if family == "in":
        yield from validation_recordings(cfg, subjects, settings, duration_s)
        return
    sims = setting_sims(cfg.sim, settings, duration_s)
    for i in progress(subjects, desc=f"{family} subjects"):
        for label, sc in sims.items():
            yield i, label, (simulate_out_of_family(sc, i) if family == "out"
                             else simulate_test(replace(cfg, sim=sc), i, duration_s))


def add_breathing_sway(rec: dict, seed: int, harmonics: int = 6) -> dict:
    """The recording with a non-sinusoidal breathing sway added to both buds' accelerometers:
    one waveform (breathing at 0.2-0.35 Hz, harmonic h at amplitude h^-1.5 and a random phase,
    unit peak, times 1-3 mg), along a random direction in each bud's frame. The training
    family's own sway is a sinusoid below the 0.7-Hz band edge; real breathing is not, and its
    harmonics from the third on fall inside the BCG band, common to both buds (`--sway`)."""
    rng = np.random.default_rng(seed)
    f, amp = rng.uniform(0.2, 0.35), rng.uniform(1e-3, 3e-3)
    h = np.arange(1, harmonics + 1)
    ph = rng.uniform(0, 2 * np.pi, harmonics)
    t_all = np.linspace(0, 1 / f, 512, endpoint=False)
    peak = np.abs(np.sin(2 * np.pi * f * np.outer(t_all, h) + ph) @ h ** -1.5).max()
    out = dict(rec)
    for side in ("left", "right"):
        bud = dict(rec[side])
        sway = np.sin(2 * np.pi * f * np.outer(bud["relative_time"], h) + ph) @ h ** -1.5
        d = rng.normal(size=3)
        bud["acc"] = bud["acc"] + np.outer(amp * sway / peak, d / np.linalg.norm(d))
        out[side] = bud
    return out


def choose(runs: list[dict], off: str = "b 0", max_extra_rejected: float = 0.5) -> dict:
    """The declared selection rule (results/twscardio/NOTES.md, "A cross-bud term above the
    breathing band") over probe results `runs` (the JSON this probe writes; the first is the
    plain recordings, the others e.g. `--sway`). Every variant of arm (b) but `off` is ranked by
    the mean of its IBI MAE over every (run, setting) condition (a NaN mean ranks last); the
    lowest is `chosen`, and `adopted` only when it is below `off` in every condition and its
    rejected share on the first run's settings is at most `off`'s + `max_extra_rejected` points.
    Returns {"chosen", "adopted", "off", "ranking": [per variant: variant, mean_ibi_ms, ibi_ms,
    rejected_pct, below_off_everywhere, rejection_ok]}."""
    conds = [(i, lab) for i, r in enumerate(runs) for lab in r["rows"]]
    ibi = lambda name: [runs[i]["rows"][lab][name]["ibi_mae_ms"] for i, lab in conds]  # noqa: E731
    rej = lambda name: [v[name]["rejected_pct"] for v in runs[0]["rows"].values()]  # noqa: E731
    names = [n for n in next(iter(runs[0]["rows"].values())) if n != "a"]
    o_ibi, o_rej = ibi(off), rej(off)

    def row(n: str) -> dict:
        v, r = ibi(n), rej(n)
        return {"variant": n, "mean_ibi_ms": float(np.mean(v)), "ibi_ms": v, "rejected_pct": r,
                "below_off_everywhere": all(a < b for a, b in zip(v, o_ibi)),
                "rejection_ok": all(a <= b + max_extra_rejected for a, b in zip(r, o_rej))}

    ranking = sorted((row(n) for n in names if n != off),
                     key=lambda r: np.inf if np.isnan(r["mean_ibi_ms"]) else r["mean_ibi_ms"])
    best = ranking[0]
    return {"chosen": best["variant"], "off": row(off),
            "adopted": best["below_off_everywhere"] and best["rejection_ok"], "ranking": ranking}


def score(rec: dict, cfg: TrainConfig, arm: str) -> list[float]:
    o = process(rec, cfg, arm)
    tr = rec["truth"]
    m = beat_metrics(o["beats_all_s"], tr, fallback=o["fallback"])
    acc = beat_metrics(o["beats_s"], tr)["ibi_mae_ms"]
    r = fused_r(o, tr, cfg.fusion.band_hz)[0] if arm == "b" else np.nan
    return [m["hr_mae"], m["ibi_mae_ms"], acc, 1 - float(o["windows"]["reliable"].mean()), r]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=48)
    ap.add_argument("--first", type=int, default=0, help="first subject index")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--family", choices=["in", "test", "out"], default="in",
                    help="in: validation subjects; test: the bench's in-family test subjects")
    ap.add_argument("--weights", default="0,0.5,1,2", help="fusion.cross_bud values")
    ap.add_argument("--hp", default="0", help="fusion.cross_bud_hp_hz values (Hz; 0 = none), "
                    "each with every positive weight; variant names 'b W' or 'b W hpF'")
    ap.add_argument("--settings", default=REST, help=f"comma-separated, of {', '.join(SETTINGS)}")
    ap.add_argument("--sway", action="store_true",
                    help="add a non-sinusoidal breathing sway common to both buds "
                         "(`add_breathing_sway`; a stress variant of the recordings)")
    ap.add_argument("--out", default=None, help="JSON file for the figures")
    ap.add_argument("--choose", default=None, metavar="JSON[,JSON...]",
                    help="apply the declared selection rule (`choose`) to earlier results of "
                         "this probe (the plain recordings first) and print it; runs nothing")
    args = ap.parse_args(argv)
    setup_logging()
    if args.choose:
        res = choose([read_json(f) for f in args.choose.split(",")])
        for r in [res["off"]] + res["ranking"]:
            print(f"{r['variant']:14s} mean IBI {r['mean_ibi_ms']:7.3f} ms  per condition "
                  f"{' '.join(f'{v:.2f}' for v in r['ibi_ms'])}  rejected "
                  f"{' '.join(f'{v:.2f}' for v in r['rejected_pct'])} %  below off everywhere "
                  f"{r['below_off_everywhere']}  rejection ok {r['rejection_ok']}")
        verdict = "adopted" if res["adopted"] else "not adopted: stays off"
        print(f"chosen: {res['chosen']}; {verdict}")
        return 0
    weights = [float(v) for v in args.weights.split(",")]
    hps = [float(v) for v in args.hp.split(",")]
    unknown = [k for k in args.settings.split(",") if k not in SETTINGS]
    if unknown:
        ap.error(f"--settings: unknown {unknown}")
    settings = {k: SETTINGS[k] for k in args.settings.split(",")}
    cfg = TrainConfig()
    rows: dict = {}
    subjects = list(range(args.first, args.first + args.subjects))
    for i, label, rec in recordings(cfg, args.family, subjects, args.duration, settings):
        if args.sway:
            rec = add_breathing_sway(rec, 1000 + i)
        for wgt in weights:
            for hp in hps if wgt > 0 else hps[:1]:  # the high-pass acts only through the term
                c = replace(cfg, fusion=replace(cfg.fusion, cross_bud=wgt, cross_bud_hp_hz=hp))
                name = f"b {wgt:g}" + (f" hp{hp:g}" if hp > 0 and wgt > 0 else "")
                first = wgt == weights[0] and hp == hps[0]
                for arm in ("a", "b") if first else ("b",):
                    rows.setdefault(label, {}).setdefault(name if arm == "b" else "a",
                                                          []).append([i, *score(rec, c, arm)])
    res: dict = {"family": args.family, "sway": args.sway, "hp": hps,
                 "subjects": [subjects[0], subjects[-1] + 1], "rows": {}}
    for label, variants in rows.items():
        for name, v in variants.items():
            a = np.array(v, dtype=np.float64)
            res["rows"].setdefault(label, {})[name] = {
                "hr_mae": float(np.nanmean(a[:, 1])), "ibi_mae_ms": float(np.nanmean(a[:, 2])),
                "ibi_mae_ms_accepted": float(np.nanmean(a[:, 3])),
                "rejected_pct": float(100 * np.mean(a[:, 4])),
                "fused_r_mean": float(np.nanmean(a[:, 5])) if name != "a" else None,
                "fused_r_min": float(np.nanmin(a[:, 5])) if name != "a" else None,
                "per_subject_ibi": [round(float(x), 1) for x in a[:, 2]]}
            m = res["rows"][label][name]
            log.info("%s %s %s: HR %.2f bpm, IBI %.2f ms (accepted %.2f), rejected %.2f %%, "
                     "fused r %s", args.family, label, name, m["hr_mae"], m["ibi_mae_ms"],
                     m["ibi_mae_ms_accepted"], m["rejected_pct"],
                     "-" if m["fused_r_mean"] is None
                     else f"{m['fused_r_mean']:.3f} (min {m['fused_r_min']:.3f})")
    if args.out:
        atomic_write_json(args.out, res)
    return 0


if __name__ == "__main__":
    run(main)
