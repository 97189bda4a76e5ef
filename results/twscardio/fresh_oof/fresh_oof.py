"""Arms (a) and (b), or the arms named, on fresh blocks of out-of-family subjects at the bench's
two main out-of-family settings (50 Hz / 10 % and 25 Hz / 20 % bursty loss, rest), scored as the
bench scores them (`eval.evaluate_recording`, `eval.aggregate`); a network arm ('c', 'd') uses
the bench's shipped network. Measurement only. Usage (repository root):
python results/twscardio/fresh_oof/fresh_oof.py FIRST BLOCKS PER_BLOCK OUT.json [ARMS, e.g. d]"""
import json
import sys

from twscardio.bench import OOF, OOF_LOW, OOF_MAIN, setting_config, test_recording, trained_models
from twscardio.config import BenchConfig
from twscardio.eval import aggregate, evaluate_recording

first, blocks, per = (int(a) for a in sys.argv[1:4])
arms = tuple(sys.argv[5].split(",")) if len(sys.argv) > 5 else ("a", "b")
bc = BenchConfig()
nets = [a for a in arms if a not in ("a", "b")]
models = {a: m for a, m in trained_models(bc).items() if a in nets} if nets else {}
out = {"first": first, "blocks": blocks, "per_block": per}


def figures(agg: dict) -> dict:
    return {f"{arm}_{k}": float(agg[arm][k]) for arm in arms
            for k in ("hr_mae", "ibi_mae_ms", "ibi_mae_ms_accepted", "coverage", "octave_pct",
                      "octave_pct_accepted")}


for label in (OOF_MAIN, OOF_LOW):
    fs_in, loss, burst, outage = OOF[label]
    cfg = setting_config(bc, fs_in, loss, burst, 0.0)
    rows = []
    for b in range(blocks):
        res = [evaluate_recording(test_recording(cfg, first + b * per + k, bc.duration_s, "out",
                                                 outage), cfg, models) for k in range(per)]
        rows += res
        out[f"{label} block{b}"] = figures(aggregate(res))
        print(label, b, json.dumps({k: round(v, 3) for k, v in out[f"{label} block{b}"].items()}),
              flush=True)
    out[f"{label} pooled"] = figures(aggregate(rows))
    print(label, "pooled", json.dumps({k: round(v, 3) for k, v in out[f"{label} pooled"].items()}))
with open(sys.argv[4], "w") as fh:
    json.dump(out, fh, indent=1)
