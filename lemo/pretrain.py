"""`python -m lemo.pretrain`: pretrain the embedded byte-level LM that `lemo` fine-tunes.

Recipe (the `model.pretrain_*` fields of `ModelConfig`): a Llama-shaped byte LM, randomly
initialised with `pretrain_seed`, trained on `pretrain_batch` x `pretrain_seq_len` windows of the
Python standard library's train split (`shared.text`); a `pretrain_passkey_mix` share of the
windows are passkey-retrieval examples at the pretraining length (`lemo.data`), so the LM can
already retrieve before its context is extended. AdamW (β 0.9/0.95, weight decay 0.1), linear
warm-up then cosine decay to 10%, grad-norm clip 1.0; bf16 autocast on CUDA.

Output (run dir): `<key>.pt`, the state dict in `store_dtype`, and `<key>.json`, the record
(model config, key, command, versions, loss curve summary, held-out perplexity and passkey
accuracy at the pretraining length). `--install` also copies both into `lemo/weights/`, where
`lemo.models.load_model` finds them for every config with the same key. Checkpoints every
`save_every` steps; rerun with the same `--out` to resume (under the same config but for
`RESUME_FREE`: the cosine decay spans `model.pretrain_steps`).
"""

from __future__ import annotations

import math
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from lemo.config import ModelConfig
from lemo.data import finetune_batch, make_passkey_batch, passkey_accuracy
from lemo.finetune import clipped_step
from shared.cli import build_parser, parse_args, run
from shared.config import save_config, to_dict
from shared.errors import ConfigError
from shared.io import (
    Checkpointer,
    atomic_path,
    atomic_torch_save,
    atomic_write_json,
    check_resume,
    make_run_dir,
)
from shared.log import get_logger, progress
from shared.runtime import pick_device, versions
from shared.text import evaluate_perplexity, load_corpus

__all__ = ["PretrainConfig", "pretrain_embedded", "main"]

log = get_logger("lemo.pretrain")

DESCRIPTION = """Pretrain the embedded byte-level LM (shape and recipe: the model.* fields) on the
Python standard library's sources, with passkey-retrieval examples mixed in, and write its
weights + a JSON record named by the config key. --install copies them into lemo/weights/,
where every lemo recipe with the same model config loads them instead of pretraining.

examples:
  python -m lemo.pretrain --device cuda --out runs/lemo/pretrain --install
  python -m lemo.pretrain --set model.pretrain_steps=200 --set model.hidden_size=128 --device cpu
"""


@dataclass
class PretrainConfig:
    """`python -m lemo.pretrain` (the recipe itself is `model.pretrain_*`)."""

    device: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    amp: bool = True  # bf16 autocast on CUDA (weights and optimizer stay float32)
    store_dtype: Literal["float16", "bfloat16", "float32"] = "float16"  # of the weights file
    log_every: int = 100
    save_every: int = 500  # checkpoint (resume) every N steps
    eval_windows: int = 16  # held-out perplexity windows at pretrain_seq_len
    passkey_trials: int = 100  # passkey accuracy at pretrain_seq_len

    def validate(self) -> None:
        if self.model.path is not None:
            raise ValueError("model.path is set: lemo.pretrain builds the embedded LM only")


# what a resumed run may change: logging, checkpoint frequency, the final evaluation and the
# stored dtype of the weights file
RESUME_FREE = ("log_every", "save_every", "eval_windows", "passkey_trials", "store_dtype")


def _lr_at(step: int, cfg: ModelConfig) -> float:
    warm = max(1, min(cfg.pretrain_warmup, cfg.pretrain_steps))
    if step < warm:
        return cfg.pretrain_lr * (step + 1) / warm
    t = (step - warm) / max(1, cfg.pretrain_steps - warm)
    return cfg.pretrain_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def lm_step(model, x: torch.Tensor, opt: torch.optim.Optimizer, autocast, step: int,
            lr_key: str) -> torch.Tensor:
    """One next-token pretraining step on token ids x (B, T): loss under `autocast`, a DataError
    naming `lr_key` when it is not finite, gradients clipped to norm 1. Returns the loss."""
    with autocast:
        loss = model(input_ids=x, labels=x).loss
    clipped_step(loss, opt, model.parameters(), step,
                 f"pretraining loss is {{loss}} at step {{step}} (lower {lr_key})")
    return loss


