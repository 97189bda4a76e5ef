"""`python -m twscardio.experiments.refit_check`: the beat-synchronous refit, with and without
a check that does not rest on its own beats, on validation subjects with a weak BCG.

The refit (`fusion.refit_on_beats`) re-fuses a recording on the beats of its first fused
signal. Where that signal holds no beat, the beats are noise peaks and the refit confirms
them; the validation subjects of the training family had none that far gone, so the fallback
was chosen without seeing that failure. Here, on *validation*-split subjects only (never the
bench's test subjects or the out-of-family generator):

* stratum "family": subjects as the randomised family draws them (`--subjects`, from
  `--first`);
* stratum "weak": other validation subjects (`--weak`, from `--weak-first`) with the BCG
  amplitude redrawn in `--weak-mg` (mg; the family draws 1.5-10), everything else as drawn.
  It is a selection set for the fallback, never training data.

Per recording at the bench's two rest settings (60 s): arm (b) with the fallback off, and with
the refit forced, with each fusion's `fusion.bud_agreement` and its |r| with the true
(band-passed) BCG (a diagnosis only: no method has the truth). Candidates, each `process` with
its own config on the recordings its fallback may act on (the others are scored as "off"):
"off"; "refit" (mean window SQI below 0.5, at most 20 % of windows rotating); "refit+check"
(the same, kept only where the buds agree better). The forced refit is kept in the rows as a
diagnosis; the summary does not use it. Also the share of heartbeat-free windows rejected under
each candidate.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from shared.cli import run
from shared.errors import ConfigError
from shared.io import atomic_write_json
from shared.log import get_logger, progress, setup_logging
from twscardio.beats import beat_metrics, octave_errors
from twscardio.config import ChannelConfig, TrainConfig
from twscardio.data import VALIDATION_SETTINGS, setting_sims, subject_seed
from twscardio.fusion import bandpass, bud_agreement
from twscardio.pipeline import process
from twscardio.simulator import draw_subject, simulate, simulate_no_beat

log = get_logger("twscardio.experiments.refit_check")
CANDIDATES = {"off": (0.0, False), "refit": (0.5, False), "refit+check": (0.5, True)}


def candidate(cfg: TrainConfig, name: str) -> TrainConfig:
    below, check = CANDIDATES[name]
    return replace(cfg, fusion=replace(cfg.fusion, refit_below_sqi=below,
                                       refit_max_rotating=0.2, refit_check=check))


def weak_recording(sc, seed: int, weak_mg: tuple[float, float] | None) -> dict:
    """`data.subject_recording` with the BCG amplitude redrawn in weak_mg (None: as drawn)."""
    s = draw_subject(np.random.default_rng(seed), sc.hr_range, True)
    if weak_mg is not None:
        s["bcg_mg"] = float(np.random.default_rng([seed, 7919]).uniform(*weak_mg))
    return simulate(sc, seed + 1, subject=s)


def truth_r(rec: dict, o: dict, cfg: TrainConfig) -> float:
    """|r| of the fused signal with the true BCG band-passed like it (diagnosis only)."""
    tr, fs = rec["truth"], o["prep"]["fs"]
    t = o["prep"]["t"] - o["prep"]["t"][0]
    bcg = tr["bcg"] if np.ndim(tr["bcg"]) == 1 else np.linalg.norm(tr["bcg"], axis=1)
    ref = bandpass(np.interp(t, tr["t"] - tr["t"][0], bcg)[:, None], fs,
                   cfg.fusion.band_hz)[:, 0]
    return abs(float(np.corrcoef(o["fusion"]["fused"], ref)[0, 1]))


def score(rec: dict, cfg: TrainConfig) -> dict:
    o = process(rec, cfg, "b")
    m = beat_metrics(o["beats_all_s"], rec["truth"], fallback=o["fallback"])
    scored, bad = octave_errors(o["beats_all_s"], rec["truth"]["r_s"],
                                len(rec["truth"]["t"]) / rec["truth"]["fs_ref"])
    rot = o["fusion"]["gyro_rms"] > cfg.fusion.gate_gyro_rms
    fs = o["prep"]["fs"]
    return {"hr": m["hr_mae"], "ibi": m["ibi_mae_ms"], "sqi": float(np.mean(o["windows"]["sqi"])),
            "windows": int(o["windows"]["reliable"].size),
            "accepted": int(o["windows"]["reliable"].sum()), "octave": [scored, bad],
            "rotating": float(rot.mean()), "refit": bool(o["fusion"].get("refit", False)),
            "agreement": bud_agreement(o["fusion"], fs, cfg.fusion.cross_bud_hp_hz),
            "truth_r": truth_r(rec, o, cfg)}


def recordings(stratum: str, n: int, first: int, weak_mg, duration_s: float) -> list[dict]:
    cfg = TrainConfig()
    off, forced = candidate(cfg, "off"), replace(
        cfg, fusion=replace(cfg.fusion, refit_below_sqi=1.0, refit_max_rotating=1.0))
    rows = []
    for i in progress(range(first, first + n), desc=f"{stratum} subjects"):
        seed = subject_seed("val", i, cfg.seed)
        for label, sc in setting_sims(cfg.sim, VALIDATION_SETTINGS, duration_s).items():
            rec = weak_recording(sc, seed, weak_mg)
            row = {"stratum": stratum, "subject": i, "setting": label,
                   "bcg_mg": rec["subject"]["bcg_mg"], "off": score(rec, off)}
            row["forced"] = score(rec, forced)
            for name in ("refit", "refit+check"):  # the pipeline's own decision
                c = candidate(cfg, name)
                if row["off"]["sqi"] < c.fusion.refit_below_sqi \
                        and row["off"]["rotating"] <= c.fusion.refit_max_rotating:
                    row[name] = score(rec, c)
            rows.append(row)
    return rows


def chosen(row: dict, name: str) -> dict:
    """The row's figures under candidate `name` (`process` with its config where it may act)."""
    return row.get(name, row["off"])


