"""`python -m lemo.experiments.rope_passkey OUT.json`: does linear RoPE scaling erase passkey
retrieval, and how many LoRA steps bring it back? (CPU, on the shipped embedded LM)

The accuracy bench's own pieces (`lemo.experiments.accuracy_bench`: `build_lm`, `to_bf16`,
`finetune_arm`, `curve_set`, `passkey_sets`, `evaluate`) on the shipped 2.5M-parameter byte LM,
which was pretrained at 512 bytes with passkey windows and retrieves there:
1. passkey accuracy at `--len` for every RoPE factor in `--factors`, in float32 and in bf16
   (`to_bf16`: RoPE frequencies kept float32) - no fine-tuning;
2. with `--finetune-steps N`: dense LoRA fine-tuned by `finetune_arm` at `--len` with RoPE
   x`--ft-factor` (stop rule: the bench's `ft_stop_passkey`), its passkey curve every
   `--curve-every` steps, then the bench's dense evaluation.

examples:
  python -m lemo.experiments.rope_passkey runs/lemo/rope_passkey.json
  python -m lemo.experiments.rope_passkey runs/lemo/rope_ft.json --factors 4 --finetune-steps 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lemo.config import ModelConfig
from lemo.experiments.accuracy_bench import (
    AccuracyBenchConfig,
    build_lm,
    curve_set,
    english_text,
    evaluate,
    finetune_arm,
    passkey_sets,
    to_bf16,
)
from lemo.models import load_model
from shared.io import atomic_write_json
from shared.text import load_corpus


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--len", type=int, default=512, dest="length")
    p.add_argument("--factors", default="1,2,4")
    p.add_argument("--finetune-steps", type=int, default=0)
    p.add_argument("--ft-factor", type=float, default=4.0)
    p.add_argument("--ft-batch", type=int, default=8)
    p.add_argument("--ft-lr", type=float, default=2e-3)
    p.add_argument("--passkey-mix", type=float, default=0.75)
    p.add_argument("--curve-every", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    n = args.length
    mc = ModelConfig()  # the shipped LM's config
    state = {k: v.clone() for k, v in load_model(mc).state_dict().items()}
    cfg = AccuracyBenchConfig(
        model=mc, device="cpu", pretrain_len=mc.pretrain_seq_len, ft_len=n,
        rope_factor=args.ft_factor, ft_steps=max(1, args.finetune_steps),
        ft_batch=args.ft_batch, ft_lr=args.ft_lr, ft_passkey_mix=args.passkey_mix,
        curve_every=args.curve_every, curve_per_depth=4, passkey_depths=4, passkey_lens=[n],
        passkey_per_depth=8, ppl_windows=4, eval_batch=8)
    val = load_corpus("val", max_bytes=n * (cfg.ppl_windows + 1) + 1)
    keys = passkey_sets(cfg)
    out: dict = {"length": n, "model": "shipped embedded LM", "no_finetuning": {}}
    for f in (float(x) for x in args.factors.split(",")):
        for dtype in ("float32", "bfloat16"):
            model = build_lm(cfg, f)
            model.load_state_dict(state)
            if dtype == "bfloat16":
                to_bf16(model)
            r = evaluate(model, cfg, val, keys, "cpu")
            out["no_finetuning"][f"x{f:g} {dtype}"] = {"passkey": r[f"passkey_{n}"],
                                                       "ppl": r["ppl"]}
            print(f"RoPE x{f:g} {dtype}: passkey {r[f'passkey_{n}']:.2f} ppl {r['ppl']:.2f}",
                  flush=True)
    if args.finetune_steps > 0:
        t0 = time.perf_counter()
        code = load_corpus("train", max_bytes=2_000_000)
        model, row = finetune_arm(state, "lora", cfg, code, english_text("train", 500_000),
                                  "cpu", None, curve_set(cfg))
        row.update(evaluate(model, cfg, val, keys, "cpu"))
        row["seconds"] = time.perf_counter() - t0
        row.pop("loss_curve")
        out["finetune"] = {"factor": args.ft_factor, "batch": args.ft_batch, "lr": args.ft_lr,
                           "passkey_mix": args.passkey_mix, **row}
        print(f"LoRA x{args.ft_factor:g}: {row['steps']} steps, curve {row['passkey_curve']}, "
              f"eval passkey {row[f'passkey_{n}']:.2f}", flush=True)
    out["passkey_examples"] = int(np.sum([len(b) for b in keys[n]]))
    atomic_write_json(args.out, out)


if __name__ == "__main__":
    main()
