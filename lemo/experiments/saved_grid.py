"""Saved-for-backward bytes of LeMo full relative to LoRA over a keep-ratio x MLP-prune grid.

usage: python -m lemo.experiments.saved_grid OUT.json [--seq-len 4096] \\
           [--set model.num_layers=16 ...]

The bench's memory part for one length (`lemo.bench`'s embedded LM and settings, CPU, one
training step on random bytes, parameters excluded; `shared.memory.SavedTensorMeter`), for
every keep ratio in {0.4, 0.6, 0.8, 0.9, 1.0} and MLP prune ratio in {0, 0.5, 0.6, 0.8}. Causal and
non-causal scores keep the same number of blocks, so they save the same bytes (the script
checks it and stores one figure).
Together with `python -m lemo.experiments.passkey_sweep` it maps LeMo's memory/accuracy
trade-off on the embedded LM.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import torch

from lemo.bench import BenchConfig
from lemo.config import TrainConfig
from lemo.finetune import build_finetune_model, saved_step_mib
from shared.config import apply_overrides, from_dict, to_dict
from shared.io import atomic_write_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="BenchConfig override (e.g. model.num_layers=16); bytes do not depend "
                        "on the weights, so model.pretrained=false measures a shape untrained")
    args = p.parse_args()
    bc = from_dict(BenchConfig, apply_overrides(to_dict(BenchConfig()), args.set))
    tc = TrainConfig(seed=bc.seed, model=bc.model, lora=bc.lora, lemo=bc.lemo)
    model = build_finetune_model(tc, "cpu")
    model.train()
    x = torch.randint(0, 256, (1, args.seq_len), generator=torch.Generator().manual_seed(0))

    r = dataclasses.replace
    lora = saved_step_mib(model, x, r(bc.lemo, enabled=False, segment_size=0, mlp_prune_ratio=0.0))
    grid = {}
    for keep, prune in itertools.product((0.4, 0.6, 0.8, 0.9, 1.0), (0.0, 0.5, 0.6, 0.8)):
        ratio = [saved_step_mib(model, x, r(bc.lemo, segment_size=2048, scorer="exact",
                                            keep_ratio=keep, mlp_prune_ratio=prune,
                                            causal_scores=causal)) / lora
                 for causal in (True, False)]
        if ratio[0] != ratio[1]:  # the same number of kept blocks must save the same bytes
            raise RuntimeError(f"keep {keep} prune {prune}: causal {ratio[0]} != non-causal "
                               f"{ratio[1]}")
        grid[f"keep={keep} prune={prune}"] = ratio[0]
        print(f"keep {keep} prune {prune}: {ratio[0]:.4f} x LoRA (causal = non-causal)",
              flush=True)
    atomic_write_json(args.out, {"seq_len": args.seq_len, "overrides": args.set,
                                 "lora_saved_MB": lora,
                                 "saved_over_lora": grid})


if __name__ == "__main__":
    main()