def paired_ibi(new: list[dict], base: list[dict]) -> tuple[np.ndarray, int]:
    """IBI change of `score` dicts `new` against `base` (the same recordings, in order) over the
    recordings with an IBI under both, and how many lost theirs (none in new, one in base)."""
    ibi = np.array([[a["ibi"], b["ibi"]] for a, b in zip(new, base)]).reshape(-1, 2)
    both = np.isfinite(ibi).all(axis=1)
    return ibi[both, 0] - ibi[both, 1], int((np.isnan(ibi[:, 0]) & np.isfinite(ibi[:, 1])).sum())


def pooled(scores: list[dict]) -> dict:
    """Arm (b)'s figures pooled over `score` dicts: mean IBI (each recording with an IBI; not
    paired), mean HR error, clean windows rejected, octave-error windows (%), mean |r| with the
    truth."""
    win = sum(a["windows"] for a in scores)
    return {"ibi_mean": float(np.nanmean([a["ibi"] for a in scores])),
            "hr_mean": float(np.mean([a["hr"] for a in scores])),
            "clean_rejected": 1.0 - sum(a["accepted"] for a in scores) / max(win, 1),
            "octave_pct": 100.0 * sum(a["octave"][1] for a in scores)
            / max(sum(a["octave"][0] for a in scores), 1),
            "truth_r_mean": float(np.mean([a["truth_r"] for a in scores]))}


def summary(rows: list[dict]) -> list[dict]:
    """Per stratum, setting and candidate: recordings refit, summed HR / IBI change against off
    (recordings with a finite IBI both ways), how many worse / better by > 10 ms, how many lost
    their IBI ("ibi_lost": none under the candidate, one under off), clean windows rejected,
    octave-error windows, mean |r| with the truth. "ibi_mean" averages each candidate's own
    recordings with an IBI (not paired)."""
    out = []
    for stratum in sorted({r["stratum"] for r in rows}):
        for label in VALIDATION_SETTINGS:
            sel = [r for r in rows if r["stratum"] == stratum and r["setting"] == label]
            for name in CANDIDATES:
                c = [chosen(r, name) for r in sel]
                d_ibi, lost = paired_ibi(c, [r["off"] for r in sel])
                out.append({
                    "stratum": stratum, "setting": label, "candidate": name,
                    "recordings": len(sel), "refit": int(sum(a["refit"] for a in c)),
                    "d_hr_sum": float(sum(a["hr"] - r["off"]["hr"] for a, r in zip(c, sel))),
                    "d_ibi_sum": float(d_ibi.sum()), "worse_10ms": int((d_ibi > 10).sum()),
                    "better_10ms": int((d_ibi < -10).sum()),
                    "ibi_lost": lost, **pooled(c)})
    return out


