"""`python -m lemo.train`: long-context LoRA fine-tuning with LeMo token elimination.

Recipe: load the model (`model.path` or the embedded pretrained byte-level LM) -> `apply_lemo`
-> peft LoRA -> (scorer=predictor: fit pattern predictors with the LM frozen) -> AdamW on the
LoRA weights, constant lr after warm-up (the paper's AE schedule) -> adapter + predictors saved
in the run dir. Checkpoints every `save_every` steps; rerunning with the same `--out` resumes
(under the same config but for `RESUME_FREE`: `check_resume`).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from lemo.config import PredictorConfig, TrainConfig
from lemo.data import load_text
from lemo.distributed import (
    DistEnv,
    cleanup,
    full_trainable_state,
    has_checkpoint,
    init_distributed,
    load_checkpoint,
    save_checkpoint,
    shared_run_dir,
    wrap_for_training,
)
from lemo.finetune import build_finetune_model, finetune, make_optimizer, predictor_batches
from lemo.patch import lemo_layers
from lemo.predictor import PREDICTORS_FILE, fit_predictors, save_predictors
from shared.cli import parse_args, run
from shared.config import save_config, to_dict
from shared.errors import ConfigError, DataError
from shared.io import (
    Checkpointer,
    atomic_write_csv,
    atomic_write_json,
)
from shared.io import check_resume as shared_check_resume
from shared.log import get_logger
from shared.runtime import pick_device, set_seed

__all__ = ["main"]

log = get_logger("lemo.train")

DESCRIPTION = """Fine-tune a causal LM with LoRA and LeMo contextual token sparsity.

Each eliminating layer keeps only the most informative 64-token blocks in its attention block,
so dropped tokens' activations are never saved for backward; MLP saved-channel pruning and the
segment-based loss cut the rest of the activation peak. Set lemo.enabled=false for plain LoRA.

examples:
  python -m lemo.train --config configs/lemo/tiny.yaml --out runs/lemo/tiny
  python -m lemo.train --config configs/lemo/tiny.yaml --set lemo.keep_ratio=0.3 --set steps=50
  python -m lemo.train --set model.path=/path/to/hf_checkpoint --set data.train_path=data.jsonl
