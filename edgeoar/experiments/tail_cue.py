"""`python -m edgeoar.experiments.tail_cue [--quick] --out DIR`: does a model read a held tail?

The frames cut at the action's onset are made up at the end of a clip. They used to be the
last frame repeated (exact copies: no sensor noise, no camera motion, 0.4-3.9 of them by
class), a cue correlated with the class; they are now the generator's continuation of the
scene (`data.render_truth`). This probe rebuilds the old padding (`hold_tail`) for the
bench's train / val / test clips, trains the bench's iterative model on it (cached) and
evaluates it and the bench's own model (rendered tails) on the test clips with either tail:
IIE accuracy per step and at the full clip, mean confidence at the last frame, and the IIE
operating point whose threshold is chosen on the model's own validation split (held tails for
the held-tail model). Writes `tail_cue.json`. Nothing is selected on the test split.
"""

from __future__ import annotations

import numpy as np

from edgeoar.bench import QUICK
from edgeoar.config import BenchConfig, TrainConfig
from edgeoar.data import (
    build_split,
    check_stream,
    class_names,
    data_version,
    load_split,
    render_truth,
)
from edgeoar.exits import apply_policy, compare_policies, step_scores, summarise
from edgeoar.models import load_model, save_model
from edgeoar.train import _model_key, get_model, predict, train_model
from shared.cache import cached_arrays, cached_file
from shared.cli import parse_args, run
from shared.config import to_dict
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger

log = get_logger("edgeoar.experiments.tail_cue")


def hold_tail(frames: np.ndarray, start: int) -> np.ndarray:
    """(T, H, W, 3) -> the same clip with its last `start` frames replaced by copies of the
    frame before them (the padding of a clip whose first `start` frames were cut)."""
    keep = len(frames) - start
    return np.concatenate([frames[:keep], np.repeat(frames[keep - 1:keep], start, 0)])


def _render_held(sc, action, seed, ood=False):
    t = render_truth(sc, action, seed, ood)
    return hold_tail(t["frames"], t["start"])


def held_split(cfg: TrainConfig, split: str) -> dict[str, np.ndarray]:
    """`data.build_split` with held tails (cached)."""
    key = {"split": split, "stream": to_dict(cfg.stream), "codec": to_dict(cfg.codec)}
    return cached_arrays("edgeoar-streams-held-tail", key,
                         lambda: build_split(cfg, split, render=_render_held),
                         version=data_version())


def held_model(cfg: TrainConfig):
    """The bench's model trained on held tails (cached) -> (model, info)."""
    def build(tmp):
        model, hist = train_model(cfg, splits=(held_split(cfg, "train"), held_split(cfg, "val"),
                                               class_names(cfg.stream)))
        save_model(model, tmp, hist["classes"], {"hist": {k: v for k, v in hist.items()
                                                         if k != "classes"}})

    return load_model(cached_file("edgeoar-model-held-tail", _model_key(cfg), build,
                                  suffix=".safetensors", version=data_version()))


def evaluate(model, val: dict, tests: dict[str, dict], bc: BenchConfig) -> dict:
    """Per test variant: IIE accuracy per step, at the full clip, mean last-frame confidence,
    and IIE at the threshold chosen on `val` (the bench's rule)."""
    steps = bc.train.stream.clip_frames

    def scores(d):
        p = predict(model, d)
        return step_scores(p["rgb"], p["motion"], p["gate"])

    vs = scores(val)
    tau = compare_policies(vs, val["label"], {}, bc.exits.operating_rule(), bc.exits.conf_grid,
                           bc.exits.mc_grid, policies=("iie",))["iie"]["param"]
    out = {"tau_conf": tau}
    for name, d in tests.items():
        s, y = scores(d), d["label"]
        ok = s["p_iie"].argmax(-1) == y[:, None]
        out[name] = {"acc_per_step": ok.mean(0).round(3).tolist(),
                     "acc_full": float(ok[:, -1].mean()),
                     "conf_last": float(s["p_iie"][:, -1].max(-1).mean()),
                     "iie": summarise(*apply_policy("iie", s, tau), y, steps)}
    return out


def main(argv: list[str] | None = None) -> int:
    args, bc = parse_args(argv, BenchConfig, prog="edgeoar.experiments.tail_cue",
                          description=__doc__.split("\n\n")[0], quick=QUICK,
                          default_config="configs/edgeoar/bench.yaml")
    check_stream(bc.train.stream)
    tests = {"rendered": load_split(bc.train, "test"), "held": held_split(bc.train, "test")}
    out = {"rendered_model": evaluate(get_model(bc.train)[0], load_split(bc.train, "val"),
                                      tests, bc),
           "held_model": evaluate(held_model(bc.train)[0], held_split(bc.train, "val"), tests,
                                  bc)}
    run_dir = make_run_dir(args.out, "edgeoar", "tail_cue")
    atomic_write_json(run_dir / "tail_cue.json", out)
    for k, v in out.items():
        log.info("%s: %s", k, v)
    return 0


if __name__ == "__main__":
    run(main)
