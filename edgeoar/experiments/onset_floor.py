"""`python -m edgeoar.experiments.onset_floor [--quick] [--out DIR]`: how early the streams
can tell a class at all, per class, from the generator's exact ground truth (no model).

For every validation clip (the validation seeds, rendered again for their ground truth, as
the streams are: trimmed to the action's onset, `data.render_truth`):
the **onset frame**, the first frame (1-based) at which some joint of the person has moved at
least `thr` metres (world coordinates, so camera motion does not count) from its position in
frame 1; about 4 cm is one pixel at the in-family camera distance and 64 px. For the
temporal-only pairs (`data.temporal_only`: the arm circles) the class is not told apart before
the end of the pair's shared pose prefix (`data.shared_prefix_phase`), so their onset is the
later of that and the first frame past the prefix's phase. Frame 1 is an I-frame (no motion
vectors), so the motion modality cannot see anything before frame 2: the floor per clip is
max(onset, 2). Start poses or props seen at frame 1 (stand_up seated, a chair, a ball) are
appearance cues the floor ignores.

The mean of the per-clip floors over a split is the fraction of frames any online recogniser
must watch before the motion in the clip distinguishes its class: if it is far below the 35 %
target, the data alone do not rule the target out. The same figures for the generator's
untrimmed timeline (`stream.onset_m = 0`: idle hold, eased-in start) are under "untrimmed",
with the frames the trimming cut per class ("cut"). Writes onset_floor.json.
"""

from __future__ import annotations

import json

import numpy as np

from edgeoar.bench import QUICK
from edgeoar.config import BenchConfig
from edgeoar.data import (
    class_names,
    clip_seed,
    render_truth,
    shared_prefix_phase,
    temporal_only,
)
from shared.cli import parse_args, run
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger, progress

log = get_logger("edgeoar.experiments.onset_floor")


def onset_frame(joints3d: np.ndarray, thr: float) -> int:
    """(T, J, 3) world joint positions -> the first frame (1-based) at which some joint is at
    least `thr` away from its frame-1 position; T + 1 when none is."""
    moved = np.linalg.norm(joints3d - joints3d[:1], axis=-1).max(-1) >= thr
    return int(np.argmax(moved)) + 1 if moved.any() else len(joints3d) + 1


def prefix_end_frame(phase: np.ndarray, prefix: float) -> int:
    """The first frame (1-based) whose action phase is past `prefix` (T + 1 when none)."""
    past = phase > prefix
    return int(np.argmax(past)) + 1 if past.any() else len(phase) + 1


def clip_floor(j3: np.ndarray, ph: np.ndarray, thr: float, prefix: float | None) -> int:
    """The floor of one clip (1-based frame): the onset (`onset_frame`), for a temporal-only
    class (`prefix` its shared prefix phase) no earlier than the first frame past the prefix,
    at least frame 2 (the first P-frame), at most the clip."""
    f = onset_frame(j3, thr)
    if prefix is not None:
        f = max(f, prefix_end_frame(ph, prefix))
    return min(max(f, 2), len(j3))


def main(argv: list[str] | None = None) -> int:
    args, bc = parse_args(argv, BenchConfig, prog="edgeoar.experiments.onset_floor",
                          description=__doc__.split("\n\n")[0], quick=QUICK,
                          default_config="configs/edgeoar/bench.yaml")
    sc = bc.train.stream
    names = class_names(sc)
    temporal = temporal_only(names)
    prefix = {a: max((shared_prefix_phase(a, b) for j, b in enumerate(names)
                      if temporal[j] and b != a), default=0.0) if temporal[k] else 0.0
              for k, a in enumerate(names)}
    thrs, steps = [0.04, 0.08], sc.clip_frames
    views = {"trimmed": ("joints3d", "phase"), "untrimmed": ("raw_joints3d", "raw_phase")}
    per = {v: {a: {thr: [] for thr in thrs} for a in names} for v in views}
    cut: dict = {a: [] for a in names}
    jobs = [(k, i) for i in range(sc.val_per_class) for k in range(len(names))]
    for k, i in progress(jobs, desc="val clips (ground truth)"):
        a = names[k]
        truth = render_truth(sc, a, clip_seed(sc, "val", i, k))
        cut[a].append(truth["start"])
        for v, (jk, pk) in views.items():
            for thr in thrs:
                per[v][a][thr].append(clip_floor(np.asarray(truth[jk])[:steps],
                                                 np.asarray(truth[pk])[:steps], thr,
                                                 prefix[a] if temporal[k] else None))

    def summary(d: dict) -> dict:
        out = {f"floor_frac@{thr}": float(np.mean([f for a in names for f in d[a][thr]])
                                          / steps) for thr in thrs}
        out["per_class"] = {a: {str(thr): float(np.mean(d[a][thr])) for thr in thrs}
                            for a in names}
        return out

    out = {"thresholds_m": thrs, "onset_m": sc.onset_m, "prefix_phase": prefix,
           **summary(per["trimmed"]), "untrimmed": summary(per["untrimmed"]),
           "cut": {a: float(np.mean(c)) for a, c in cut.items()}}
    run_dir = make_run_dir(args.out, "edgeoar", "onset_floor")
    atomic_write_json(run_dir / "onset_floor.json", out)
    log.info("%s", json.dumps(out))
    return 0


if __name__ == "__main__":
    run(main)
