"""Models: tiny HF configs built from `ModelConfig`, the embedded pretrained byte-level LM
(shipped in `lemo/weights/`, else pretrained here and cached), `from_pretrained` loading of any
supported checkpoint, linear RoPE scaling (position interpolation), and the peft LoRA adapter.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch
from torch import nn

from lemo.config import LoraConfig, ModelConfig
from lemo.patch import SUPPORTED
from shared.cache import cache_key, cached_file
from shared.errors import ConfigError, DataError
from shared.text import VOCAB_SIZE

__all__ = ["tiny_config", "rope_parameters", "build_model", "embedded_key", "embedded_model_file",
           "load_model", "add_lora", "attn_implementation", "WEIGHTS_DIR", "EMBEDDED_NAME"]

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"  # committed checkpoints (+ .json)
EMBEDDED_NAME = "lemo-tiny-lm"
_RECIPE_VERSION = 2  # bump when lemo.pretrain's recipe changes (invalidates cached and shipped)


def rope_parameters(theta: float, factor: float = 1.0) -> dict:
    """transformers 5 `rope_parameters`: default RoPE, or linear scaling (position interpolation:
    position p is rotated as p / factor) when factor > 1."""
    if factor == 1.0:
        return {"rope_type": "default", "rope_theta": theta}
    return {"rope_type": "linear", "rope_theta": theta, "factor": float(factor)}


def tiny_config(cfg: ModelConfig):
    """A transformers config of the requested family with byte vocab (256) and no dropout."""
    from transformers import (
        LlamaConfig,
        MistralConfig,
        OPTConfig,
        Phi3Config,
        Qwen2Config,
        Qwen3Config,
    )

    common = dict(vocab_size=VOCAB_SIZE, hidden_size=cfg.hidden_size,
                  num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                  max_position_embeddings=cfg.max_position_embeddings, tie_word_embeddings=True)
    if cfg.arch == "opt":
        return OPTConfig(**common, ffn_dim=cfg.intermediate_size, dropout=0.0,
                         attention_dropout=0.0, activation_dropout=0.0,
                         word_embed_proj_dim=cfg.hidden_size, do_layer_norm_before=True,
                         pad_token_id=0, bos_token_id=0, eos_token_id=0)
    if cfg.arch in ("gemma2", "gemma3"):
        return _gemma_config(cfg, common)
    cls = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config,
           "qwen3": Qwen3Config, "phi3": Phi3Config}[cfg.arch]
    extra = {"sliding_window": None} if cfg.arch in ("mistral", "qwen2", "qwen3", "phi3") else {}
    if cfg.arch == "phi3":  # its defaults name token ids of a 32K vocabulary
        extra.update(pad_token_id=0, bos_token_id=0, eos_token_id=0, resid_pdrop=0.0,
                     embd_pdrop=0.0, attention_dropout=0.0)
    return cls(**common, **extra, num_key_value_heads=cfg.num_kv_heads,
               intermediate_size=cfg.intermediate_size,
               rope_parameters=rope_parameters(cfg.rope_theta, cfg.rope_scaling_factor))


def _gemma_config(cfg: ModelConfig, common: dict):
    """Gemma 2 (attention-logit soft-capping 50, final-logit 30, sliding / full layers
    alternating) or Gemma 3 text (q/k norms, five sliding layers per full one, a RoPE per layer
    type, no soft-capping), the families' own defaults except the shape and a byte vocab. The
    sliding window stays at the family default (4096): shorter than the input only where asked."""
    from transformers import Gemma2Config, Gemma3TextConfig

    head_dim = cfg.hidden_size // cfg.num_heads
    kw = dict(**common, num_key_value_heads=cfg.num_kv_heads, head_dim=head_dim,
              intermediate_size=cfg.intermediate_size, query_pre_attn_scalar=head_dim,
              pad_token_id=0, bos_token_id=0, eos_token_id=0, attention_dropout=0.0)
    if cfg.arch == "gemma2":
        return Gemma2Config(**kw, rope_parameters=rope_parameters(cfg.rope_theta,
                                                                   cfg.rope_scaling_factor))
    local = rope_parameters(cfg.rope_theta)
    return Gemma3TextConfig(**kw, rope_parameters={
        "sliding_attention": local,
        "full_attention": rope_parameters(cfg.rope_theta * 100, cfg.rope_scaling_factor)})


def attn_implementation(model_type: str) -> str:
    """sdpa, except Gemma 2 (its soft-capping needs HF's eager attention)."""
    return "eager" if model_type == "gemma2" else "sdpa"


def build_model(cfg: ModelConfig, seed: int = 0) -> nn.Module:
    """A randomly initialised tiny causal LM (sdpa attention, eager for Gemma 2; float32)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    hc = tiny_config(cfg)
    return AutoModelForCausalLM.from_config(hc, attn_implementation=attn_implementation(
        hc.model_type))


def _embedded_fields(cfg: ModelConfig) -> dict:
    """What defines the embedded LM: its shape and pretraining recipe (not `path`, not the
    fine-tuning-time `rope_scaling_factor`)."""
    fields = {**dataclasses.asdict(cfg), "path": None}
    fields.pop("rope_scaling_factor")
    return fields


def embedded_key(cfg: ModelConfig) -> str:
    """File stem of the embedded LM's weights, shipped (`lemo/weights/`) or cached."""
    return cache_key(EMBEDDED_NAME, _embedded_fields(cfg), _RECIPE_VERSION)


def embedded_model_file(cfg: ModelConfig, device: str = "cpu") -> Path:
    """Weights (a torch state-dict file) of the embedded LM: the committed
    `lemo/weights/<key>.pt` when its key matches `cfg`, else pretrained here by `lemo.pretrain`
    once and cached under the key (`pretrained=False`: saved at random init)."""
    key = embedded_key(cfg)
    shipped = WEIGHTS_DIR / f"{key}.pt"
    if shipped.is_file():
        return shipped

    def build(tmp: Path) -> None:
        from lemo.pretrain import pretrain_embedded

        model = build_model(dataclasses.replace(cfg, rope_scaling_factor=1.0), cfg.pretrain_seed)
        if cfg.pretrained and cfg.pretrain_steps > 0:
            log.warning("no shipped weights for this model config (key %s): pretraining the "
                        "embedded LM here (%d steps of %dx%d on %s) - cached afterwards", key,
                        cfg.pretrain_steps, cfg.pretrain_batch, cfg.pretrain_seq_len, device)
            pretrain_embedded(model, cfg, device)
            model.cpu()
        torch.save(model.state_dict(), tmp)

    return cached_file(EMBEDDED_NAME, _embedded_fields(cfg), build, suffix=".pt",
                       version=_RECIPE_VERSION)


def shipped_info(cfg: ModelConfig) -> dict | None:
    """The JSON record (config, command, versions, losses) of the committed weights for `cfg`."""
    meta = WEIGHTS_DIR / f"{embedded_key(cfg)}.json"
    return json.loads(meta.read_text()) if meta.is_file() else None


def load_model(cfg: ModelConfig, device: str = "cpu") -> nn.Module:
    """`cfg.path` (any supported HF save_pretrained dir) or the embedded pretrained LM, in train
    mode, float32, sdpa attention, on the CPU (`device`: where the embedded LM pretrains)."""
    if cfg.path is None:
        model = build_model(cfg, cfg.pretrain_seed)
        state = torch.load(embedded_model_file(cfg, device), map_location="cpu")
        model.load_state_dict({k: v.float() for k, v in state.items()})
        return model.train()
    from shared.validate import hf_config, strict_from_pretrained

    path = Path(cfg.path)
    if not (path / "config.json").is_file():
        raise DataError(f"model.path '{path}' is not a save_pretrained directory (no config.json)")
    source = f"model.path '{path}'"
    hf_cfg = hf_config(path, source)
    source = f"model.path '{path}' ({hf_cfg.model_type})"
    if hf_cfg.model_type not in SUPPORTED:
        raise ConfigError(f"model.path '{path}': model_type '{hf_cfg.model_type}' is not supported "
                          f"(supported: {', '.join(SUPPORTED)})")
    if cfg.rope_scaling_factor != 1.0:
        rp = getattr(hf_cfg, "rope_parameters", None)
        if not isinstance(rp, dict) or "rope_theta" not in rp:
            raise ConfigError(f"model.rope_scaling_factor: model.path '{path}' "
                              f"({hf_cfg.model_type}) has no RoPE to scale")
        if rp.get("rope_type", "default") != "default":
            raise ConfigError(f"model.rope_scaling_factor: model.path '{path}' already uses "
                              f"rope_type '{rp['rope_type']}'")
        hf_cfg.rope_parameters = {**rp, **rope_parameters(rp["rope_theta"],
                                                          cfg.rope_scaling_factor)}
    model = strict_from_pretrained(path, hf_cfg, source,
                                   attn_implementation=attn_implementation(hf_cfg.model_type),
                                   dtype=torch.float32)
    return model.train()


def set_checkpointing(model: nn.Module, on: bool) -> None:
    """HF activation (gradient) checkpointing, non-reentrant, on or off; `model` may be
    peft-wrapped. transformers >= 5.25 names it `activation_checkpointing_*` (the old
    `gradient_checkpointing_*` names warn there); older releases have only the old names.
    The checkpoint's first forward runs under `lemo.mlp.discarded_saves` (its saved tensors are
    dropped and recomputed for the backward), where LeMo's pruned MLPs skip their channel
    scoring; a model without them runs as before. torch.compile does not trace a checkpoint
    with such a `context_fn`: to compile, enable HF's checkpointing directly instead."""
    from lemo.mlp import checkpoint_contexts

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    kw = {"use_reentrant": False, "context_fn": checkpoint_contexts}
    if hasattr(base, "activation_checkpointing_enable"):
        if on:
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
        else:
            base.activation_checkpointing_disable()
    elif on:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
    else:
        base.gradient_checkpointing_disable()


def add_lora(model: nn.Module, cfg: LoraConfig) -> nn.Module:
    """peft LoRA on `cfg.targets` (OPT's o_proj is called out_proj, Phi-3's q/k/v_proj are one
    qkv_proj and gate/up_proj one gate_up_proj; mapped automatically)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = list(cfg.targets)
    mtype = getattr(model.config, "model_type", "")
    if mtype == "opt":
        targets = ["out_proj" if t == "o_proj" else t for t in targets]
    if mtype == "phi3":  # fused projections: q/k/v -> qkv_proj, gate/up -> gate_up_proj
        fused = {"q_proj": "qkv_proj", "k_proj": "qkv_proj", "v_proj": "qkv_proj",
                 "gate_proj": "gate_up_proj", "up_proj": "gate_up_proj"}
        targets = list(dict.fromkeys(fused.get(t, t) for t in targets))
    # LongLoRA's trainable embeddings and norms: peft trains a copy of every module named here
    # (the embedding and every *norm layer); weight tying keeps a tied lm_head the same copy.
    # Each norm's own name is listed: peft 0.22 matches a name only whole (after a "."), where
    # 0.21 matched any suffix, so "norm" alone would leave the per-layer norms frozen
    norms = sorted({n.rsplit(".", 1)[-1] for n, _ in model.named_modules()
                    if n.rsplit(".", 1)[-1].endswith("norm")})
    extra = dict(modules_to_save=["embed_tokens", *norms], ensure_weight_tying=True) \
        if cfg.train_embed_norm else {}
    pc = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM", **extra)
    try:
        return get_peft_model(model, pc)
    except ValueError as e:
        raise ConfigError(f"lora.targets {targets}: {e}") from None
