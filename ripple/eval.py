"""Place neurons, write the flash layout file, and replay every arm's I/O on held-out masks.

    python -m ripple.eval --config configs/ripple/bench.yaml [--run TRAIN_RUN_DIR] [--out DIR]

Masks come from a `ripple.train` run dir (`--run`) or are recorded now from the model
(`checkpoint=PATH` for any HF OPT/ReLU checkpoint). Writes `placement.npz` (per-layer orders of
every placement), `layout-ripple.bin` (bundles in Ripple order, 4 KB aligned; needs the model's
weights, so only without `--run` or with the run's checkpoint), and `results.json` /
`results.csv` (modelled UFS I/O per arm, bundle setting and test source).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ripple.config import RippleConfig
from ripple.data import load_masks
from ripple.layout import write_layout
from ripple.pipeline import (
    QUICK,
    bundle_settings,
    get_model,
    mask_sets,
    placements,
    replay_arms,
)
from shared.cli import build_parser, parse_args, run
from shared.config import save_config
from shared.errors import DataError
from shared.io import atomic_path, atomic_write_csv, atomic_write_json, make_run_dir
from shared.runtime import set_seed

log = logging.getLogger("ripple.eval")

DESCRIPTION = ("Offline placement (greedy-edge shortest Hamiltonian path over co-activation) and "
               "the online replay of llama.cpp-style, LLM-in-a-flash and Ripple loading on the "
               "same held-out activation masks, under the modelled UFS 4.0 device.")


def _load_run_masks(run: Path, cfg: RippleConfig) -> dict[str, np.ndarray]:
    out = {}
    for src in dict.fromkeys([cfg.masks.calib_source, *cfg.masks.test_sources]):
        for key in ("calib", "test"):
            out[f"{key}:{src}"] = load_masks(run / f"masks-{key}-{src}.npz")
    shapes = {m.shape[0::2] for m in out.values()}
    if len(shapes) != 1:
        raise DataError(f"{run}: mask files disagree on (layers, neurons): {sorted(shapes)}")
    return out


def main(argv=None) -> int:
    p = build_parser("ripple.eval", DESCRIPTION, "configs/ripple/bench.yaml",
                     run="a ripple.train run dir holding masks-*.npz (default: record masks now)")
    args, cfg = parse_args(argv, RippleConfig, prog="ripple.eval", description=DESCRIPTION,
                           parser=p, quick=QUICK)
    set_seed(cfg.seed)
    model = None
    if args.run:
        run_in = Path(args.run)
        masks = _load_run_masks(run_in, cfg)
        if (run_in / "checkpoint" / "config.json").is_file():
            from ripple.models import load_model

            model = load_model(run_in / "checkpoint")
    else:
        model = get_model(cfg)
        masks = mask_sets(model, cfg)
    run_dir = make_run_dir(args.out, "ripple", "eval")
    save_config(cfg, run_dir / "config.yaml")
    calib = masks[f"calib:{cfg.masks.calib_source}"]
    orders, secs = placements(calib, cfg.online.top_k)
    with atomic_path(run_dir / "placement.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.stack(v) for k, v in orders.items()})
    d_model, parts = cfg.model.d_model, 2
    if model is not None:
        from ripple.models import ffn_weights

        w = ffn_weights(model)
        if w[0]["up"].shape[0] != calib.shape[2]:
            raise DataError(f"model has {w[0]['up'].shape[0]} neurons per layer, masks "
                            f"{calib.shape[2]}")
        write_layout(run_dir / "layout-ripple.bin", [x["bundles"] for x in w],
                     orders["ripple"], page=cfg.storage.page)
        d_model, parts = model.config.hidden_size, w[0]["bundles"].shape[1]
    rows = []
    for src in cfg.masks.test_sources:
        for setting, bb in bundle_settings(d_model, cfg, parts=parts).items():
            for arm, r in replay_arms(masks[f"test:{src}"], orders, cfg, bb).items():
                for k in ("extents", "layer_ios_per_token", "layer_latency_ms"):
                    r.pop(k)
                rows.append({"test": src, "setting": setting, "arm": arm, **r})
    atomic_write_json(run_dir / "results.json", {"placement_seconds": secs, "rows": rows})
    atomic_write_csv(run_dir / "results.csv", rows)
    for r in rows:
        log.info("%-13s %-20s %-16s ios/tok %7.1f  run %5.2f  lat %7.3f ms", r["test"],
                 r["setting"], r["arm"], r["ios_per_token"], r["mean_run"], r["latency_ms"])
    log.info("wrote %s", run_dir)
    return 0


if __name__ == "__main__":
    run(main)
