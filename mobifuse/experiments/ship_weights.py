"""`python -m mobifuse.experiments.ship_weights`: refresh the nets shipped in mobifuse/weights/.

1. The default model `fuse()` uses (`mobifuse-default.safetensors`): trained across randomised
   rigs by `python -m mobifuse.train --config configs/mobifuse/default.yaml --out
   runs/mobifuse/default` (resumable; its file records that command and the DEI config).
2. The `python -m mobifuse.bench --quick` nets (with / without DEI channels on the fixed rig,
   and the cross-rig net trained on `train_rigs` only), under their cache keys, so a fresh
   checkout's quick bench evaluates instead of rendering training scenes and training.
3. Kept when present: the full bench's cross-rig net (trained on a lent GPU by
   `python -m mobifuse.experiments.train_scale`, results/mobifuse/train_scale/; a checkout
   without it trains it on the CPU, a different draw).
Run it after any change to the data, the net, the default config or the quick setting;
`--keep-default` skips step 1 (when only the bench's nets changed).
"""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

from mobifuse import train as mf_train
from mobifuse.api import DEFAULT_MODEL
from mobifuse.bench import QUICK, WEIGHTS_DIR, net_key, rig_nets, rig_train_config, trained_net
from mobifuse.config import BenchConfig
from mobifuse.data import build_dataset
from mobifuse.models import MODEL_FILE
from mobifuse.train import scene_seeds
from shared.cache import cache_dir, cache_key
from shared.cli import build_parser, parse_args, run
from shared.config import load_config
from shared.log import get_logger

log = get_logger("mobifuse.experiments.ship_weights")
DEFAULT_RUN = Path("runs/mobifuse/default")


def _ship(tc, use_dei: bool) -> str:
    name = f"{cache_key('mobifuse-net', net_key(tc, use_dei)[1])}.safetensors"
    if not (WEIGHTS_DIR / name).is_file():
        shutil.copyfile(cache_dir() / name, WEIGHTS_DIR / name)
    return name


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("mobifuse.experiments.ship_weights", __doc__.split("\n\n")[0],
                          "configs/mobifuse/bench.yaml")
    parser.add_argument("--keep-default", action="store_true",
                        help="keep the shipped default model (refresh the quick nets only)")
    args, cfg = parse_args(["--quick", *(argv or [])], BenchConfig,
                           prog="mobifuse.experiments.ship_weights",
                           description=__doc__.split("\n\n")[0], parser=parser,
                           default_config="configs/mobifuse/bench.yaml", quick=QUICK)
    WEIGHTS_DIR.mkdir(exist_ok=True)
    if not args.keep_default:
        mf_train.main(["--config", "configs/mobifuse/default.yaml", "--out", str(DEFAULT_RUN)])
        shutil.copyfile(DEFAULT_RUN / MODEL_FILE, DEFAULT_MODEL)
    keep = {DEFAULT_MODEL.name}
    tc = cfg.train
    seeds, _ = scene_seeds(tc)
    train = functools.cache(lambda: build_dataset(seeds, tc.sim, tc.stereo, tc.dei))
    for use_dei in (True, False):
        trained_net(tc, train, use_dei)  # trains into the cache when missing
        keep.add(_ship(tc, use_dei))
    rig_nets(cfg)
    keep.add(_ship(rig_train_config(cfg), True))
    full = load_config(args.config or "configs/mobifuse/bench.yaml", BenchConfig)  # no --quick
    keep.add(f"{cache_key('mobifuse-net', net_key(rig_train_config(full), True)[1])}.safetensors")
    for f in WEIGHTS_DIR.glob("*.safetensors"):  # drop nets no setting uses any more
        if f.name not in keep:
            f.unlink()
    log.info("shipped %s", sorted(keep))
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
