"""AO anchored on the fused BCG's beats in the network arms (switch `pipeline.J_AO_ANCHOR_S` at
0.05 and 0.1 s) against plain picking (0, shipped), arms (c) and (d) with the shipped networks, on
96 training-family validation subjects (200-295, 60 s) at 50 Hz / 10 %, 25 Hz / 20 % (rest) and
25 Hz / 20 % with motion level 3, judged by the rule declared in results/twscardio/NOTES.md ("AO
anchored on the fused BCG's beats in the network arms"). Two worker processes over subjects.
Usage (repository root): python results/twscardio/ao_anchor/ao_anchor.py OUT.json"""
import json
import sys
from dataclasses import replace
from multiprocessing import Pool

from twscardio.bench import trained_models
from twscardio.config import BenchConfig, ChannelConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.eval import aggregate, evaluate_recording
from twscardio.experiments.network_data import KEEP, MOTION, SETTINGS
from twscardio.pipeline import switched

FIRST, N = 200, 96
VARIANTS = {"shipped": 0.0, "AN05": 0.05, "AN10": 0.1}
REST = list(SETTINGS)
bc = BenchConfig()
cfg = bc.train
models = {a: m for a, m in trained_models(bc).items() if a in ("c", "d")}


def one(job):
    label, i = job
    fs_in, loss, motion = {**SETTINGS, **MOTION}[label]
    sc = replace(cfg.sim, fs_in=fs_in, duration_s=60.0, motion_level=motion,
                 channel=ChannelConfig(loss=loss, burst=3.0))
    rec = subject_recording(sc, subject_seed("val", i, cfg.seed), randomised=True)
    out = {}
    for name, w in VARIANTS.items():
        with switched(J_AO_ANCHOR_S=w):
            out[name] = evaluate_recording(rec, replace(cfg, sim=sc), models)
    return out


def judge(res: dict) -> dict:
    """The declared clauses of each candidate against the shipped picking."""
    verdict = {}
    for name in VARIANTS:
        if name == "shipped":
            continue
        ok = {}
        for lb in REST:
            b, c = res[lb]["shipped"], res[lb][name]
            ok[f"{lb}: octave does not rise"] = c["d"]["octave_pct"] <= b["d"]["octave_pct"]
            ok[f"{lb}: IBI +<= 0.5 ms"] = c["d"]["ibi_mae_ms"] - b["d"]["ibi_mae_ms"] <= 0.5
            ok[f"{lb}: HR +<= 0.05 bpm"] = c["d"]["hr_mae"] - b["d"]["hr_mae"] <= 0.05
            ok[f"{lb}: timing +<= 0.5 ms"] = c["timing_d_ms"] - b["timing_d_ms"] <= 0.5
            ok[f"{lb}: ratio +<= 0.01"] = c["timing_d_over_c"] - b["timing_d_over_c"] <= 0.01
        (lm,) = MOTION
        ok["motion 3: HR +<= 10 %"] = (res[lm][name]["d"]["hr_mae"]
                                      <= 1.1 * res[lm]["shipped"]["d"]["hr_mae"])
        verdict[name] = {"clauses": ok, "qualifies": all(ok.values()),
                         "mean_rest_ibi_ms": sum(res[lb][name]["d"]["ibi_mae_ms"]
                                                 for lb in REST) / len(REST)}
    good = [n for n, v in verdict.items() if v["qualifies"]]
    verdict["adopted"] = min(good, key=lambda n: (verdict[n]["mean_rest_ibi_ms"],
                                                  VARIANTS[n])) if good else None
    return verdict


if __name__ == "__main__":
    labels = [*SETTINGS, *MOTION]
    with Pool(2) as pool:
        rows = pool.map(one, [(lb, i) for lb in labels for i in range(FIRST, FIRST + N)])
    out = {"first": FIRST, "subjects": N, "variants": VARIANTS}
    for k, lb in enumerate(labels):
        per = rows[k * N:(k + 1) * N]
        out[lb] = {}
        for name in VARIANTS:
            agg = aggregate([r[name] for r in per])
            row = {a: {key: agg[a][key] for key in KEEP} for a in ("c", "d")}
            tim = {a: 0.5 * (row[a]["ao_mae_ms"] + row[a]["ac_mae_ms"]) for a in ("c", "d")}
            row["timing_d_ms"], row["timing_d_over_c"] = tim["d"], tim["d"] / tim["c"]
            out[lb][name] = row
            print(lb, name, json.dumps({"d": row["d"], "timing_d_over_c":
                                        row["timing_d_over_c"]}), flush=True)
    out["verdict"] = judge(out)
    print(json.dumps(out["verdict"], indent=1))
    with open(sys.argv[1], "w") as fh:
        json.dump(out, fh, indent=1)
