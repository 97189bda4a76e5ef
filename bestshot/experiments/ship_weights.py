"""`python -m bestshot.experiments.ship_weights`: copy the quick bench's trained ShotVL arm
from the cache into `bestshot/weights/shotvl.safetensors`, the model `bestshot.query` uses when
none is given. Run `python -m bestshot.bench --quick` first (it trains and caches the arm)."""

from __future__ import annotations

import shutil

from bestshot.bench import QUICK, arm_configs
from bestshot.config import BenchConfig
from bestshot.models import load_model
from bestshot.retrieval import WEIGHTS_FILE
from bestshot.train import model_file
from shared.cli import parse_args, run
from shared.log import get_logger

log = get_logger("bestshot.experiments.ship_weights")


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or []) + ["--quick"]
    _, bc = parse_args(argv, BenchConfig, prog="bestshot.experiments.ship_weights",
                       description=__doc__ or "", default_config="configs/bestshot/bench.yaml",
                       quick=QUICK)
    base = model_file(arm_configs(bc)["base"])
    src = model_file(arm_configs(bc, str(base))["shotvl"])
    load_model(src)  # a readable ShotVL, or a one-line error
    WEIGHTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, WEIGHTS_FILE)
    log.info("shipped %s -> %s", src, WEIGHTS_FILE)
    return 0


if __name__ == "__main__":
    run(main)
