"""The small ReLU OPT model, its cached training, and FFN activation masks from forward hooks.

Checkpoints loaded by path may be OPT (`fc1`/`fc2`) or Llama-style (`mlp.gate/up/down_proj`,
e.g. ReLU-Llama) with `relu` activations; their neuron bundles are [up, down] or [gate, up, down].

Ripple's statistics must come from a *trained* model (random weights have no co-activation
structure; `build_model` without training is only the negative control). `trained_model` trains
a byte-level OPT with `activation_function="relu"` on the stdlib corpus (`shared.text`), with an
optional L1 penalty on the FFN activations so the activated fraction approaches the 3-10% of the
paper's OPT models, and caches the `save_pretrained` directory under a key of the model+training
config (`shared.cache.cached_dir`). Any HF OPT checkpoint can be used instead by path.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ripple.config import ModelConfig, TrainConfig
from ripple.layout import make_bundles
from shared.config import to_dict
from shared.errors import DataError

__all__ = ["build_model", "ffn_layers", "mask_module", "trained_model", "load_model",
           "collect_masks", "ffn_weights"]

log = logging.getLogger(__name__)


def build_model(cfg: ModelConfig, seed: int = 0):
    """A randomly initialised byte-level OPT with ReLU FFNs (vocab 256)."""
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(seed)
    conf = OPTConfig(vocab_size=256, hidden_size=cfg.d_model, num_hidden_layers=cfg.layers,
                     ffn_dim=cfg.ffn_dim, num_attention_heads=cfg.heads,
                     max_position_embeddings=cfg.max_positions, word_embed_proj_dim=cfg.d_model,
                     activation_function="relu", dropout=0.0, attention_dropout=0.0,
                     do_layer_norm_before=True, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    return OPTForCausalLM(conf)


def ffn_layers(model) -> list[nn.Module]:
    """The decoder layers of an OPT (`fc1` = up, `fc2` = down) or Llama-style model (`mlp`)."""
    inner = getattr(model, "model", None)
    layers = getattr(getattr(inner, "decoder", None), "layers", None)
    if layers is None:
        layers = getattr(inner, "layers", None)
    if layers is None or not len(layers):
        raise DataError(f"{type(model).__name__} is neither OPT (model.decoder.layers) nor "
                        "Llama-style (model.layers)")
    return list(layers)


def mask_module(layer: nn.Module) -> nn.Module:
    """The linear whose output > 0 marks activated neurons: OPT fc1, Llama mlp.gate_proj."""
    if hasattr(layer, "fc1"):
        return layer.fc1
    mlp = getattr(layer, "mlp", None)
    if mlp is not None and hasattr(mlp, "gate_proj"):
        return mlp.gate_proj
    raise DataError(f"{type(layer).__name__} has neither fc1 nor mlp.gate_proj")


class _L1Sparsified(nn.Module):
    """Wraps a causal LM so `.loss` = LM loss + l1 * mean |ReLU(fc1 x)| (over all FFN layers)."""

    def __init__(self, model, l1: float):
        super().__init__()
        self.model, self.l1, self._acts = model, l1, []
        for layer in ffn_layers(model):
            mask_module(layer).register_forward_hook(lambda m, i, o: self._acts.append(o))

    def forward(self, input_ids, labels):
        self._acts.clear()
        out = self.model(input_ids=input_ids, labels=labels)
        if self.l1 > 0:
            penalty = torch.stack([torch.relu(a).mean() for a in self._acts]).mean()
            out.loss = out.loss + self.l1 * penalty
        self._acts.clear()
        return out


def trained_model(mcfg: ModelConfig, tcfg: TrainConfig, seed: int = 0, device: str = "cpu"):
    """The ReLU OPT trained on the stdlib-py train split; cached on disk by config."""
    from shared.cache import cached_dir
    from shared.text import load_corpus, pretrain_causal_lm

    def build(out: Path) -> None:
        model = build_model(mcfg, seed)
        tokens = load_corpus("train", "stdlib-py", max_bytes=tcfg.train_bytes)
        log.info("training ReLU OPT (d=%d, ffn=%d, %d layers) for %d steps on %d bytes",
                 mcfg.d_model, mcfg.ffn_dim, mcfg.layers, tcfg.steps, len(tokens))
        losses = pretrain_causal_lm(_L1Sparsified(model, tcfg.l1), tokens, steps=tcfg.steps,
                                    seq_len=tcfg.seq_len, batch_size=tcfg.batch_size, lr=tcfg.lr,
                                    seed=seed, device=device, warmup=min(50, tcfg.steps // 5))
        log.info("final train loss %.3f (first %.3f)", np.mean(losses[-20:]), losses[0])
        model.to("cpu").save_pretrained(out)

    key = {"model": to_dict(mcfg), "train": to_dict(tcfg), "seed": seed}
    return load_model(cached_dir("ripple-opt-relu", key, build, version=2))


def load_model(path: str | Path):
    """An HF checkpoint dir (`save_pretrained`) of an OPT or Llama-style model with ReLU FFNs."""
    from shared.validate import hf_config, strict_from_pretrained

    path = Path(path)
    if not (path / "config.json").is_file():
        raise DataError(f"checkpoint dir {path} has no config.json")
    source = f"checkpoint {path}"
    model = strict_from_pretrained(path, hf_config(path, source), source)
    conf = model.config
    act = getattr(conf, "activation_function", None) or getattr(conf, "hidden_act", "?")
    if act != "relu":
        raise DataError(f"checkpoint {path}: FFN activation '{act}', Ripple needs 'relu'")
    ffn_layers(model)
    return model.eval()


@torch.no_grad()
def collect_masks(model, tokens: np.ndarray, n_tokens: int, seq_len: int,
                  device: str = "cpu") -> np.ndarray:
    """Activation bitmasks from real forward passes over the first `n_tokens` of `tokens`.

    Returns bool (layers, T, n_neurons) with T = n_tokens rounded down to whole windows:
    M[l, t, i] = ReLU(fc1_l x_t)_i > 0 (Llama: ReLU(gate_l x_t)_i > 0), Ripple §4.1's per-layer
    token x neuron matrix.
    """
    windows = min(n_tokens, len(tokens) - 1) // seq_len
    if windows < 1:
        raise DataError(f"text has {len(tokens)} tokens, fewer than one window of {seq_len}")
    x = torch.from_numpy(tokens[: windows * seq_len].astype(np.int64).reshape(windows, seq_len))
    layers = ffn_layers(model)
    out: list[list[torch.Tensor]] = [[] for _ in layers]
    hooks = [mask_module(layer).register_forward_hook(
        lambda m, i, o, k=k: out[k].append((o > 0).reshape(-1, o.shape[-1]).cpu()))
        for k, layer in enumerate(layers)]
    model.to(device).eval()
    try:
        for b in range(0, windows, 8):
            model(input_ids=x[b: b + 8].to(device))
    finally:
        for h in hooks:
            h.remove()
    return np.stack([torch.cat(o).numpy() for o in out])


def ffn_weights(model) -> list[dict[str, np.ndarray]]:
    """Per layer, float32: up (n, d), down (n, d) = down-projection columns, b1 (n,), b2 (d,),
    for Llama-style models gate (n, d) too (biases zero when the model has none), and
    `bundles` (n, P, d): [up, down] (OPT) or [gate, up, down] (Llama), as stored in flash."""
    def arr(t):
        return t.detach().float().numpy().copy()

    res = []
    for layer in ffn_layers(model):
        if hasattr(layer, "fc1"):
            up, down = layer.fc1, layer.fc2
            w = {"up": arr(up.weight), "down": arr(down.weight).T.copy()}
        else:
            mlp = layer.mlp
            up, down = mlp.up_proj, mlp.down_proj
            w = {"gate": arr(mlp.gate_proj.weight), "up": arr(up.weight),
                 "down": arr(down.weight).T.copy()}
        n, d = w["up"].shape
        w["b1"] = arr(up.bias) if hasattr(layer, "fc1") and up.bias is not None \
            else np.zeros(n, np.float32)
        w["b2"] = arr(down.bias) if down.bias is not None else np.zeros(d, np.float32)
        w["bundles"] = make_bundles(w["up"], w["down"], w.get("gate"))
        res.append(w)
    return res
