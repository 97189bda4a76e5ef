"""Label-conditioned data generation by the server LLM (CrossLM's generation step; the
conditioning and sampling details are reconstructed).

- `label_prompts`: per label, the token ids that condition the LLM: the label's description in
  a prompt template (`conditioning="prompt"`) or one label control token (`"control"`);
- `top_p_filter` + `sample_label_conditioned`: temperature / nucleus sampling with a KV cache,
  `per_label` samples per label, `max_new_tokens` long, cut at the first stop string;
- `clean_samples`: whitespace normalisation, length limits and deduplication.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from crosslm.feedback import pack_pairs, token_nll

__all__ = ["STOP_STRINGS", "label_prompts", "top_p_filter", "sample_label_conditioned",
           "cut_at_stop", "clean_samples", "sequence_nll"]

STOP_STRINGS = ("\n\n", '"""')


def label_prompts(codec, descriptions: list[str], conditioning: str,
                  template: str = "{label}: ") -> list[list[int]]:
    """Token ids that condition generation on each label (one list per label)."""
    if conditioning == "control":
        return [codec.control(y) for y in range(len(descriptions))]
    return [codec.encode(template.format(label=d)) for d in descriptions]


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask (to -inf) every token outside the smallest set whose probability mass reaches
    `top_p` (the most likely token always stays). logits: (b, V)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # mass of the strictly better tokens
    drop_sorted = mass_before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def cut_at_stop(text: str, stops=STOP_STRINGS) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def _cache_kwarg(model) -> str:
    """The forward argument that takes the KV cache: `cache` in recent transformers (which
    deprecates `past_key_values`), `past_key_values` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters \
        else "past_key_values"


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _exponentials(gen: torch.Generator, steps: int, rows: int, vocab: int,
                  device: torch.device) -> torch.Tensor:
    """(steps, rows, vocab) Exp(1) draws from `gen` on the CPU, moved to `device` once: the very
    numbers that `torch.multinomial(probs, 1, generator=gen)` would draw step by step (its
    one-sample path is argmax(probs / q), q ~ Exp(1) of probs' shape)."""
    q = torch.empty((steps, rows, vocab), dtype=torch.float32)
    for t in range(steps):
        q[t].exponential_(1, generator=gen)
    return q.to(device)


def _draw(logits: torch.Tensor, vocab_limit: int | None, temperature: float, top_p: float,
          q: torch.Tensor) -> torch.Tensor:
    """One nucleus-sampled token per row of next-token logits (b, V) -> (b, 1), ids at or above
    `vocab_limit` never drawn. `q` (b, V): this step's Exp(1) draws (`_exponentials`), so the
    draw equals `torch.multinomial` with the same generator, on the logits' device and without
    a host round trip per token."""
    logits = logits.float()
    if vocab_limit is not None:
        logits[:, vocab_limit:] = float("-inf")
    probs = torch.softmax(top_p_filter(logits / temperature, top_p), dim=-1)
    return torch.argmax(probs / q, dim=-1, keepdim=True)


@torch.no_grad()
def sample_label_conditioned(model, codec, prompts: list[list[int]], per_label: int,
                             max_new_tokens: int, temperature: float, top_p: float,
                             seed: int, vocab_limit: int | None = None,
                             batch_labels: bool = False) -> tuple[list[str], np.ndarray]:
    """`per_label` continuations of each label's prompt. Returns (texts, labels (n,)), texts
    cut at the first stop string. Deterministic given `seed`. `vocab_limit`: sample only ids
    below it (the byte codec keeps control tokens out of the text). `batch_labels`: decode
    every label's samples in one left-padded batch (C times fewer decoding steps; the same
    distribution, a different random stream)."""
    if batch_labels:
        return _sample_batched(model, codec, prompts, per_label, max_new_tokens, temperature,
                               top_p, seed, vocab_limit)
    gen = torch.Generator().manual_seed(int(seed))
    cache_kw = _cache_kwarg(model)
    model.eval()
    device = next(model.parameters()).device
    texts, labels = [], []
    for y, prompt in enumerate(prompts):
        ids = torch.tensor([prompt] * per_label, dtype=torch.int64, device=device)
        out = model(input_ids=ids, use_cache=True)
        past, logits = _cache_of(out), out.logits[:, -1]
        q = _exponentials(gen, max_new_tokens, per_label, logits.shape[-1], device)
        new = []
        for t in range(max_new_tokens):
            tok = _draw(logits, vocab_limit, temperature, top_p, q[t])
            new.append(tok)
            out = model(input_ids=tok, use_cache=True, **{cache_kw: past})
            past, logits = _cache_of(out), out.logits[:, -1]
        toks = torch.cat(new, dim=1).cpu().tolist()
        texts += [cut_at_stop(codec.decode(t)) for t in toks]
        labels += [y] * per_label
    return texts, np.asarray(labels, dtype=np.int64)


@torch.no_grad()
def _sample_batched(model, codec, prompts, per_label, max_new_tokens, temperature, top_p,
                    seed, vocab_limit) -> tuple[list[str], np.ndarray]:
    gen = torch.Generator().manual_seed(int(seed))
    cache_kw = _cache_kwarg(model)
    model.eval()
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    rows = [p for p in prompts for _ in range(per_label)]
    ids = torch.zeros((len(rows), width), dtype=torch.int64)
    mask = torch.zeros((len(rows), width), dtype=torch.int64)
    for i, p in enumerate(rows):  # left padding: every prompt ends at the last column
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.int64)
        mask[i, width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
    past, logits, last = _cache_of(out), out.logits[:, -1], pos[:, -1:]
    q = _exponentials(gen, max_new_tokens, len(rows), logits.shape[-1], device)
    new = []
    for t in range(max_new_tokens):
        tok = _draw(logits, vocab_limit, temperature, top_p, q[t])
        new.append(tok)
        mask = torch.cat([mask, torch.ones_like(tok)], dim=1)
        last = last + 1
        out = model(input_ids=tok, attention_mask=mask, position_ids=last, use_cache=True,
                    **{cache_kw: past})
        past, logits = _cache_of(out), out.logits[:, -1]
    toks = torch.cat(new, dim=1).cpu().tolist()
    texts = [cut_at_stop(codec.decode(t)) for t in toks]
    labels = np.repeat(np.arange(len(prompts), dtype=np.int64), per_label)
    return texts, labels


def clean_samples(texts: list[str], labels: np.ndarray, min_chars: int,
                  max_chars: int) -> tuple[list[str], np.ndarray]:
    """Normalise whitespace, cut to `max_chars`, drop samples shorter than `min_chars` and
    every repeat of an earlier text (case-insensitive, whatever its label). Order is kept."""
    seen: set[str] = set()
    out_t, out_y = [], []
    for t, y in zip(texts, labels):
        t = " ".join(t.replace("\ufffd", " ").split())[:max_chars]
        k = t.lower()
        if len(t) < min_chars or k in seen:
            continue
        seen.add(k)
        out_t.append(t)
        out_y.append(int(y))
    return out_t, np.asarray(out_y, dtype=np.int64)


def sequence_nll(model, prompts: list[list[int]], conts: list[list[int]],
                 batch: int = 64) -> np.ndarray:
    """Per pair, the mean NLL (nats / token) of continuation `conts[i]` after `prompts[i]`,
    under `model` (no grad). Pairs are right-padded; padding never enters the sum."""
    out = []
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(prompts), batch):
            ids, tgt_mask = pack_pairs(prompts[i:i + batch], conts[i:i + batch])
            ids, tgt_mask = ids.to(device), tgt_mask.to(device)
            nll = token_nll(model(input_ids=ids).logits, ids, tgt_mask)  # (b, T-1)
            out.append((nll.sum(1) / tgt_mask[:, 1:].sum(1).clamp(min=1)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)
