"""`python -m edgeoar.experiments.ship_weights`: refresh the model `edgeoar.stream` uses by
default (`edgeoar/weights/stream_default.safetensors`).

Takes (or trains, cached) the iteratively trained model of `python -m edgeoar.bench --quick`,
chooses its IIE + MC thresholds on the validation split and saves both, with the class names,
as one safetensors file. Run it after any change to the streams, the model or the training.
"""

from __future__ import annotations

from edgeoar.bench import QUICK
from edgeoar.config import BenchConfig
from edgeoar.data import class_names, load_split
from edgeoar.models import save_model
from edgeoar.online import DEFAULT_MODEL
from edgeoar.train import exit_thresholds, get_model
from shared.cli import parse_args, run
from shared.config import apply_overrides, from_dict, to_dict
from shared.log import get_logger

log = get_logger("edgeoar.experiments.ship_weights")


def main(argv: list[str] | None = None) -> int:
    _, bc = parse_args(argv, BenchConfig, prog="edgeoar.experiments.ship_weights",
                       description=__doc__.split("\n\n")[0],
                       default_config="configs/edgeoar/bench.yaml")
    bc = from_dict(BenchConfig, apply_overrides(to_dict(bc), [f"{k}={v}"
                                                              for k, v in QUICK.items()]))
    model, info = get_model(bc.train)
    th = exit_thresholds(model, load_split(bc.train, "val"), bc.exits.operating_rule())
    DEFAULT_MODEL.parent.mkdir(exist_ok=True)
    save_model(model, DEFAULT_MODEL, class_names(bc.train.stream),
               {"exit": th, "hist": info.get("hist", {})})
    log.info("wrote %s (thresholds %s)", DEFAULT_MODEL, th)
    return 0


if __name__ == "__main__":
    run(main)
