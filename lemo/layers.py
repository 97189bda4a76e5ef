"""Decoder layers with token elimination (paper §4.2, AE `LlamaFlashAttention2.forward`).

`LemoLlamaDecoderLayer` (Llama / Mistral / Qwen2 / Qwen3 / Phi-3: GQA, RoPE, SwiGLU), its
`LemoGemmaDecoderLayer` (Gemma 2 / 3: sandwich norms, soft-capping) and `LemoOPTDecoderLayer`
(OPT: learned positions, ReLU FFN, pre- or post-LN) take over the *submodules* of the HF decoder
layer they replace (same attribute names, so state-dict keys and peft LoRA targets are unchanged)
and subclass transformers' public `GradientCheckpointingLayer`, so
`model.gradient_checkpointing_enable()` keeps working.

An eliminating layer (b = batch, s = tokens, k = kept tokens):
1. scores key blocks under no_grad (exact informativeness tiles, or the layer's
   `PatternPredictor`) and keeps k tokens, idx (b, k) sorted;
2. gathers the kept rows of the residual stream (b, k, D) and computes norm and q/k/v for kept
   tokens only; RoPE uses their original positions (cos/sin gathered at idx);
3. causal attention among kept tokens (original order, so causal in the original sense; a
   sliding window and soft-capping as the model's own attention, on original positions:
   `kept_attention`);
4. adds `o_proj`'s output into the residual at idx only: dropped tokens pass the attention
   block unchanged, and autograd saves only kept tokens' activations.
The q/k/v/o projections of kept rows go through `kernels.lora_linear_group`: the same function as
the peft modules, but the (k, D) input is saved once in the model dtype rather than once per
projection in the adapter dtype (fp32 copies on a bf16 model), and q/k/v share one adapter GEMM.
The MLP runs on all tokens, optionally with saved-channel pruning (`lemo.mlp`). Each layer selects
anew, so a token dropped here comes back in the next layer.
"""

from __future__ import annotations

import warnings
import weakref

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from lemo import kernels
from lemo.baselines import s2_attention
from lemo.config import LemoConfig
from lemo.mlp import channel_pruned_ffn, channel_pruned_mlp
from lemo.scoring import (
    TokenEliminator,
    informativeness_tiles,
    key_block_scores,
    window_tile_mask,
)

__all__ = ["apply_rope", "kept_attention", "LemoDecoderLayer", "LemoLlamaDecoderLayer",
           "LemoGemmaDecoderLayer", "LemoOPTDecoderLayer"]


