"""`python -m edgeoar.experiments.onset_floor [--quick] [--out DIR]`: how early the streams
can tell a class at all, per class, from the generator's exact ground truth (no model).

For every validation clip (the validation seeds, rendered again for their ground truth):
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
target, the data alone do not rule the target out. Writes onset_floor.json.
"""

from __future__ import annotations

import json

import numpy as np

from edgeoar.bench import QUICK
from edgeoar.config import BenchConfig
from edgeoar.data import (
    class_names,
    clip_seed,
    motion_config,
    shared_prefix_phase,
    temporal_only,
)
from shared.cli import parse_args, run
from shared.io import make_run_dir
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


def main(argv: list[str] | None = None) -> int:
    args, bc = parse_args(argv, BenchConfig, prog="edgeoar.experiments.onset_floor",
                          description=__doc__.split("\n\n")[0], quick=QUICK,
                          default_config="configs/edgeoar/bench.yaml")
    import shared.motion as motion

    sc = bc.train.stream
    names = class_names(sc)
    temporal = temporal_only(names)
    prefix = {a: max((shared_prefix_phase(a, b) for j, b in enumerate(names)
                      if temporal[j] and b != a), default=0.0) if temporal[k] else 0.0
              for k, a in enumerate(names)}
    mcfg, steps = motion_config(sc, ood=False), sc.clip_frames
    out: dict = {"thresholds_m": [0.04, 0.08], "prefix_phase": prefix, "per_class": {}}
    floors = {thr: [] for thr in out["thresholds_m"]}
    jobs = [(k, i) for i in range(sc.val_per_class) for k in range(len(names))]
    per: dict = {a: {thr: [] for thr in floors} for a in names}
    for k, i in progress(jobs, desc="val clips (ground truth)"):
        clip = motion.generate_clip(mcfg, clip_seed(sc, "val", i, k), actions=[names[k]])
        j3, ph = np.asarray(clip.joints3d)[:steps], np.asarray(clip.phase)[:steps]
        for thr in floors:
            f = onset_frame(j3, thr)
            if temporal[k]:
                f = max(f, prefix_end_frame(ph, prefix[names[k]]))
            f = min(max(f, 2), steps)
            floors[thr].append(f)
            per[names[k]][thr].append(f)
    for thr, fl in floors.items():
        out[f"floor_frac@{thr}"] = float(np.mean(fl) / steps)
    out["per_class"] = {a: {str(thr): float(np.mean(v)) for thr, v in d.items()}
                        for a, d in per.items()}
    run_dir = make_run_dir(args.out, "edgeoar", "onset_floor")
    (run_dir / "onset_floor.json").write_text(json.dumps(out, indent=1))
    log.info("%s", json.dumps(out))
    return 0


if __name__ == "__main__":
    run(main)
