"""`python -m twscardio.experiments.beat_timing`: where arm (b)'s IBI error comes from.

Every pair of consecutive cycles with one detection each (the pairs the IBI MAE scores) is put in
one class. A beat's offset is its detection minus its cycle's reference beat time, minus the
recording's median offset; the reference is the true AO in the training family (the J wave
follows AO) and the true J-lobe centre out of family (`outfamily` truth "j_s").

`classes` (as before, in this order): a beat of the pair more than 60 ms off (a wrong beat:
noise, the wrong wave, or a premature beat passed over for the expected spot), both buds without
data for more than 30 % of +-150 ms around a beat (a loss burst spans it), a beat 25-60 ms off,
the rest. Per class: share of pairs, share of the MAE (ms), mean |IBI error|.

`decomposition` (in this order; what the bench's figure is made of): (iv) a beat of the pair in
a window the SQI rejects (`process`'s rejected_mask - still scored by the "every detection"
IBI MAE), then, of accepted windows: (ii) the pair in a 5-s window with an octave error
(`beats.octave_errors`' rule), (i) a wrong beat (> 60 ms off: a missed beat replaced by another
peak, an extra beat), a loss burst at a beat, a beat 25-60 ms off, and (iii) the rest: timing
jitter on correctly found beats. Per class also its share of the bench's figure, the mean over
recordings of each recording's MAE ("bench_ms"), and for (iii) the split of each IBI error into
the detector's part (offset of the later beat minus the earlier's) and the reference's part
(reference-to-reference minus R-to-R interval: what no detector of that fiducial can remove).

`--family in` (default): validation-split subjects of the training family. `--family out`: the
bench's out-of-family test recordings (subjects 0..n-1 of `outfamily`, as `bench.test_recording`
draws them): measured only, never used to choose anything.
"""

from __future__ import annotations

import argparse

import numpy as np

import twscardio.pipeline as pipeline
from shared.cli import run
from shared.io import atomic_write_json
from shared.log import get_logger, progress
from twscardio.beats import is_octave, match_beats, window_interval_ratios
from twscardio.config import TrainConfig
from twscardio.data import setting_sims, subject_recording, subject_seed
from twscardio.outfamily import simulate_out_of_family

log = get_logger("twscardio.experiments.beat_timing")
CLASSES = ["wrong beat (> 60 ms)", "loss burst at a beat", "beat 25-60 ms off", "rest"]
DECOMPOSITION = ["(iv) SQI-rejected window", "(ii) octave window", "(i) wrong beat (> 60 ms)",
                 "loss burst at a beat", "beat 25-60 ms off", "(iii) timing jitter (rest)"]


def _loss_near(mask: np.ndarray, t_s: np.ndarray, fs: float, half_s: float = 0.15) -> np.ndarray:
    """Share of +-half_s around each time (s) where neither bud delivered (mask (T, 2))."""
    none = ~mask.any(axis=1)
    h = int(round(half_s * fs))
    k = np.clip(np.round(t_s * fs).astype(np.int64), 0, len(none) - 1)
    c = np.concatenate([[0], np.cumsum(none)])
    lo, hi = np.clip(k - h, 0, len(none)), np.clip(k + h, 0, len(none))
    return (c[hi] - c[lo]) / np.maximum(hi - lo, 1)


