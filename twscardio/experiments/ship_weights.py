"""`python -m twscardio.experiments.ship_weights [--full]`: refresh the shipped arm weights.

Trains (or reads from the cache) the (c) and (d) networks of `python -m twscardio.bench
--quick` (with `--full`: of the full `python -m twscardio.bench`, 3072 subjects x 60 s x 8000
steps; each network of an ensemble, `net.members`) and arm (e)'s timing model, and copies
their safetensors files into `twscardio/weights/` under their cache keys, so a fresh checkout's
bench evaluates instead of training. Run it after any change to the training data, the network
or the bench settings (the keys change with them).
"""

from __future__ import annotations

import shutil
import sys

from shared.cli import build_parser, parse_args, run
from shared.config import apply_overrides, from_dict, to_dict
from shared.log import get_logger
from twscardio.bench import QUICK, arm_configs
from twscardio.config import BenchConfig
from twscardio.train import WEIGHTS_DIR, get_model, get_timing_model, model_files, timing_file

log = get_logger("twscardio.experiments.ship_weights")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("twscardio.experiments.ship_weights", __doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="the full bench's networks instead of the --quick ones")
    args, bc = parse_args(argv, BenchConfig, prog="twscardio.experiments.ship_weights",
                          description="", parser=parser)
    if not args.full:
        bc = from_dict(BenchConfig, apply_overrides(to_dict(bc), [f"{k}={v}"
                                                                  for k, v in QUICK.items()]))
    WEIGHTS_DIR.mkdir(exist_ok=True)
    for arm, cfg in arm_configs(bc).items():
        model = get_model(cfg)  # trains into the cache when missing
        for src in model_files(cfg):  # one file per network of an ensemble
            if src.parent != WEIGHTS_DIR:
                shutil.copyfile(src, WEIGHTS_DIR / src.name)
            log.info("arm %s: %s (%d KB)", arm, WEIGHTS_DIR / src.name, src.stat().st_size // 1024)
        log.info("arm %s: %s", arm,
                 {k: v for k, v in getattr(model, "hist", {}).items() if k != "loss"})
    get_timing_model(bc.train)  # arm (e)'s timing model (simulates its subjects when missing)
    src = timing_file(bc.train)
    if src.parent != WEIGHTS_DIR:
        shutil.copyfile(src, WEIGHTS_DIR / src.name)
    log.info("arm e: %s (%d KB)", WEIGHTS_DIR / src.name, src.stat().st_size // 1024)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
