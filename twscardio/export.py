"""`python -m twscardio.export`: write simulated subjects in the EarCardio CSV layout.

Per subject `<out>/subject<i>/`: `l_<k>.csv`, `r_<k>.csv`, `scg_<k>.csv`, `ecg_<k>.csv` for each
5-s window k (the public code's `Code/dataset.py` layout), plus `truth.npz` with the ground truth
of the whole recording (R/AO/AC times and indices, reference SCG/ECG/BCG, motion mask, delivered
masks per bud). Conditions come from the config's `sim` section (`--set sim.fs_in=25`
`--set sim.channel.loss=0.2` `--set sim.motion_level=2`), the length from `--duration` (as in
`twscardio.eval`: the config's sim.duration_s is the training recordings' length).
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np

from shared.cli import build_parser, parse_args, run
from shared.config import save_config
from shared.errors import UserError
from shared.io import atomic_write_bytes, make_run_dir
from shared.log import get_logger, progress
from twscardio.config import TrainConfig
from twscardio.data import subject_recording, subject_seed, write_earcardio

__all__ = ["main"]

log = get_logger("twscardio.export")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(
        "twscardio.export",
        "Simulate earbud-IMU recordings (in-ear BCG, motion, Bluetooth loss) with ground truth "
        "and write them in the EarCardio CSV layout (l_/r_/scg_/ecg_<id>.csv per 5-s window).",
        default_config="configs/twscardio/default.yaml")
    parser.add_argument("--subjects", type=int, default=2, help="subjects to write (default 2)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per recording")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"],
                        help="seed range to draw subjects from (default test: held out)")
    args, cfg = parse_args(argv, TrainConfig, prog="twscardio.export", description="",
                           parser=parser)
    if args.subjects < 1 or not args.duration >= 5.0:
        raise UserError("--subjects must be >= 1 and --duration >= 5 s (one window)")
    cfg = replace(cfg, sim=replace(cfg.sim, duration_s=args.duration))
    out = make_run_dir(args.out, "twscardio", "simulate")
    save_config(cfg, out / "config.yaml")
    for i in progress(range(args.subjects), desc="subjects"):
        seed = subject_seed(args.split, i, cfg.seed)
        rec = subject_recording(cfg.sim, seed)
        d = out / f"subject{i}"
        write_earcardio(d, rec, window_s=5.0)
        buf = io.BytesIO()
        np.savez(buf, **rec["truth"])
        atomic_write_bytes(d / "truth.npz", buf.getvalue())
    log.info("wrote %d subjects to %s", args.subjects, out)
    return 0


if __name__ == "__main__":
    run(main)
