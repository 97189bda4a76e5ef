"""Models: tiny HF configs built from `ModelConfig`, the embedded pretrained byte-level LM (cached),
`from_pretrained` loading of any supported checkpoint, and the peft LoRA adapter.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch import nn

from lemo.config import LoraConfig, ModelConfig
from lemo.patch import SUPPORTED
from shared.cache import cached_file
from shared.errors import ConfigError, DataError
from shared.text import VOCAB_SIZE, load_corpus, pretrain_causal_lm

__all__ = ["tiny_config", "build_model", "embedded_model_file", "load_model", "add_lora"]

log = logging.getLogger(__name__)


def tiny_config(cfg: ModelConfig):
    """A transformers config of the requested family with byte vocab (256) and no dropout."""
    from transformers import LlamaConfig, MistralConfig, OPTConfig, Qwen2Config

    common = dict(vocab_size=VOCAB_SIZE, hidden_size=cfg.hidden_size,
                  num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                  max_position_embeddings=cfg.max_position_embeddings, tie_word_embeddings=True)
    if cfg.arch == "opt":
        return OPTConfig(**common, ffn_dim=cfg.intermediate_size, dropout=0.0,
                         attention_dropout=0.0, activation_dropout=0.0,
                         word_embed_proj_dim=cfg.hidden_size, do_layer_norm_before=True,
                         pad_token_id=0, bos_token_id=0, eos_token_id=0)
    cls = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config}[cfg.arch]
    extra = {"sliding_window": None} if cfg.arch in ("mistral", "qwen2") else {}
    return cls(**common, **extra, num_key_value_heads=cfg.num_kv_heads,
               intermediate_size=cfg.intermediate_size,
               rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta})


def build_model(cfg: ModelConfig, seed: int = 0) -> nn.Module:
    """A randomly initialised tiny causal LM (sdpa attention, float32)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(cfg), attn_implementation="sdpa")


def embedded_model_file(cfg: ModelConfig, seed: int = 0, device: str = "cpu") -> Path:
    """Cached weights (a torch file) of the tiny LM pretrained on the stdlib corpus, built once
    under a key of the model config (`pretrained=False`: saved at random init)."""
    key = {**dataclasses.asdict(cfg), "path": None, "seed": seed}

    def build(tmp: Path) -> None:
        model = build_model(cfg, seed)
        if cfg.pretrained and cfg.pretrain_steps > 0:
            log.info("pretraining the embedded %s LM (%d steps, seq %d) - cached afterwards",
                     cfg.arch, cfg.pretrain_steps, cfg.pretrain_seq_len)
            losses = pretrain_causal_lm(model, load_corpus("train", max_bytes=8_000_000),
                                        cfg.pretrain_steps, cfg.pretrain_seq_len,
                                        cfg.pretrain_batch, lr=cfg.pretrain_lr, seed=seed,
                                        warmup=min(50, cfg.pretrain_steps // 10),
                                        device=device)
            model.cpu()
            log.info("pretraining loss %.3f -> %.3f", losses[0], losses[-1])
        torch.save(model.state_dict(), tmp)

    return cached_file("lemo-tiny-lm", key, build, suffix=".pt", version=1)


def load_model(cfg: ModelConfig, seed: int = 0, device: str = "cpu") -> nn.Module:
    """`cfg.path` (any supported HF save_pretrained dir) or the embedded pretrained LM, in train
    mode, float32, sdpa attention, on the CPU (`device`: where the embedded LM pretrains)."""
    if cfg.path is None:
        model = build_model(cfg, seed)
        model.load_state_dict(torch.load(embedded_model_file(cfg, seed, device),
                                         map_location="cpu"))
        return model.train()
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(cfg.path)
    if not (path / "config.json").is_file():
        raise DataError(f"model.path '{path}' is not a save_pretrained directory (no config.json)")
    try:
        hf_cfg = AutoConfig.from_pretrained(str(path))
    except (ValueError, OSError) as e:
        raise DataError(f"model.path '{path}': unreadable config.json ({e})") from None
    if hf_cfg.model_type not in SUPPORTED:
        raise ConfigError(f"model.path '{path}': model_type '{hf_cfg.model_type}' is not supported "
                          f"(supported: {', '.join(SUPPORTED)})")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="sdpa",
                                                     dtype=torch.float32)
    except (OSError, RuntimeError, ValueError) as e:
        raise DataError(f"model.path '{path}': cannot load weights ({e})") from None
    return model.train()


def add_lora(model: nn.Module, cfg: LoraConfig) -> nn.Module:
    """peft LoRA on `cfg.targets` (OPT's o_proj is called out_proj; mapped automatically)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = list(cfg.targets)
    if getattr(model.config, "model_type", "") == "opt":
        targets = ["out_proj" if t == "o_proj" else t for t in targets]
    pc = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, pc)
    except ValueError as e:
        raise ConfigError(f"lora.targets {targets}: {e}") from None
