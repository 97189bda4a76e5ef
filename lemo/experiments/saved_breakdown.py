"""What a training step saves for backward, grouped by the line that created each tensor.

    python -m lemo.experiments.saved_breakdown OUT.json [--seq 8192]
        [--arms lora lemo:unbiased:k0.6:p0.5]

The accuracy bench's memory axis (`lemo.finetune.saved_step_mib_shapes`: one training step of
the GPU bench's 16-layer model on fake CPU tensors, no data, no memory) with each saved storage
attributed to the innermost two frames in lemo, peft or transformers that were running when
autograd saved it, and its dtype and shape. Per arm: the total MiB and the groups, largest first.
"""

from __future__ import annotations

import argparse
import collections
import sys
import traceback
from unittest import mock

import lemo.finetune
from lemo.experiments.accuracy_bench import AccuracyBenchConfig, arm_config
from lemo.finetune import saved_step_mib_shapes
from lemo.gpu_bench import build_model
from shared.cli import run
from shared.errors import ConfigError
from shared.io import atomic_write_json
from shared.memory import SavedTensorMeter, storage_key

_OWN = ("/lemo/", "/peft/", "/transformers/")


class SiteMeter(SavedTensorMeter):
    """A `SavedTensorMeter` that also adds each new storage's bytes to `sites[label]`."""

    sites: collections.Counter = collections.Counter()

    def _pack(self, t):
        counted = len(self._seen)
        out = super()._pack(t)
        if len(self._seen) > counted:  # the meter counted a new storage
            key = storage_key(t)
            frames = [f for f in traceback.extract_stack()[:-1]
                      if any(s in f.filename for s in _OWN) and "memory.py" not in f.filename]
            site = " < ".join(f"{f.filename.split('/')[-1]}:{f.lineno} {f.name}"
                              for f in frames[-2:][::-1])
            SiteMeter.sites[f"{site} | {str(t.dtype)[6:]} {tuple(t.shape)}"] += key[1]
        return out


def breakdown(seq: int, arms: list[str]) -> dict:
    cfg = AccuracyBenchConfig()
    model = build_model(cfg.saved_model, seq, "meta", cfg.lora.r, cfg.lora.alpha)
    out = {}
    with mock.patch.object(lemo.finetune, "SavedTensorMeter", SiteMeter):
        for arm in arms:
            SiteMeter.sites = collections.Counter()
            mib = saved_step_mib_shapes(model, seq, cfg.saved_model.vocab_size,
                                        {arm: arm_config(arm, cfg.block_size,
                                                         cfg.saved_dense_first)})[arm]
            out[arm] = {"mib": mib, "groups": [{"site": k, "mib": v / 2**20}
                                               for k, v in SiteMeter.sites.most_common()]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--seq", type=int, default=8192)
    p.add_argument("--arms", nargs="+", default=["lora", "lemo:unbiased:k0.6:p0.5"])
    args = p.parse_args(argv)
    block = AccuracyBenchConfig().block_size
    if args.seq < 1 or args.seq % block:
        raise ConfigError(f"--seq must be a positive multiple of the block size {block}, "
                          f"got {args.seq}")
    res = {"seq_len": args.seq, "method": "fake CPU tensors (saved_step_mib_shapes)",
           "arms": breakdown(args.seq, args.arms)}
    atomic_write_json(args.out, res)
    for arm, r in res["arms"].items():
        print(f"{arm}: {r['mib']:.1f} MiB")
        for g in r["groups"][:15]:
            print(f"  {g['mib']:9.1f} MiB  {g['site']}")
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
