"""Train (or load the cached) small ReLU OPT and record its FFN activation masks.

    python -m ripple.train --config configs/ripple/bench.yaml [--out DIR] [--set train.steps=800]

Writes to the run dir: `checkpoint/` (HF `save_pretrained`), `masks-<split>-<source>.npz`
(bit-packed oracle masks, `ripple.data.load_masks`), `train.json` (perplexities, activated
fraction per layer) and the resolved `config.yaml`. Training is cached by config under
`.cache/` (a rerun with the same config is instant), so it is not checkpointed mid-way: it takes
about two minutes on one core.
"""

from __future__ import annotations

import logging
import os
import tempfile

from ripple.config import RippleConfig
from ripple.data import save_masks
from ripple.pipeline import QUICK, activated_fraction, get_model, mask_sets
from shared.cli import parse_args, run
from shared.config import save_config
from shared.io import atomic_write_json, make_run_dir
from shared.runtime import set_seed

log = logging.getLogger("ripple.train")


def main(argv=None) -> int:
    args, cfg = parse_args(
        argv, RippleConfig, prog="ripple.train", default_config="configs/ripple/bench.yaml",
        quick=QUICK,
        description="Train a byte-level ReLU OPT (transformers OPTConfig, activation 'relu', L1 "
                    "on FFN activations) on the offline stdlib corpus, then record its FFN "
                    "activation masks on calibration and held-out text for Ripple's placement. "
                    "Set checkpoint=PATH to record masks of an existing HF OPT checkpoint.")
    set_seed(cfg.seed)
    run_dir = make_run_dir(args.out, "ripple", "train")
    save_config(cfg, run_dir / "config.yaml")
    model = get_model(cfg)
    from shared.text import evaluate_perplexity, load_corpus

    ppl = {src: evaluate_perplexity(model, load_corpus("val", src, max_bytes=200_000),
                                    cfg.masks.seq_len, max_windows=16)
           for src in dict.fromkeys([cfg.masks.calib_source, *cfg.masks.test_sources])}
    masks = mask_sets(model, cfg)
    for key, m in masks.items():
        split, src = key.split(":")
        save_masks(run_dir / f"masks-{split}-{src}.npz", m)
    with tempfile.TemporaryDirectory(dir=run_dir) as d:
        model.save_pretrained(d)
        target = run_dir / "checkpoint"
        if target.exists():
            import shutil

            shutil.rmtree(target)
        os.replace(d, target)
        os.makedirs(d)  # TemporaryDirectory cleans up the (now empty) name
    summary = {"val_perplexity": ppl,
               "activated_fraction": {k: activated_fraction(m) for k, m in masks.items()},
               "neurons_per_layer": int(next(iter(masks.values())).shape[2])}
    atomic_write_json(run_dir / "train.json", summary)
    for k, f in summary["activated_fraction"].items():
        log.info("activated fraction %s: %s", k, " ".join(f"{x:.3f}" for x in f))
    log.info("val perplexity %s; wrote %s", {k: round(v, 2) for k, v in ppl.items()}, run_dir)
    return 0


if __name__ == "__main__":
    run(main)