def no_beat_rejection(n: int, first: int, cfgs: dict[str, TrainConfig],
                      duration_s: float) -> dict:
    """Share of heartbeat-free windows rejected per kind, rate and config of `cfgs` (name ->
    config), on the heartbeat-free recordings of validation subjects first..first+n-1."""
    cfg = TrainConfig()
    out = {}
    for label, (fs_in, loss) in VALIDATION_SETTINGS.items():
        sc = replace(cfg.sim, fs_in=fs_in, duration_s=duration_s,
                     channel=ChannelConfig(loss=loss, burst=3.0))
        for kind in ("noise", "no_contact"):
            recs = [simulate_no_beat(sc, subject_seed("val", i, cfg.seed) + 2, kind)
                    for i in range(first, first + n)]
            out[f"{kind} {label}"] = {
                name: float(np.mean([1 - process(r, c)["windows"]["reliable"].mean()
                                     for r in recs])) for name, c in cfgs.items()}
    return out


def add_stratum_arguments(ap: argparse.ArgumentParser) -> None:
    """The two strata's subjects, the weak stratum's BCG range, duration, heartbeat-free count."""
    ap.add_argument("--subjects", type=int, default=48, help="family-stratum validation subjects")
    ap.add_argument("--first", type=int, default=0, help="first family-stratum subject index")
    ap.add_argument("--weak", type=int, default=48, help="weak-stratum validation subjects")
    ap.add_argument("--weak-first", type=int, default=600, help="first weak-stratum subject")
    ap.add_argument("--weak-mg", type=float, nargs=2, default=[0.5, 1.5],
                    help="weak stratum: BCG amplitude range (mg)")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--no-beat", type=int, default=24, help="heartbeat-free recordings per kind")


def weak_mg_range(a: argparse.Namespace) -> tuple[float, float]:
    """The validated `--weak-mg` range (a one-line ConfigError otherwise)."""
    if not 0 < a.weak_mg[0] < a.weak_mg[1]:
        raise ConfigError(f"--weak-mg {a.weak_mg} must be 0 < lo < hi")
    return a.weak_mg[0], a.weak_mg[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.refit_check",
                                 description=__doc__.split("\n\n")[0])
    add_stratum_arguments(ap)
    ap.add_argument("--out", type=Path, default=Path("runs/twscardio/refit_check.json"))
    a = ap.parse_args(argv)
    setup_logging()
    weak_mg = weak_mg_range(a)
    rows = recordings("family", a.subjects, a.first, None, a.duration) + recordings(
        "weak", a.weak, a.weak_first, weak_mg, a.duration)
    tab = summary(rows)
    for t in tab:
        log.info("%-6s %-13s %-11s refit %2d | sum dHR %+7.2f bpm, sum dIBI %+8.1f ms "
                 "(worse/better >10 ms: %d/%d) | IBI %.2f ms, HR %.3f bpm, clean rejected "
                 "%.2f %%, octave %.2f %%, |r| %.3f", t["stratum"], t["setting"], t["candidate"],
                 t["refit"], t["d_hr_sum"], t["d_ibi_sum"], t["worse_10ms"], t["better_10ms"],
                 t["ibi_mean"], t["hr_mean"], 100 * t["clean_rejected"], t["octave_pct"],
                 t["truth_r_mean"])
    base = TrainConfig()
    nb = no_beat_rejection(a.no_beat, a.first, {n: candidate(base, n) for n in CANDIDATES},
                           a.duration)
    log.info("heartbeat-free windows rejected: %s", nb)
    atomic_write_json(a.out, {"args": {k: str(v) for k, v in vars(a).items()}, "rows": rows,
                              "summary": tab, "no_beat_rejection": nb})
    return 0


if __name__ == "__main__":
    run(main)
