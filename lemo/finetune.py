"""LoRA fine-tuning with LeMo: the model a run trains and the training loop (paper §4, the AE's
schedule: AdamW on the LoRA weights, linear warm-up then constant lr, gradient clipping at 1).

`build_finetune_model(cfg, device)`: the loaded LM (`model.path` or the embedded byte LM) with
LeMo layers and a seeded peft LoRA adapter. `finetune(model, tokens, cfg, device)`: cfg.steps
steps on seeded windows of `tokens` (resumable from the state it returns). Used by the
`lemo.train` and `lemo.bench` recipes.
"""

from __future__ import annotations

import numpy as np
import torch

from lemo.config import TrainConfig
from lemo.data import finetune_batch
from lemo.distributed import DistEnv, mean_over_ranks, shard_batch
from lemo.loss import causal_lm_loss
from lemo.models import add_lora, load_model, set_checkpointing
from lemo.patch import apply_lemo, configure_lemo
from shared.errors import ConfigError, DataError
from shared.log import get_logger, progress
from shared.memory import SavedTensorMeter

__all__ = ["build_finetune_model", "predictor_batches", "make_optimizer", "finetune",
           "saved_step_mib", "saved_step_mib_shapes"]

log = get_logger("lemo.finetune")



def clipped_step(loss: torch.Tensor, opt: torch.optim.Optimizer, params, step: int,
                 fail: str) -> None:
    """One optimiser step on `loss` with gradients clipped to norm 1. A non-finite loss raises a
    DataError with `fail` (a template with {loss} and {step}) before any gradient is taken."""
    if not torch.isfinite(loss):
        raise DataError(fail.format(loss=float(loss), step=step))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()

def build_finetune_model(cfg: TrainConfig, device: str) -> torch.nn.Module:
    """Loaded LM with LeMo layers and a LoRA adapter (seeded), on `device`, in train mode."""
    model = load_model(cfg.model, device)
    apply_lemo(model, cfg.lemo)
    torch.manual_seed(cfg.seed)
    model = add_lora(model, cfg.lora)
    if cfg.grad_checkpointing:
        set_checkpointing(model, True)
    return model.to(device).train()


def predictor_batches(tokens: np.ndarray, cfg: TrainConfig, n: int, seed: int,
                      device: str) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(finetune_batch(tokens, cfg.data.seq_len, 1, cfg.data.passkey_mix,
                                            rng)).to(device) for _ in range(n)]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("no trainable parameters: check lora.targets")
    return torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)


def finetune(model: torch.nn.Module, tokens: np.ndarray, cfg: TrainConfig, device: str,
             state: dict | None = None, on_step=None, desc: str = "finetune",
             opt: torch.optim.Optimizer | None = None, train_module=None,
             env: DistEnv | None = None) -> dict:
    """Run (or resume from `state`) cfg.steps LoRA steps; return the state dict (step, losses,
    optimizer, rngs). `on_step(state)` is called after every step (checkpointing hook).

    Distributed (`lemo.distributed`): `train_module` is the DDP/FSDP-wrapped loss, `opt` was
    built after wrapping, and each rank trains on its `shard_batch` slice of the same global
    batch (every rank draws the global batch from the same seeded generator)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = opt or make_optimizer(model, cfg)
    env = env or DistEnv(device=device)
    rng = np.random.default_rng(cfg.seed)
    state = state or {"step": 0, "losses": []}
    if "opt" in state:
        opt.load_state_dict(state["opt"])
    if "rng" in state:
        rng.bit_generator.state = state["rng"]
    for step in progress(range(state["step"], cfg.steps), desc=desc, leave=False,
                         initial=state["step"], total=cfg.steps):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
        x = torch.from_numpy(finetune_batch(tokens, cfg.data.seq_len, cfg.data.batch_size,
                                            cfg.data.passkey_mix, rng)).to(device)
        x = shard_batch(x, env)
        if train_module is not None:
            loss = train_module(x)
        else:
            loss = causal_lm_loss(model, x, segment=cfg.lemo.segment_size)
        clipped_step(loss, opt, params, step, "loss is {loss} at step {step} (lower lr or check "
                     "the data)")
        state["losses"].append(mean_over_ranks(loss, env))
        state.update(step=step + 1, rng=rng.bit_generator.state)
        if not env.active:  # distributed runs checkpoint the optimizer through DCP
            state["opt"] = opt.state_dict()
        if cfg.log_every and (step + 1) % cfg.log_every == 0:
            log.info("step %d/%d loss %.4f", step + 1, cfg.steps, state["losses"][-1])
        if on_step:
            on_step(state)
    return state


def saved_step_mib(model: torch.nn.Module, x: torch.Tensor, lc) -> float:
    """MiB that autograd saves (parameters excluded) for one training step of `model`,
    reconfigured with the LeMo config `lc`, on token ids x; gradients are cleared after."""
    configure_lemo(model, lc)
    with SavedTensorMeter(exclude=list(model.parameters())) as meter:
        loss = causal_lm_loss(model, x, segment=lc.segment_size)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return meter.bytes / 2**20


# HF's sdpa attention with the causal mask always skipped (`is_causal=True`), as it skips it in an
# eager run on unpadded inputs; under fake tensors it cannot read the inputs, so it would build an
# s x s mask (and repeat k/v over the GQA groups) that the real step never saves.
CAUSAL_SDPA = "lemo_causal_sdpa"


class _StepLoss(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.segment = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return causal_lm_loss(self.model, x, segment=self.segment)


def saved_step_mib_shapes(model: torch.nn.Module, seq_len: int, vocab_size: int,
                          lcs: dict) -> dict:
    """`saved_step_mib` without running the step: the same training step on fake CPU tensors
    (`torch._subclasses.FakeTensorMode`: shapes, dtypes and dispatch of CPU tensors, no data,
    no memory), so a 16K step of a 1B-parameter model costs seconds on any machine. `model`:
    built on the meta device (`lemo.gpu_bench.build_model(..., "meta", ...)`), a Llama-style
    causal LM with sdpa attention; `lcs`: name -> LeMo config. Counted by `SavedTensorMeter`,
    whose `storage_key` tells fake storages apart by identity (they have no data pointer). Only
    selections whose kept count follows from the shapes (top-k at a keep ratio, MLP pruning,
    S2-Attn) can be measured: the threshold rule's kept count depends on the data and raises.
    Returns name -> MiB (batch 1)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.func import functional_call
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    AttentionInterface.register(CAUSAL_SDPA, sdpa_attention_forward)
    AttentionMaskInterface.register(CAUSAL_SDPA, lambda *args, **kwargs: None)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    impl = base.config._attn_implementation
    base.set_attn_implementation(CAUSAL_SDPA)
    step = _StepLoss(model)
    out = {}
    try:
        with FakeTensorMode():
            state = {}
            for name, t in [*step.named_parameters(), *step.named_buffers()]:
                fake = torch.empty(t.shape, dtype=t.dtype, device="cpu")
                state[name] = fake.requires_grad_(t.requires_grad) if t.is_floating_point() \
                    else fake
            x = torch.empty(1, seq_len, dtype=torch.long).random_(0, vocab_size)
            for name, lc in lcs.items():
                configure_lemo(model, lc)
                step.segment = lc.segment_size
                with SavedTensorMeter(exclude=state.values()) as meter:
                    loss = functional_call(step, state, (x,))
                loss.backward()
                for t in state.values():
                    t.grad = None
                out[name] = meter.bytes / 2**20
    finally:
        base.set_attn_implementation(impl)
    return out