def octave_windows(det_s: np.ndarray, r_s: np.ndarray, t_s: np.ndarray,
                   window_s: float = 5.0) -> np.ndarray:
    """Per time in t_s: does its `window_s` window have an octave error (`beats.octave_errors`'
    rule: >= 3 detections and R peaks, median detected / true interval outside [2^-1/2, 2^1/2])."""
    bad = np.zeros(int(np.max(t_s, initial=0) // window_s) + 1, dtype=bool)
    ks, ratios, _ = window_interval_ratios(det_s, r_s, bad.size * window_s, window_s)
    bad[ks] = is_octave(ratios)
    return bad[(t_s // window_s).astype(np.int64)]


def recording_errors(rec: dict, cfg: TrainConfig, ref: str = "ao_s") -> dict:
    """Per scored pair: |IBI error| vs R-R and vs ref-ref (ms), its detector and reference parts
    (signed, ms), class index, decomposition index; per correctly found beat its offset (ms);
    wrong-beat kinds."""
    o = pipeline.process(rec, cfg, "b")
    tr, sub = rec["truth"], rec["subject"] if "subject" in rec else {}
    r, ao = tr["r_s"], tr[ref]
    det = np.sort(o["beats_all_s"])
    mt = match_beats(det, r)
    one = mt["count"] == 1
    off = (mt["first"] - ao[:-1]) * 1000
    off = off - np.nanmedian(off[one])
    pair = one[:-1] & one[1:]
    signed = (np.diff(mt["first"]) - np.diff(r)[:-1])[pair] * 1000
    ibi = np.abs(signed)
    ibi_ao = np.abs(np.diff(mt["first"]) - np.diff(ao)[:-1])[pair] * 1000
    detector = np.diff(off)[pair]
    worst = np.maximum(np.abs(off[:-1]), np.abs(off[1:]))[pair]
    fs = o["prep"]["fs"]
    loss = np.maximum(_loss_near(o["prep"]["mask"], ao[:-2][pair], fs),
                      _loss_near(o["prep"]["mask"], ao[1:-1][pair], fs))
    cls = np.where(worst > 60, 0, np.where(loss > 0.3, 1, np.where(worst > 25, 2, 3)))
    first = mt["first"]
    rej = o["rejected_mask"]
    at = lambda t: rej[np.clip(np.round(t * fs).astype(np.int64), 0, rej.size - 1)]  # noqa: E731
    rejected = (at(np.nan_to_num(first[:-1])) | at(np.nan_to_num(first[1:])))[pair]
    octave = octave_windows(det, r, np.nan_to_num(first))
    octave = (octave[:-1] | octave[1:])[pair]
    dec = np.where(rejected, 0, np.where(octave, 1, cls + 2))
    rr = np.diff(r)
    rhythm = ("ectopic" if sub.get("ectopic_rate", 0) > 0 else
              "AF-like" if sub.get("af_cv", 0) > 0 else "regular")
    kinds = []
    for k in np.flatnonzero(one & (np.abs(off) > 60)):
        early = k > 0 and rr[k - 1] < 0.85 * np.median(rr)  # this cycle's beat came early
        kinds.append(f"{rhythm} subject, {'premature' if early else 'normal'} beat, "
                     f"{'late' if off[k] > 0 else 'early'}")
    good = one & (np.abs(off) <= 25)
    return {"ibi": ibi, "ibi_ao": ibi_ao, "detector": detector, "reference": signed - detector,
            "cls": cls, "dec": dec, "kinds": kinds, "offsets": off[good],
            "accepted_share": float(1 - rej.mean())}


def decompose(res: list[dict]) -> dict:
    """The decomposition table: per class share of pairs, its part of the pooled MAE and of the
    bench's figure (mean over recordings of each recording's MAE), mean |error|."""
    scored = [x for x in res if x["ibi"].size]
    table = {}
    for c, name in enumerate(DECOMPOSITION):
        sel = [x["dec"] == c for x in scored]
        n_all = sum(x["ibi"].size for x in scored)
        e = np.concatenate([x["ibi"][s] for x, s in zip(scored, sel)])
        row = {"pairs_pct": float(100 * e.size / n_all),
               "mae_share_ms": float(e.sum() / n_all),
               "bench_ms": float(np.mean([x["ibi"][s].sum() / x["ibi"].size
                                          for x, s in zip(scored, sel)])),
               "mean_abs_ms": float(e.mean()) if e.size else None}
        if c == len(DECOMPOSITION) - 1 and e.size:
            d = np.concatenate([x["detector"][s] for x, s in zip(scored, sel)])
            f = np.concatenate([x["reference"][s] for x, s in zip(scored, sel)])
            row.update({"detector_part_mean_abs_ms": float(np.abs(d).mean()),
                        "reference_part_mean_abs_ms": float(np.abs(f).mean())})
        table[name] = row
    return table


def recordings(args, cfg: TrainConfig):
    """(label, recording, reference key) per subject of the chosen family."""
    sc = setting_sims(cfg.sim, {"x": (args.fs_in, args.loss)}, 60.0)["x"]
    for i in progress(range(args.first, args.first + args.subjects), desc="subjects"):
        if args.family == "out":
            yield i, simulate_out_of_family(sc, i), "j_s"
        else:
            seed = subject_seed("val", i, cfg.seed)
            yield i, subject_recording(sc, seed, randomised=True), "ao_s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.beat_timing",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", choices=("in", "out"), default="in",
                    help="validation subjects of the training family, or the bench's "
                         "out-of-family test recordings (measured only)")
    ap.add_argument("--subjects", type=int, default=48, help="subjects")
    ap.add_argument("--first", type=int, help="first subject index (default 100 in, 0 out)")
    ap.add_argument("--fs-in", type=float, default=25.0)
    ap.add_argument("--loss", type=float, default=0.2)
    ap.add_argument("--score-share", type=float, default=None,
                    help="run with pipeline.J_SCORE_SHARE set to this (default: as shipped)")
    ap.add_argument("--out", default="results/twscardio/beat_timing.json")
    args = ap.parse_args(argv)
    if args.first is None:
        args.first = 100 if args.family == "in" else 0
    cfg = TrainConfig()
    res, ids = [], []
    switch = {} if args.score_share is None else {"J_SCORE_SHARE": args.score_share}
    with pipeline.switched(**switch):
        for i, rec, ref in recordings(args, cfg):
            res.append(recording_errors(rec, cfg, ref))
            ids.append(i)
    ibi = np.concatenate([x["ibi"] for x in res])
    cls = np.concatenate([x["cls"] for x in res])
    table = {name: {"pairs_pct": float(100 * (cls == c).mean()),
                    "mae_share_ms": float(ibi[cls == c].sum() / ibi.size),
                    "mean_abs_ms": float(ibi[cls == c].mean()) if (cls == c).any() else None}
             for c, name in enumerate(CLASSES)}
    kinds: dict[str, int] = {}
    for x in res:
        for k in x["kinds"]:
            kinds[k] = kinds.get(k, 0) + 1
    offs = np.concatenate([x["offsets"] for x in res])
    out = {"setting": {"fs_in": args.fs_in, "loss": args.loss, "burst": 3.0,
                       "score_share": args.score_share},
           "family": args.family, "subjects": [args.first, args.first + args.subjects],
           "pairs": int(ibi.size), "ibi_mae_ms": float(ibi.mean()),
           "ibi_mae_vs_ao_ms": float(np.concatenate([x["ibi_ao"] for x in res]).mean()),
           "bench_ibi_mae_ms": float(np.mean([x["ibi"].mean() for x in res if x["ibi"].size])),
           "classes": table, "decomposition": decompose(res),
           "beat_offset_ms": {"mae": float(np.abs(offs).mean()), "sd": float(offs.std()),
                              "beats": int(offs.size)},
           "per_recording": [{"subject": i, "ibi_mae_ms": float(x["ibi"].mean())
                              if x["ibi"].size else None, "pairs": int(x["ibi"].size),
                              "accepted_share": x["accepted_share"]} for i, x in zip(ids, res)],
           "wrong_beats": dict(sorted(kinds.items(), key=lambda kv: -kv[1]))}
    log.info("%s", out)
    atomic_write_json(args.out, out)
    return 0


if __name__ == "__main__":
    run(main)
