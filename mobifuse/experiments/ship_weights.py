"""`python -m mobifuse.experiments.ship_weights`: refresh the shipped quick-setting nets.

Trains (or reads from the cache) the two fusion nets (with / without DEI channels) of `python -m
mobifuse.bench --quick` and copies their safetensors files into `mobifuse/weights/` under their
cache keys, so a fresh checkout's quick bench evaluates instead of rendering its training scenes
and training. Run it after any change to the data, the net or the quick setting.
"""

from __future__ import annotations

import functools
import shutil
import sys

from mobifuse.bench import QUICK, WEIGHTS_DIR, net_key, trained_net
from mobifuse.config import BenchConfig
from mobifuse.data import build_dataset
from mobifuse.train import scene_seeds
from shared.cache import cache_dir, cache_key
from shared.cli import parse_args, run
from shared.log import get_logger

log = get_logger("mobifuse.experiments.ship_weights")


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(["--quick", *(argv or [])], BenchConfig,
                           prog="mobifuse.experiments.ship_weights",
                           description=__doc__.split("\n\n")[0],
                           default_config="configs/mobifuse/bench.yaml", quick=QUICK)
    tc = cfg.train
    seeds, _ = scene_seeds(tc)
    train = functools.cache(lambda: build_dataset(seeds, tc.sim, tc.stereo, tc.dei))
    WEIGHTS_DIR.mkdir(exist_ok=True)
    for use_dei in (True, False):
        trained_net(tc, train, use_dei)  # trains into the cache when missing
        name = f"{cache_key('mobifuse-net', net_key(tc, use_dei)[1])}.safetensors"
        if not (WEIGHTS_DIR / name).is_file():
            shutil.copyfile(cache_dir() / name, WEIGHTS_DIR / name)
        log.info("use_dei=%s: %s", use_dei, WEIGHTS_DIR / name)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
