"""`python -m bestshot.experiments.ship_weights`: write the quick bench's ShotVL arm -- the
WiSE-FT average of the cached base and fine-tuned models, alpha chosen on the validation split
as the bench does -- to `bestshot/weights/shotvl.safetensors`, the model `bestshot.query` uses
when none is given. Run `python -m bestshot.bench --quick` first (it trains and caches both)."""

from __future__ import annotations

from bestshot.bench import (
    QUICK,
    _freqs,
    arm_configs,
    retention,
    retention_split,
    robust_models,
    wise_curve,
)
from bestshot.config import BenchConfig
from bestshot.data import generate_split, make_queries
from bestshot.models import load_model, save_model
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
    models = {"base": load_model(base)[0],
              "shotvl": load_model(model_file(arm_configs(bc, str(base))["shotvl"]))[0]}
    models["no_pose_text"] = models["shotvl"]  # robust_models averages it too; unused here
    val = generate_split(bc.val)
    items = make_queries(val, _freqs(bc), bc.train.caption, False, bc.train.seed)
    rs = retention_split(bc.val, bc)
    shipped, alpha = robust_models(models, wise_curve(models, val, rs, items, bc),
                                   retention(models["base"], rs, bc), bc.wise_tolerance)
    WEIGHTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    save_model(shipped["shotvl"], WEIGHTS_FILE, {"wise_alpha": alpha})
    log.info("shipped ShotVL (WiSE-FT alpha %.2f) -> %s", alpha, WEIGHTS_FILE)
    return 0


if __name__ == "__main__":
    run(main)