def apply_rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor,
               sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary position embedding (RoFormer, Su et al. 2021) in the half-split layout of HF's
    Llama family: x * cos + rotate_half(x) * sin. q, k: (b, heads, n, head_dim); cos, sin:
    (b, n, r) with r <= head_dim: partial RoPE (Phi-3's `partial_rotary_factor`) rotates the
    first r channels and passes the rest. Our own, so a transformers release that wraps or
    renames its helper cannot change it; `test_keep_ratio_one_reproduces_dense` pins it to HF's
    attention."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    r = cos.shape[-1]

    def rotate_half(x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    def rot(x: torch.Tensor) -> torch.Tensor:
        if r == x.shape[-1]:
            return x * cos + rotate_half(x) * sin
        x_rot, x_pass = x[..., :r], x[..., r:]
        return torch.cat((x_rot * cos + rotate_half(x_rot) * sin, x_pass), dim=-1)

    return rot(q), rot(k)


class LemoDecoderLayer(GradientCheckpointingLayer):
    """State and policy shared by the Llama-family and OPT layers."""

    def _init_lemo(self, layer: nn.Module, layer_idx: int, num_layers: int,
                   cfg: LemoConfig) -> None:
        for name, child in layer.named_children():
            setattr(self, name, child)
        for name in ("attention_type", "layer_type"):  # read by some HF models' forward
            if hasattr(layer, name):
                setattr(self, name, getattr(layer, name))
        self.layer_idx, self.num_layers = layer_idx, num_layers
        self.__dict__["predictor"] = None  # not a submodule: kept out of the LM's state dict
        self.capture: list | None = None  # when a list: (x, exact tiles) appended per forward
        self.last_idx: torch.Tensor | None = None  # last kept token ids (diagnostics, tests)
        self.__dict__["_peers"] = [self]  # the model's LeMo layers (`lemo.patch` links them)
        self.configure(cfg)

    def configure(self, cfg: LemoConfig) -> None:
        self.cfg = cfg
        for peer in self._peers:  # captured eliminating attention per input shape; peers'
            peer.__dict__["_graphs"] = {}  # graphs were captured with this layer's (`_capture`)
        self.last_idx = None  # may point into a graph's memory pool
        thr = cfg.thresholds[self.layer_idx] if self.layer_idx < len(cfg.thresholds) else None
        self.eliminator = TokenEliminator(cfg.block_size, cfg.keep_ratio, cfg.selection, thr,
                                          cfg.sink_blocks, cfg.local_blocks)

    def set_predictor(self, predictor: nn.Module | None) -> None:
        self.__dict__["predictor"] = predictor
        for peer in self._peers:  # captured together (`_capture`), so dropped together
            peer.__dict__["_graphs"] = {}

    @property
    def eliminating(self) -> bool:
        """Layer policy: the first `dense_first` of layers (and the last) stay dense."""
        n_dense = int(round(self.cfg.dense_first * self.num_layers))
        last = self.cfg.dense_last and self.layer_idx == self.num_layers - 1
        return self.layer_idx >= n_dense and not last

    def mode(self) -> str:
        """'dense', 'lemo' or 's2' for this forward."""
        c = self.cfg
        if not c.enabled:
            return "dense"
        if c.attention == "s2":
            return "s2" if self.training else "dense"
        if self.eliminating and (self.training or c.eliminate_in_eval or self.capture is not None):
            return "lemo"
        return "dense"

    def mlp_ratio(self) -> float:
        return self.cfg.mlp_prune_ratio if self.cfg.enabled and self.training else 0.0

    def window(self, s: int) -> int | None:
        """This layer's sliding attention window, if it is shorter than the input (s tokens):
        the attention module's own `sliding_window` (Qwen2/3, Gemma 2/3: None on full-attention
        layers), else the config's (Mistral, Phi-3: every layer)."""
        a = getattr(self, "self_attn", None)
        if a is None:
            return None
        w = a.sliding_window if hasattr(a, "sliding_window") else getattr(
            getattr(a, "config", None), "sliding_window", None)
        return int(w) if w is not None and int(w) < s else None

    def softcap(self) -> float | None:
        """Gemma 2's attention-logit soft-capping (None: off)."""
        cap = getattr(getattr(self, "self_attn", None), "attn_logit_softcapping", None)
        return float(cap) if cap else None

    def _select(self, x: torch.Tensor, qk) -> torch.Tensor:
        """x: attention input (b, s, D); qk(): exact (q, k) -> kept token ids (b, k). Under a
        sliding window only the tiles that hold an in-window (query, key) pair count
        (`window_tile_mask`), so a key block is scored by the queries that can see it."""
        s = x.shape[1]
        if s % self.cfg.block_size:
            raise ValueError(f"sequence length {s} is not a multiple of lemo.block_size "
                             f"{self.cfg.block_size}; pad inputs to a multiple of it")
        window = self.window(s)
        visible = None if window is None else window_tile_mask(
            s // self.cfg.block_size, self.cfg.block_size, window, x.device)
        pred = self.predictor
        if self.cfg.scorer == "predictor" and pred is not None and self.capture is None:
            args = (x.float(), self.cfg.score_reduce, self.cfg.causal_scores)
            scores = pred.key_scores(*args) if visible is None else pred.key_scores(*args,
                                                                                   visible)
        else:
            q, k = qk()
            tiles = informativeness_tiles(q, k, self.cfg.block_size, self.cfg.causal_scores)
            if self.capture is not None:
                self.capture.append((x.detach().float().cpu(), tiles.cpu()))
            scores = key_block_scores(tiles, self.cfg.score_reduce, self.cfg.causal_scores,
                                      visible)
        idx = self.eliminator.select(scores)
        self.last_idx = idx
        return idx


def _sdpa(q, k, v, scale: float) -> torch.Tensor:
    """Causal attention (b, h, k, d) with GQA; the CPU flash path saves only out + LSE."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale,
                                          enable_gqa=q.shape[1] != k.shape[1])


def kept_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                   pos: torch.Tensor | None = None, window: int | None = None,
                   softcap: float | None = None) -> torch.Tensor:
    """Causal attention among kept tokens (b, h, k, d), GQA, on their original positions `pos`
    (b, k): query p sees key p' iff p' <= p and, with a sliding `window`, p - p' < window (HF's
    `sliding_window_overlay`). `softcap`: Gemma 2's attention-logit soft-capping
    cap·tanh(logits / cap) before the mask and softmax (HF's eager attention). Without either it
    is `is_causal` SDPA (kept tokens are sorted, so causal among them is causal in the original
    order); a window becomes a boolean SDPA mask; soft-capping needs the logits, so it runs
    eagerly (softmax in fp32, as HF)."""
    if window is None and softcap is None:
        return _sdpa(q, k, v, scale)
    if pos is None:
        pos = torch.arange(q.shape[2], device=q.device).expand(q.shape[0], -1)
    diff = pos[:, :, None] - pos[:, None, :]  # query - key, in original positions
    allow = diff >= 0
    if window is not None:
        allow = allow & (diff < window)
    allow = allow[:, None]  # (b, 1, k, k)
    if softcap is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allow, scale=scale,
                                              enable_gqa=q.shape[1] != k.shape[1])
    rep = q.shape[1] // k.shape[1]
    if rep > 1:
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    logits = (q @ k.transpose(-1, -2)) * scale
    logits = torch.tanh(logits / softcap) * softcap
    logits = logits.masked_fill(~allow, float("-inf"))
    return logits.softmax(-1, dtype=torch.float32).to(q.dtype) @ v


class LemoLlamaDecoderLayer(LemoDecoderLayer):
    """Replaces the pre-norm RoPE decoder layers: LlamaDecoderLayer (any HF rope_type, Llama 3.x
    "llama3" included: cos/sin come from the model's rotary embedding), MistralDecoderLayer,
    Qwen2DecoderLayer, Qwen3DecoderLayer (RMSNorm on each q/k head before RoPE: `q_norm`,
    `k_norm`) and Phi3DecoderLayer (fused `qkv_proj` split as [q | k | v], fused `gate_up_proj`
    as [gate | up], partial RoPE, residual dropout)."""

    def __init__(self, layer: nn.Module, layer_idx: int, num_layers: int, cfg: LemoConfig):
        super().__init__()
        self._init_lemo(layer, layer_idx, num_layers, cfg)

    def _resid(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """Phi-3's residual dropout (`resid_attn_dropout` / `resid_mlp_dropout`); else t."""
        drop = getattr(self, name, None)
        return drop(t) if drop is not None else t

    def _qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, lean: bool = False):
        """q, k (RoPE applied), v as (b, heads, n, head_dim); `lean`: the projections save x
        once in its own dtype (`kernels.lora_linear_group`) instead of peft's per-projection
        copies."""
        a = self.self_attn
        b, n, _ = x.shape
        if hasattr(a, "qkv_proj"):  # Phi-3: one fused projection, [q | k | v] along features
            fused = kernels.lora_linear(a.qkv_proj, x) if lean else a.qkv_proj(x)
            nq = a.config.num_attention_heads * a.head_dim
            nk = a.num_key_value_heads * a.head_dim
            qkv = fused.split([nq, nk, fused.shape[-1] - nq - nk], dim=-1)
        else:
            mods = [a.q_proj, a.k_proj, a.v_proj]
            qkv = kernels.lora_linear_group(mods, x) if lean else [m(x) for m in mods]
        q, k, v = (t.view(b, n, -1, a.head_dim) for t in qkv)
        if hasattr(a, "q_norm"):  # Qwen3: RMSNorm over each head's channels, before RoPE
            q, k = a.q_norm(q), a.k_norm(k)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        q, k = apply_rope(q, k, cos, sin)
        return q, k, v

    def _eliminating_attention(self, h: torch.Tensor, cos, sin) -> torch.Tensor:
        b = h.shape[0]
        cos, sin = cos.expand(b, -1, -1), sin.expand(b, -1, -1)
        with torch.no_grad():
            x_all = self.input_layernorm(h)
            idx = self._select(x_all, lambda: self._qkv(x_all, cos, sin)[:2])
        x = self.input_layernorm(kernels.gather_rows(h, idx))  # (b, k, D)
        q, k, v = self._qkv(x, kernels.gather_rows(cos, idx), kernels.gather_rows(sin, idx),
                            lean=True)
        o = kept_attention(q, k, v, self.self_attn.scaling, idx, self.window(h.shape[1]),
                           self.softcap())
        o = o.transpose(1, 2).reshape(b, idx.shape[1], -1)
        o = self._attn_out(kernels.lora_linear(self.self_attn.o_proj, o))
        return kernels.scatter_add_rows(h, idx, o)

    def _lemo_attention(self, h: torch.Tensor, cos, sin) -> torch.Tensor:
        """`_eliminating_attention`, replayed from CUDA graphs where `_graphable` allows."""
        if not self._graphable(h, cos):
            return self._eliminating_attention(h, cos, sin)
        key = (tuple(h.shape), h.dtype, tuple(cos.shape), cos.dtype, h.device)
        if key not in self._graphs:
            _capture(self, key, h, cos, sin)
        return self._graphs[key](h, cos, sin)

    def _graphable(self, h: torch.Tensor, cos: torch.Tensor) -> bool:
        limit = self.cfg.cuda_graph_max_tokens
        # threshold selection keeps a data-dependent count (a host sync): eager only
        return (0 < h.shape[0] * h.shape[1] <= limit and h.is_cuda and self.training
                and self.cfg.selection == "topk"
                and torch.is_grad_enabled() and h.requires_grad and not cos.requires_grad
                and self.capture is None and not getattr(self, "gradient_checkpointing", False)
                and not torch.cuda.is_current_stream_capturing())

    def _s2_attention(self, h: torch.Tensor, cos, sin) -> torch.Tensor:
        b, s, _ = h.shape
        q, k, v = self._qkv(self.input_layernorm(h), cos, sin)
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        o = s2_attention(q, k, v, self.cfg.s2_groups, self.self_attn.scaling)
        return h + self._attn_out(self.self_attn.o_proj(o.transpose(1, 2).reshape(b, s, -1)))

    def forward(self, hidden_states: torch.Tensor, attention_mask=None, position_ids=None,
                cache=None, use_cache=False, position_embeddings=None, **kwargs) -> torch.Tensor:
        mode = self.mode()
        if mode == "lemo":
            h = self._lemo_attention(hidden_states, *position_embeddings)
        elif mode == "s2":
            h = self._s2_attention(hidden_states, *position_embeddings)
        else:
            a, _ = self.self_attn(
                hidden_states=self.input_layernorm(hidden_states), attention_mask=attention_mask,
                position_ids=position_ids, cache=cache, use_cache=use_cache,
                position_embeddings=position_embeddings, **kwargs)
            h = hidden_states + self._attn_out(a)
        return h + self._ffn(h)

    def _attn_out(self, t: torch.Tensor) -> torch.Tensor:
        """What the attention block adds to the residual, from `o_proj`'s output."""
        return self._resid("resid_attn_dropout", t)

    def _ffn(self, h: torch.Tensor) -> torch.Tensor:
        """What the MLP block adds to the residual h."""
        y = channel_pruned_mlp(self.mlp, self.post_attention_layernorm(h), self.mlp_ratio())
        return self._resid("resid_mlp_dropout", y)


class LemoGemmaDecoderLayer(LemoLlamaDecoderLayer):
    """Replaces Gemma2DecoderLayer and Gemma3DecoderLayer: the Llama layout plus "sandwich"
    norms (`post_attention_layernorm` on the attention output before the residual add,
    `pre_feedforward_layernorm` / `post_feedforward_layernorm` around the MLP), GeGLU MLP,
    query scaling `query_pre_attn_scalar`^-½ (the attention module's `scaling`), alternating
    sliding-window layers (`window`), attention-logit soft-capping (Gemma 2; `softcap`) and
    q/k RMSNorms (Gemma 3; `_qkv`). Gemma 3's per-layer-type RoPE arrives as this layer's
    `position_embeddings`. Every norm is per token, so kept rows are normalised exactly as in
    the dense layer."""

    def _attn_out(self, t: torch.Tensor) -> torch.Tensor:
        return self.post_attention_layernorm(t)

    def _ffn(self, h: torch.Tensor) -> torch.Tensor:
        y = channel_pruned_mlp(self.mlp, self.pre_feedforward_layernorm(h), self.mlp_ratio())
        return self.post_feedforward_layernorm(y)


class _EliminatingAttention(nn.Module):
    """The parameters an eliminating layer's attention uses (norm, q/k/v/o with their LoRA
    adapters) as one module, for `torch.cuda.make_graphed_callables`."""

    def __init__(self, layer: LemoLlamaDecoderLayer):
        super().__init__()
        self.self_attn, self.input_layernorm = layer.self_attn, layer.input_layernorm
        if isinstance(layer, LemoGemmaDecoderLayer):  # `_attn_out` norms o_proj's output
            self.post_attention_layernorm = layer.post_attention_layernorm
        # weak: the layer holds this module's graphs, which then die with `configure`
        self.__dict__["layer"] = weakref.ref(layer)

    def forward(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        return self.layer()._eliminating_attention(h, cos, sin)


def _capture(layer: LemoLlamaDecoderLayer, key: tuple, h: torch.Tensor, cos: torch.Tensor,
             sin: torch.Tensor) -> None:
    """Capture the eliminating attention (forward and backward) of `layer` and of every later
    eliminating peer, for inputs shaped like (h, cos, sin), in one
    `torch.cuda.make_graphed_callables` call: one warm-up stream (each new stream gets its own
    cached cuBLAS workspace) and one memory pool, replayed in layer order (forward) and reverse
    order (backward), as a training step calls them. One forward per backward: two forwards
    before a backward would overwrite the first one's static outputs. The warm-up leaves
    parameter gradients alone."""
    start = layer._peers.index(layer)
    group = [p for p in layer._peers[start:] if isinstance(p, LemoLlamaDecoderLayer)
             and p.mode() == "lemo" and p._graphable(h, cos) and key not in p._graphs]
    mods = tuple(_EliminatingAttention(p) for p in group)
    samples = tuple((torch.zeros_like(h).requires_grad_(), cos.detach().clone(),
                     sin.detach().clone()) for _ in group)
    with warnings.catch_warnings():
        # The warm-up's torch.autograd.grad runs on a side stream while the LoRA weights'
        # AccumulateGrad nodes (kept from earlier eager steps) belong to the default stream;
        # autograd warns once. The warm-up only computes gradients, it does not accumulate them.
        warnings.filterwarnings("ignore", message="The AccumulateGrad node's stream",
                                category=UserWarning)
        graphed = torch.cuda.make_graphed_callables(mods, samples)
    for p, g in zip(group, graphed):
        p._graphs[key] = g


class LemoOPTDecoderLayer(LemoDecoderLayer):
    """Replaces OPTDecoderLayer (learned absolute positions, so no RoPE; ReLU FFN)."""

    def __init__(self, layer: nn.Module, layer_idx: int, num_layers: int, cfg: LemoConfig):
        super().__init__()
        self.do_layer_norm_before = layer.do_layer_norm_before
        self.dropout = layer.dropout
        self.activation_fn = layer.activation_fn
        self.activation_name = layer.self_attn.config.activation_function
        self._init_lemo(layer, layer_idx, num_layers, cfg)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.self_attn.num_heads, -1).transpose(1, 2)

    def _attn_in(self, h: torch.Tensor) -> torch.Tensor:
        return self.self_attn_layer_norm(h) if self.do_layer_norm_before else h

    def _eliminating_attention(self, h: torch.Tensor) -> torch.Tensor:
        a, b = self.self_attn, h.shape[0]
        with torch.no_grad():
            x_all = self._attn_in(h)
            idx = self._select(x_all, lambda: (self._heads(a.q_proj(x_all)),
                                               self._heads(a.k_proj(x_all))))
        x = self._attn_in(kernels.gather_rows(h, idx))
        # saves x once (see LemoLlamaDecoderLayer._qkv)
        q, k, v = kernels.lora_linear_group([a.q_proj, a.k_proj, a.v_proj], x)
        o = _sdpa(self._heads(q * a.scaling), self._heads(k), self._heads(v), 1.0)
        o = kernels.lora_linear(a.out_proj, o.transpose(1, 2).reshape(b, idx.shape[1], -1))
        o = F.dropout(o, p=self.dropout, training=self.training)
        return kernels.scatter_add_rows(h, idx, o)

    def forward(self, hidden_states: torch.Tensor, attention_mask=None, cache=None,
                use_cache=False, position_ids=None, **kwargs) -> torch.Tensor:
        if self.mode() == "lemo":
            h = self._eliminating_attention(hidden_states)
        else:
            a, _ = self.self_attn(hidden_states=self._attn_in(hidden_states), cache=cache,
                                  position_ids=position_ids, attention_mask=attention_mask,
                                  **kwargs)
            h = hidden_states + F.dropout(a, p=self.dropout, training=self.training)
        if not self.do_layer_norm_before:
            h = self.self_attn_layer_norm(h)
        x = self.final_layer_norm(h) if self.do_layer_norm_before else h
        ratio = self.mlp_ratio()
        if ratio > 0:
            y = channel_pruned_ffn(self.fc1, self.fc2, x, ratio, self.activation_name)
        else:
            y = self.fc2(self.activation_fn(self.fc1(x)))
        h = h + F.dropout(y, p=self.dropout, training=self.training)
        return self.final_layer_norm(h) if not self.do_layer_norm_before else h
