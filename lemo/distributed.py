"""Data-parallel (DDP) and sharded (FSDP2 `fully_shard`) LeMo fine-tuning under `torchrun`.

PyTorch's own engine does the work; this module only wires LeMo's training step into it:
- `init_distributed` reads torchrun's env (RANK, WORLD_SIZE, LOCAL_RANK), starts the process
  group (NCCL on CUDA, gloo on CPU) and returns a `DistEnv`; without torchrun it is a no-op.
- `LossModule` puts the whole loss (decoder + segmented lm_head/CE, `lemo.loss.causal_lm_loss`)
  inside one `forward`, so DDP's gradient all-reduce and FSDP2's root unshard hooks see it.
- `wrap_for_training` wraps it in DDP, or applies `fully_shard` to every decoder layer and the
  root. Token elimination runs per rank on that rank's own sequences.
- `shard_batch` gives each rank its slice of the global batch, so N ranks with the same global
  batch follow the single-process loss trajectory (up to float reduction order).
- `save_checkpoint` / `load_checkpoint` use `torch.distributed.checkpoint` (DCP) with the
  `get_/set_{model,optimizer}_state_dict` helpers: trainable (LoRA) weights and optimizer state
  are saved sharded by all ranks and can be loaded on any number of ranks, one included.

NVLink multicast stays off in every process (NCCL_NVLS_ENABLE=0,
TORCH_SYMM_MEM_DISABLE_MULTICAST=1), as the project's GPU machines require.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.distributed as dist

from lemo.loss import causal_lm_loss
from shared.errors import ConfigError, DataError
from shared.io import atomic_torch_save

__all__ = ["DistEnv", "init_distributed", "LossModule", "wrap_for_training", "shard_batch",
           "mean_over_ranks", "save_checkpoint", "load_checkpoint", "has_checkpoint",
           "full_trainable_state", "shared_run_dir", "decoder_layers", "cleanup"]

Strategy = Literal["ddp", "fsdp"]
_CKPT = "dcp"


@dataclass
class DistEnv:
    """Where this process sits. `world_size == 1` means no process group was started."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    strategy: str = "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(strategy: Strategy, device: str) -> DistEnv:
    """Start the process group when launched by torchrun (WORLD_SIZE > 1), else a no-op.

    `device` is the already-resolved device ('cpu' or 'cuda'); on CUDA each rank takes
    cuda:LOCAL_RANK. Non-main ranks log warnings only and show no progress bars.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv(device=device)
    if strategy not in ("ddp", "fsdp"):
        raise ConfigError(f"distributed.strategy '{strategy}' is not one of ddp, fsdp")
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    if rank != 0:
        logging.getLogger().setLevel(logging.WARNING)
        os.environ["PROGRESS"] = "0"
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=device,
                   strategy=strategy)


def shared_run_dir(out: str | None, env: DistEnv) -> Path:
    """The run dir; without --out rank 0 picks the timestamped name and tells the others."""
    from shared.io import make_run_dir

    if not env.active or out is not None:
        return make_run_dir(out, "lemo", "train")
    box = [str(make_run_dir(None, "lemo", "train")) if env.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def cleanup(env: DistEnv, barrier: bool = False) -> None:
    """Destroy the process group. `barrier` (the success path: every rank gets here): wait for
    all ranks first, so that no rank tears down its connections while a peer still completes the
    last collective (under load, gloo then aborted the process: "terminate called without an
    active exception"). Not after an error: the other ranks may never arrive."""
    if env.active and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


class LossModule(torch.nn.Module):
    """`forward(input_ids) -> scalar loss` around a (peft) causal LM, for DDP/FSDP wrapping."""

    def __init__(self, model: torch.nn.Module, segment: int):
        super().__init__()
        self.model = model
        self.segment = segment

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return causal_lm_loss(self.model, input_ids, segment=self.segment)


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The decoder blocks of a HF causal LM (`...layers` ModuleList: Llama family and OPT)."""
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and name.endswith("layers") and len(mod):
            return list(mod)
    raise ConfigError("could not find the decoder layers (a ModuleList named '*layers') to shard")


def wrap_for_training(model: torch.nn.Module, env: DistEnv, segment: int) -> torch.nn.Module:
    """LossModule(model), wrapped per `env.strategy`; unwrapped in a single process."""
    loss_module = LossModule(model, segment)
    if not env.active:
        return loss_module
    if env.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [env.local_rank] if env.device.startswith("cuda") else None
        return DDP(loss_module, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(model):
        fully_shard(layer)
    fully_shard(loss_module)
    return loss_module


def shard_batch(x: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """This rank's rows of the global batch `x` (b, s); b must divide by the world size."""
    if not env.active:
        return x
    b = x.shape[0]
    if b % env.world_size:
        raise ConfigError(f"data.batch_size {b} (the global batch) is not divisible by the "
                          f"{env.world_size} ranks")
    per = b // env.world_size
    return x[env.rank * per:(env.rank + 1) * per]


def mean_over_ranks(value: torch.Tensor, env: DistEnv) -> float:
    """The global-batch mean of a per-rank mean (equal shards), as a python float."""
    if not env.active:
        return value.item()
    t = value.detach().clone().float()
    dist.all_reduce(t)
    return t.item() / env.world_size


def _state_dicts(model: torch.nn.Module, opt: torch.optim.Optimizer):
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(ignore_frozen_params=True)
    return {"model": get_model_state_dict(model, options=options),
            "optim": get_optimizer_state_dict(model, opt, options=options)}, options


def full_trainable_state(model: torch.nn.Module, env: DistEnv) -> dict:
    """Unsharded trainable (LoRA) weights on CPU, gathered from all ranks (a collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(ignore_frozen_params=True, full_state_dict=env.active,
                               cpu_offload=True)
    return get_model_state_dict(model, options=options)


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / _CKPT / "meta.pt").exists()


def save_checkpoint(run_dir: str | Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    meta: dict, env: DistEnv) -> None:
    """Sharded save of trainable weights + optimizer state (+ rank 0's `meta`), atomically.

    All ranks write into `dcp.tmp/`; after a barrier rank 0 adds meta.pt and renames it to
    `dcp/` (the previous checkpoint is replaced only once the new one is complete).
    """
    import torch.distributed.checkpoint as dcp

    run_dir = Path(run_dir)
    tmp, final = run_dir / f"{_CKPT}.tmp", run_dir / _CKPT
    if env.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
    if env.active:
        dist.barrier()
    state, _ = _state_dicts(model, opt)
    dcp.save(state, checkpoint_id=str(tmp))
    if env.active:
        dist.barrier()
    if env.is_main:
        atomic_torch_save(meta, tmp / "meta.pt")
        old = run_dir / f"{_CKPT}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    if env.active:
        dist.barrier()


def load_checkpoint(run_dir: str | Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    env: DistEnv) -> dict | None:
    """Load a checkpoint saved on any number of ranks into this run's ranks; returns meta."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    path = Path(run_dir) / _CKPT
    if not (path / "meta.pt").exists():
        return None
    state, options = _state_dicts(model, opt)
    try:
        dcp.load(state, checkpoint_id=str(path))
        meta = torch.load(path / "meta.pt", map_location="cpu", weights_only=False)
    except Exception as e:
        raise DataError(f"{path}: unreadable distributed checkpoint ({e})") from None
    # strict=False: the frozen base weights are not in the checkpoint by design; every trainable
    # key was requested from DCP above, which fails on any that is missing.
    load_options = StateDictOptions(ignore_frozen_params=True, strict=False)
    set_model_state_dict(model, state["model"], options=load_options)
    set_optimizer_state_dict(model, opt, state["optim"], options=load_options)
    return meta