"""


def _save_adapter(model, run_dir: Path, lora_state: dict | None = None) -> None:
    """peft adapter dir, atomically; `lora_state` (peft-format keys) when gathered from ranks."""
    tmp, final = run_dir / ".adapter.tmp", run_dir / "adapter"
    shutil.rmtree(tmp, ignore_errors=True)
    if lora_state is None:
        model.save_pretrained(str(tmp))
    else:
        from safetensors.torch import save_file

        tmp.mkdir(parents=True)
        model.peft_config["default"].save_pretrained(str(tmp))
        save_file({k: v.contiguous() for k, v in lora_state.items()},
                  str(tmp / "adapter_model.safetensors"))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv, TrainConfig, prog="lemo.train", description=DESCRIPTION,
                           quick={"steps": 10},
                           default_config="configs/lemo/tiny.yaml")
    set_seed(cfg.seed)
    env = init_distributed(cfg.distributed, pick_device(cfg.device))
    done = False
    try:
        rc = _train(args, cfg, env)
        done = True
        return rc
    finally:
        cleanup(env, barrier=done)


# what a resumed run may change: the step budget (constant rate after warm-up), logging and
# checkpoint frequency, the device and the DDP/FSDP2 strategy (the LoRA state and its sharded
# checkpoints load onto any, on any number of ranks), recomputation in backward, the
# validation text, and in `lemo` evaluation only and CUDA graphs (same steps, faster)
RESUME_FREE = ("steps", "log_every", "save_every", "device", "distributed", "grad_checkpointing",
               "data.val_path", "lemo.eliminate_in_eval", "lemo.cuda_graph_max_tokens")


def check_resume(run_dir: Path, cfg: TrainConfig, distributed: bool = False) -> None:
    """A run dir holding a checkpoint (single-file or sharded) resumes only under the config it
    was trained with (its config.yaml), but for `RESUME_FREE`: resuming under another one, e.g.
    a run of an earlier default, would mix two settings in one run and overwrite its
    config.yaml with the second. Every rank reads the same file before rank 0 rewrites it
    (atomically, with the same training keys). `distributed` (under torchrun): a single-file
    checkpoint alone is refused, since torchrun reads sharded checkpoints only and would start
    again from step 0."""
    ckpt = Checkpointer(run_dir)
    sharded = has_checkpoint(run_dir)
    single = any(os.path.lexists(p) for p in (ckpt.path, ckpt.prev))
    shared_check_resume(run_dir, cfg, RESUME_FREE, resuming=sharded or single)
    if distributed and single and not sharded:
        raise ConfigError(f"--out {run_dir}: its checkpoint was written by one process; "
                          "resume it without torchrun or use another --out")


def _train(args, cfg: TrainConfig, env: DistEnv) -> int:
    if args.out is not None:  # an existing run dir: before the model loads (nothing printed)
        check_resume(Path(args.out), cfg, env.active)
    device = env.device
    tokens = load_text(cfg.data.train_path, "train", cfg.data.text_key, cfg.data.max_corpus_bytes)
    if len(tokens) <= cfg.data.seq_len:
        raise DataError(f"training text has {len(tokens)} bytes, fewer than data.seq_len="
                        f"{cfg.data.seq_len}")
    model = build_finetune_model(cfg, device)  # checks the model (path, type, RoPE) before any file
    run_dir = shared_run_dir(args.out, env)
    if env.is_main:
        save_config(cfg, run_dir / "config.yaml")
    # One process without a distributed checkpoint: a single-file Checkpointer. Under torchrun,
    # or resuming a run that was checkpointed by several ranks: sharded DCP checkpoints.
    sharded = env.active or has_checkpoint(run_dir)
    ckpt = Checkpointer(run_dir)
    train_module, opt, state = None, None, None
    if sharded:
        train_module = wrap_for_training(model, env, cfg.lemo.segment_size)
        opt = make_optimizer(model, cfg)
        state = load_checkpoint(run_dir, model, opt, env)
    else:
        state = ckpt.load()
        if state is not None:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(model, state["lora"])
    if state is not None:
        log.info("resuming from step %d in %s", state["step"], run_dir)
    predictors = {}
    if cfg.lemo.enabled and cfg.lemo.scorer == "predictor":
        if state is not None and "predictors" in state:
            predictors = state["predictors"]
        else:
            pcfg = cfg.predictor or PredictorConfig()
            info = fit_predictors(model, predictor_batches(tokens, cfg, pcfg.windows,
                                                           cfg.seed + 1, device), pcfg)
            log.info("pattern predictors: %s", info)
            predictors = {m.layer_idx: m.predictor for m in lemo_layers(model) if m.predictor}
        for m in lemo_layers(model):
            m.set_predictor(predictors.get(m.layer_idx))

    from peft import get_peft_model_state_dict

    def save(st: dict) -> None:
        if sharded:
            meta = {k: v for k, v in st.items() if k != "opt"}
            save_checkpoint(run_dir, model, opt, {**meta, "predictors": predictors}, env)
        else:
            ckpt.save({**st, "lora": get_peft_model_state_dict(model), "predictors": predictors})

    def on_step(st: dict) -> None:
        if cfg.save_every and st["step"] % cfg.save_every == 0 and st["step"] < cfg.steps:
            save(st)

    t0 = time.perf_counter()
    state = finetune(model, tokens, cfg, device, state, on_step, opt=opt,
                     train_module=train_module, env=env)
    elapsed = time.perf_counter() - t0
    save(state)
    if sharded:
        lora_state = full_trainable_state(model, env)  # a collective: every rank takes part
        if env.is_main:
            _save_adapter(model, run_dir, get_peft_model_state_dict(model, state_dict=lora_state))
    elif env.is_main:
        _save_adapter(model, run_dir)
    if not env.is_main:
        return 0
    if predictors:
        save_predictors(predictors, run_dir / PREDICTORS_FILE)
    losses = state["losses"]
    atomic_write_csv(run_dir / "metrics.csv",
                     [{"step": i + 1, "loss": v} for i, v in enumerate(losses)])
    summary = {"steps": state["step"], "final_loss": float(np.mean(losses[-10:])) if losses
               else math.nan, "seconds_this_run": elapsed, "world_size": env.world_size,
               "strategy": env.strategy, "config": to_dict(cfg), "command": " ".join(sys.argv)}
    atomic_write_json(run_dir / "summary.json", summary)
    log.info("done: %d steps, final loss %.4f -> %s", state["step"], summary["final_loss"], run_dir)
    return 0


if __name__ == "__main__":
    run(main)
