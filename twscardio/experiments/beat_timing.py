"""`python -m twscardio.experiments.beat_timing`: where arm (b)'s IBI error comes from.

On *validation*-split subjects of the training family (one bench setting, 60 s), every pair of
consecutive cycles with one detection each (the pairs the IBI MAE scores) is put in one class,
in this order: a beat of the pair more than 60 ms off its cycle's AO (a wrong beat: noise, the
wrong wave, or a premature beat passed over for the expected spot), both buds without data for
more than 30 % of +-150 ms around a beat (a loss burst spans it), a beat 25-60 ms off, the rest.
Per class: share of pairs, share of the MAE (ms), mean |IBI error|. A beat's offset is its
detection minus the true AO, minus the recording's median offset. Also: the MAE against AO-to-AO
intervals (the J wave follows AO; R-to-R differs from it by the pre-ejection period's beat-to-beat
variation), and the wrong beats by kind (premature or not, subject with ectopic / AF-like /
regular rhythm, late or early).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from shared.cli import run
from shared.io import atomic_write_json
from shared.log import get_logger, progress
from twscardio.beats import match_beats
from twscardio.config import ChannelConfig, TrainConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.pipeline import process

log = get_logger("twscardio.experiments.beat_timing")
CLASSES = ["wrong beat (> 60 ms)", "loss burst at a beat", "beat 25-60 ms off", "rest"]


def _loss_near(mask: np.ndarray, t_s: np.ndarray, fs: float, half_s: float = 0.15) -> np.ndarray:
    """Share of +-half_s around each time (s) where neither bud delivered (mask (T, 2))."""
    none = ~mask.any(axis=1)
    h = int(round(half_s * fs))
    k = np.clip(np.round(t_s * fs).astype(np.int64), 0, len(none) - 1)
    c = np.concatenate([[0], np.cumsum(none)])
    lo, hi = np.clip(k - h, 0, len(none)), np.clip(k + h, 0, len(none))
    return (c[hi] - c[lo]) / np.maximum(hi - lo, 1)


def recording_errors(rec: dict, cfg: TrainConfig) -> dict:
    """Per scored pair: |IBI error| vs R-R and vs AO-AO (ms), class index; wrong-beat kinds."""
    o = process(rec, cfg, "b")
    tr, sub = rec["truth"], rec["subject"]
    r, ao = tr["r_s"], tr["ao_s"]
    mt = match_beats(np.sort(o["beats_all_s"]), r)
    one = mt["count"] == 1
    off = (mt["first"] - ao[:-1]) * 1000
    off = off - np.nanmedian(off[one])
    pair = one[:-1] & one[1:]
    ibi = np.abs(np.diff(mt["first"]) - np.diff(r)[:-1])[pair] * 1000
    ibi_ao = np.abs(np.diff(mt["first"]) - np.diff(ao)[:-1])[pair] * 1000
    worst = np.maximum(np.abs(off[:-1]), np.abs(off[1:]))[pair]
    fs = o["prep"]["fs"]
    loss = np.maximum(_loss_near(o["prep"]["mask"], ao[:-2][pair], fs),
                      _loss_near(o["prep"]["mask"], ao[1:-1][pair], fs))
    cls = np.where(worst > 60, 0, np.where(loss > 0.3, 1, np.where(worst > 25, 2, 3)))
    rr = np.diff(r)
    rhythm = ("ectopic" if sub.get("ectopic_rate", 0) > 0 else
              "AF-like" if sub.get("af_cv", 0) > 0 else "regular")
    kinds = []
    for k in np.flatnonzero(one & (np.abs(off) > 60)):
        early = k > 0 and rr[k - 1] < 0.85 * np.median(rr)  # this cycle's beat came early
        kinds.append(f"{rhythm} subject, {'premature' if early else 'normal'} beat, "
                     f"{'late' if off[k] > 0 else 'early'}")
    return {"ibi": ibi, "ibi_ao": ibi_ao, "cls": cls, "kinds": kinds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.beat_timing",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=48, help="validation subjects")
    ap.add_argument("--first", type=int, default=100, help="first validation subject index")
    ap.add_argument("--fs-in", type=float, default=25.0)
    ap.add_argument("--loss", type=float, default=0.2)
    ap.add_argument("--out", default="results/twscardio/beat_timing.json")
    args = ap.parse_args(argv)
    cfg = TrainConfig()
    sc = replace(cfg.sim, fs_in=args.fs_in, duration_s=60.0,
                 channel=ChannelConfig(loss=args.loss, burst=3.0))
    res = []
    for i in progress(range(args.first, args.first + args.subjects), desc="validation subjects"):
        seed = subject_seed("val", i, cfg.seed)
        rec = subject_recording(sc, seed, randomised=True)
        res.append(recording_errors(rec, cfg))
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
    out = {"setting": {"fs_in": args.fs_in, "loss": args.loss, "burst": 3.0},
           "subjects": [args.first, args.first + args.subjects], "pairs": int(ibi.size),
           "ibi_mae_ms": float(ibi.mean()),
           "ibi_mae_vs_ao_ms": float(np.concatenate([x["ibi_ao"] for x in res]).mean()),
           "classes": table, "wrong_beats": dict(sorted(kinds.items(), key=lambda kv: -kv[1]))}
    log.info("%s", out)
    atomic_write_json(args.out, out)
    return 0


if __name__ == "__main__":
    run(main)
