"""Segment-based peak cutting (paper §4.4; AE `modeling_llama.py` ~L1315-1333).

`lm_head` + cross-entropy run `segment` tokens at a time, each segment recomputed in backward
(`lemo.kernels.segmented_lm_loss`), so (tokens × vocab) logits never exist at once and autograd
saves only the final hidden states. Loss and gradients equal the unsegmented loss's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lemo import kernels

__all__ = ["shift_labels", "causal_lm_loss", "full_lm_loss"]


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
    hidden = base.model(input_ids=input_ids).last_hidden_state
    head = base.lm_head
    if getattr(head, "bias", None) is not None:
        raise ValueError("segment loss supports lm_head without bias")
    cap = getattr(getattr(base, "config", None), "final_logit_softcapping", None)
    return kernels.segmented_lm_loss(hidden, head.weight, shift_labels(labels), segment,
                                     softcap=float(cap) if cap else None)