def pretrain_embedded(model: torch.nn.Module, cfg: ModelConfig, device: str,
                      state: dict | None = None, on_step=None, amp: bool = True) -> dict:
    """Run (or resume from `state`) the pretraining recipe of `cfg` on `model` (a HF causal
    LM, moved to `device`). Returns the state (step, losses, optimizer, rng); `on_step(state)`
    is called after every step. Batches: (pretrain_batch, pretrain_seq_len) int64 bytes."""
    tokens = load_corpus("train", max_bytes=cfg.pretrain_corpus_bytes)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, betas=(0.9, 0.95),
                            weight_decay=0.1)
    rng = np.random.default_rng(cfg.pretrain_seed)
    state = state or {"step": 0, "losses": []}
    if "opt" in state:
        opt.load_state_dict(state["opt"])
    if "rng" in state:
        rng.bit_generator.state = state["rng"]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16,
                              enabled=amp and device.startswith("cuda"))
    bar = progress(range(state["step"], cfg.pretrain_steps), desc="pretrain", leave=False,
                   initial=state["step"], total=cfg.pretrain_steps)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        x = torch.from_numpy(finetune_batch(tokens, cfg.pretrain_seq_len, cfg.pretrain_batch,
                                            cfg.pretrain_passkey_mix, rng)).to(device)
        loss = lm_step(model, x, opt, autocast, step, "model.pretrain_lr")
        state["losses"].append(loss.item())
        state.update(step=step + 1, rng=rng.bit_generator.state, opt=opt.state_dict())
        if hasattr(bar, "set_postfix") and step % 20 == 0:
            bar.set_postfix(loss=f"{state['losses'][-1]:.3f}")
        if on_step:
            on_step(state)
    return state


def main(argv: list[str] | None = None) -> int:
    from lemo.models import WEIGHTS_DIR, build_model, embedded_key

    parser = build_parser("lemo.pretrain", DESCRIPTION, default_config=None)
    parser.add_argument("--install", action="store_true",
                        help="also copy <key>.pt/.json into lemo/weights/ (the shipped LM)")
    args, cfg = parse_args(argv, PretrainConfig, prog="lemo.pretrain", description=DESCRIPTION,
                           parser=parser)
    mc = cfg.model
    if mc.rope_scaling_factor != 1.0:
        raise ConfigError("model.rope_scaling_factor applies when fine-tuning; pretraining "
                          "runs unscaled (leave it at 1.0)")
    if args.out is not None:  # an existing run: before its config.yaml and the model
        check_resume(args.out, cfg, RESUME_FREE)
    device = pick_device(cfg.device)
    key = embedded_key(mc)
    run_dir = make_run_dir(args.out, "lemo", "pretrain")
    save_config(cfg, run_dir / "config.yaml")
    ckpt = Checkpointer(run_dir)
    model = build_model(mc, mc.pretrain_seed)
    state = ckpt.load()
    if state is not None:
        model.load_state_dict(state.pop("model"))
        log.info("resuming at step %d", state["step"])

    def on_step(st: dict) -> None:
        step = st["step"]
        if cfg.log_every and step % cfg.log_every == 0:
            log.info("step %d/%d loss %.4f", step, mc.pretrain_steps, st["losses"][-1])
        if cfg.save_every and step % cfg.save_every == 0 and step < mc.pretrain_steps:
            ckpt.save({**st, "model": model.state_dict()})

    log.info("pretraining %s (key %s) on %s", to_dict(mc), key, device)
    t0 = time.perf_counter()
    state = pretrain_embedded(model, mc, device, state, on_step, amp=cfg.amp)
    seconds = time.perf_counter() - t0
    ckpt.save({**state, "model": model.state_dict()})

    model.eval()
    val = load_corpus("val", max_bytes=4_000_000)
    ppl = evaluate_perplexity(model, val, mc.pretrain_seq_len, cfg.eval_windows, device)
    keys = make_passkey_batch(cfg.passkey_trials, mc.pretrain_seq_len,
                              np.random.default_rng(mc.pretrain_seed + 7))
    pk = passkey_accuracy(model, keys, batch_size=16, device=device)
    losses = state["losses"]
    dtype = getattr(torch, cfg.store_dtype)
    weights = {k: v.detach().to("cpu", dtype) for k, v in model.state_dict().items()}
    record = {
        "key": key, "model": to_dict(mc), "command": " ".join(["python -m lemo.pretrain",
                                                               *sys.argv[1:]]),
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else platform.machine(),
        "versions": versions(), "python": platform.python_version(),
        "store_dtype": cfg.store_dtype, "amp": cfg.amp, "seconds": seconds,
        "steps": state["step"], "loss_first10": float(np.mean(losses[:10])) if losses else None,
        "loss_last100": float(np.mean(losses[-100:])) if losses else None,
        "val_ppl_at_pretrain_len": ppl, "passkey_at_pretrain_len": pk,
        "passkey_trials": cfg.passkey_trials,
        "params": sum(p.numel() for p in model.parameters()),
    }
    atomic_torch_save(weights, run_dir / f"{key}.pt")
    atomic_write_json(run_dir / f"{key}.json", record)
    log.info("done: loss %.3f, held-out ppl %.3f and passkey %.2f at %d -> %s",
             record["loss_last100"] or math.nan, ppl, pk, mc.pretrain_seq_len, run_dir)
    if args.install:
        WEIGHTS_DIR.mkdir(exist_ok=True)
        for suffix in (".pt", ".json"):
            with atomic_path(WEIGHTS_DIR / f"{key}{suffix}") as tmp:
                shutil.copyfile(run_dir / f"{key}{suffix}", tmp)
        log.info("installed %s.pt/.json into %s", key, WEIGHTS_DIR)
    return 0


if __name__ == "__main__":
    run(main)
