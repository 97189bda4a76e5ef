"""Install LeMo into a transformers model (optionally peft-wrapped), without forking modeling files.

    >>> layers = apply_lemo(model, LemoConfig(keep_ratio=0.4))     # before or after peft
    >>> configure_lemo(model, LemoConfig(enabled=False))            # switch arms in place

`apply_lemo` replaces each public decoder layer (`model.model.layers[i]` for Llama / Mistral /
Qwen2 / Qwen3 / Phi-3 / Gemma 2 / Gemma 3 (text), `model.model.decoder.layers[i]` for OPT) by a
`lemo.layers` wrapper that owns the same submodules, so peft LoRA targets, state-dict keys and
gradient checkpointing are unchanged.
"""

from __future__ import annotations

from torch import nn

from lemo.config import LemoConfig
from lemo.layers import (
    LemoDecoderLayer,
    LemoGemmaDecoderLayer,
    LemoLlamaDecoderLayer,
    LemoOPTDecoderLayer,
)
from lemo.mlp import GATED_ACTIVATIONS
from shared.errors import ConfigError

__all__ = ["SUPPORTED", "UnsupportedModelError", "apply_lemo", "configure_lemo", "lemo_layers",
           "base_model", "decoder_layers"]

# model_type -> (path of the layer list, wrapper)
SUPPORTED: dict[str, tuple[str, type[LemoDecoderLayer]]] = {
    "llama": ("model.layers", LemoLlamaDecoderLayer),
    "mistral": ("model.layers", LemoLlamaDecoderLayer),
    "qwen2": ("model.layers", LemoLlamaDecoderLayer),
    "opt": ("model.decoder.layers", LemoOPTDecoderLayer),
    "qwen3": ("model.layers", LemoLlamaDecoderLayer),
    "phi3": ("model.layers", LemoLlamaDecoderLayer),
    "gemma2": ("model.layers", LemoGemmaDecoderLayer),
    "gemma3_text": ("model.layers", LemoGemmaDecoderLayer),
}


class UnsupportedModelError(ConfigError):
    """The architecture has no LeMo layer."""


def base_model(model: nn.Module) -> nn.Module:
    """The transformers model under an optional peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    base = base_model(model)
    mtype = getattr(getattr(base, "config", None), "model_type", type(base).__name__)
    if mtype not in SUPPORTED:
        raise UnsupportedModelError(
            f"LeMo does not support model_type '{mtype}' (supported: {', '.join(SUPPORTED)})")
    node = base
    for part in SUPPORTED[mtype][0].split("."):
        node = getattr(node, part)
    return node


def apply_lemo(model: nn.Module, cfg: LemoConfig) -> list[LemoDecoderLayer]:
    """Wrap every decoder layer of `model` (idempotent: already wrapped layers are reconfigured)."""
    layers = decoder_layers(model)
    wrapper = SUPPORTED[base_model(model).config.model_type][1]
    n = len(layers)
    for i, layer in enumerate(layers):
        if isinstance(layer, LemoDecoderLayer):
            layer.configure(cfg)
        else:
            new = wrapper(layer, i, n, cfg)
            new.train(layer.training)
            layers[i] = new
    wrapped = [m for m in layers if isinstance(m, LemoDecoderLayer)]
    for m in wrapped:
        m.__dict__["_peers"] = wrapped  # CUDA graphs are captured for all layers at once
    check_applicable(base_model(model).config, cfg, wrapped)
    return list(layers)


def check_applicable(config, cfg: LemoConfig, layers: list[LemoDecoderLayer]) -> None:
    """Refuse what LeMo would silently get wrong: the S2-Attn baseline on a model with
    sliding-window attention or attention soft-capping (`lemo.baselines.s2_attention` has
    neither), MLP channel pruning of an MLP whose activation it does not implement, and a layer
    policy under which no layer of this model eliminates tokens (LeMo would be plain LoRA).
    Sliding windows and soft-capping are honoured by the eliminating layers
    (`lemo.layers.kept_attention`)."""
    if not cfg.enabled:
        return
    if cfg.attention == "s2":
        cap = getattr(config, "attn_logit_softcapping", None)
        sw = getattr(config, "sliding_window", None)
        if cap or (sw is not None and any(m.window(sw + 1) for m in layers)):
            raise ConfigError(f"lemo.attention=s2: S2-Attn does not implement this model's "
                              f"sliding window ({sw}) or attention soft-capping ({cap}); use "
                              "lemo.attention=lemo")
        return
    act = getattr(config, "hidden_act", None) or getattr(config, "hidden_activation", None)
    if cfg.mlp_prune_ratio > 0 and config.model_type != "opt" and act not in GATED_ACTIVATIONS:
        raise ConfigError(f"lemo.mlp_prune_ratio={cfg.mlp_prune_ratio:g}: MLP channel pruning "
                          f"supports gated MLPs with {sorted(GATED_ACTIVATIONS)}, this model's "
                          f"activation is '{act}'; set lemo.mlp_prune_ratio=0")
    if not any(m.eliminating for m in layers):
        raise ConfigError(f"no layer of this {len(layers)}-layer model eliminates tokens "
                          f"(lemo.dense_first={cfg.dense_first:g}, lemo.dense_last="
                          f"{str(cfg.dense_last).lower()}): lower dense_first or use a deeper "
                          "model")


def lemo_layers(model: nn.Module) -> list[LemoDecoderLayer]:
    return [m for m in decoder_layers(model) if isinstance(m, LemoDecoderLayer)]


def configure_lemo(model: nn.Module, cfg: LemoConfig) -> None:
    """Set a new LemoConfig on every wrapped layer (e.g. switch bench arms on one model)."""
    layers = lemo_layers(model)
    if not layers:
        raise ValueError("model has no LeMo layers; call apply_lemo first")
    for layer in layers:
        layer.configure(cfg)
    check_applicable(base_model(model).config, cfg, layers)
