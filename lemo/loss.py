"""Segment-based peak cutting (paper §4.4; AE `modeling_llama.py` ~L1315-1333).

`lm_head` + cross-entropy run `segment` tokens at a time, each segment recomputed in backward
(`lemo.kernels.segmented_lm_loss`), so (tokens × vocab) logits never exist at once and autograd
saves only the final hidden states. The decoder's final norm runs on the same row blocks
(`segment_normed_hidden`, ours), so its backward, at the start of the backward pass, never holds
fp32 (tokens × d) buffers for the whole sequence. Loss and gradients equal the unsegmented
loss's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lemo import kernels

__all__ = ["shift_labels", "segment_normed_hidden", "causal_lm_loss", "full_lm_loss"]


def shift_labels(labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """(b, s) labels -> (b, s) next-token targets (position t predicts labels[t+1]; last ignored),
    so hidden states need no shifted (copied) view."""
    pad = labels.new_full((labels.shape[0], 1), ignore_index)
    return torch.cat([labels[:, 1:], pad], dim=1)


def full_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                 ignore_index: int = -100, softcap: float | None = None) -> torch.Tensor:
    """Reference: mean CE of the full (b·s, vocab) logits (soft-capped: cap·tanh(logits / cap))
    against `shift_labels(labels)`."""
    logits = (hidden @ weight.t()).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    y = shift_labels(labels, ignore_index)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                           ignore_index=ignore_index)


def segment_normed_hidden(decoder: torch.nn.Module, input_ids: torch.Tensor,
                          segment: int) -> torch.Tensor:
    """The decoder's last hidden state (final norm applied), with the final norm run
    `segment` rows at a time (our addition to the paper's peak cutting).

    The norm is per token, so applying it to row blocks of the flattened (b·s, d) states and
    concatenating them is exact; what changes is its backward, which runs block by block at
    the start of the backward pass, while nearly every saved activation is live. An RMSNorm
    that upcasts to fp32 (Llama's) otherwise holds several fp32 (tokens × d) buffers there at
    once (an H100 trace at 8K tokens: five buffers of 64 MiB at the step's peak). Decoders
    without a `norm` module (OPT's `final_layer_norm` among them) or inputs of at most
    `segment` tokens run unchanged. The decoder's `norm` is swapped for an identity during its
    forward (restored on return or error): do not run the same model from two threads at once,
    or under `torch.compile`, through this function."""
    norm = getattr(decoder, "norm", None)
    if not isinstance(norm, torch.nn.Module) or input_ids.numel() <= segment:
        return decoder(input_ids=input_ids).last_hidden_state
    decoder.norm = torch.nn.Identity()
    try:
        pre = decoder(input_ids=input_ids).last_hidden_state
    finally:
        decoder.norm = norm
    rows = pre.reshape(-1, pre.shape[-1])
    blocks = [norm(rows[i:i + segment]) for i in range(0, rows.shape[0], segment)]
    return torch.cat(blocks).view(*pre.shape[:-1], -1)


def causal_lm_loss(model, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                   segment: int = 2048) -> torch.Tensor:
    """Next-token loss of a HF causal LM (or peft wrapper), segmented when `segment` > 0.

    segment == 0 falls back to the model's own `labels=` loss (full logits): the LoRA baseline.
    The model's final-logit soft-capping (`config.final_logit_softcapping`, Gemma 2) is applied
    to the segments' logits as in its own forward.
    """
    labels = input_ids if labels is None else labels
    if segment <= 0:
        return model(input_ids=input_ids, labels=labels).loss
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = segment_normed_hidden(base.model, input_ids, segment)
    head = base.lm_head
    if getattr(head, "bias", None) is not None:
        raise ValueError("segment loss supports lm_head without bias")
    cap = getattr(getattr(base, "config", None), "final_logit_softcapping", None)
    return kernels.segmented_lm_loss(hidden, head.weight, shift_labels(labels), segment,
                                     softcap=float(cap) if cap else None)
