"""SLM feedback and the LLM update (CrossLM's feedback and LLM-update steps; the exact losses
are reconstructed, the paper's method section was not available).

- `aggregate_scores`: the server's aggregate of the clients' scores s_k(x~, y) = p_SLM_k(y|x~);
- `sample_weights`: reward weights w = s ("reward") or top-q per label ("topq", the bottom
  samples marked for the unlikelihood loss);
- `weighted_nll_loss`: sum_i w_i NLL_i / sum_i w_i, NLL_i the mean token NLL of sample i's
  text given its label prompt (reward-weighted likelihood);
- `unlikelihood_loss`: mean over tokens of -log(1 - p(token)) (Welleck et al. 2020);
- `guard_loss`: the generalisation guard, a general-corpus LM loss or the KL from the frozen
  initial LLM (the LoRA adapters switched off) on general text;
- `masked_kl`, `sample_kl_loss`: KL(p_initial || p_model) of the next-token distributions on
  the synthetic samples' own tokens, a diversity-preserving anchor for the LLM update
  (`feedback.sample_kl`, ours);
- `label_contrast_loss`: the cross-entropy of the LLM's own generative classifier
  p(y | x~) = softmax_c log p_LLM(x~ | c) on the weighted samples, i.e. Bayes' rule with a
  uniform label prior over the summed token log-likelihoods under each label's prompt; a
  label-discriminative term for the update (`feedback.label_contrast`, ours);
- `ngram_novelty`: the share of a sample's character n-grams that no other sample of the
  round has, a weight that keeps near-repeats from dominating the update
  (`feedback.novelty`, ours);
- `select_for_clients`: the best `keep_top` share of each label's samples, for the SLMs;
- `update_llm`: a few AdamW steps on the LoRA parameters with all of the above.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from shared.text import sample_windows

__all__ = ["pack_pairs", "token_nll", "aggregate_scores", "sample_weights",
           "weighted_nll_loss", "unlikelihood_loss", "guard_loss", "masked_kl",
           "sample_kl_loss", "label_contrast_loss", "ngram_novelty", "select_for_clients",
           "update_llm"]


def pack_pairs(prompts: list[list[int]], conts: list[list[int]],
               pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (b, T) ids of prompt + continuation, and a (b, T) bool mask that is True
    on the continuation's tokens (the ones the loss scores)."""
    seqs = [list(p) + list(c) for p, c in zip(prompts, conts)]
    width = max(2, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), width), pad, dtype=torch.int64)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, (p, s) in enumerate(zip(prompts, seqs)):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.int64)
        mask[i, len(p):len(s)] = True
    return ids, mask


def token_nll(logits: torch.Tensor, ids: torch.Tensor, tgt_mask: torch.Tensor) -> torch.Tensor:
    """(b, T-1) NLL of ids[:, 1:] under logits[:, :-1], zero where tgt_mask[:, 1:] is False."""
    lp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -lp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return nll * tgt_mask[:, 1:]


def aggregate_scores(scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(K, N) client scores -> (N,) weighted mean over clients (weights: (K,), e.g. data
    sizes; None = plain mean)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise ValueError(f"scores must be (clients, samples), got shape {scores.shape}")
    w = np.ones(scores.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (scores.shape[0],) or (w < 0).any() or w.sum() <= 0:
        raise ValueError("client weights must be (clients,), >= 0, with a positive sum")
    return (w[:, None] * scores).sum(0) / w.sum()


def _top_per_label(scores: np.ndarray, labels: np.ndarray, share: float) -> np.ndarray:
    keep = np.zeros(len(scores), dtype=bool)
    for y in np.unique(labels):
        idx = np.flatnonzero(labels == y)
        k = max(1, int(round(share * idx.size)))
        # stable: ties go to the earlier sample
        keep[idx[np.argsort(-scores[idx], kind="stable")[:k]]] = True
    return keep


def sample_weights(scores: np.ndarray, labels: np.ndarray, weighting: str = "reward",
                   topq: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(weights (N,), bottom (N,) bool). reward: w = s, nothing marked; topq: w = 1 on the
    top-q share of each label's samples, 0 elsewhere, the rest marked as bottom."""
    scores = np.asarray(scores, dtype=np.float64)
    if weighting == "reward":
        return scores.copy(), np.zeros(len(scores), dtype=bool)
    if weighting == "topq":
        keep = _top_per_label(scores, labels, topq)
        return keep.astype(np.float64), ~keep
    raise ValueError(f"unknown weighting '{weighting}' (reward, topq)")


def weighted_nll_loss(logits: torch.Tensor, ids: torch.Tensor, tgt_mask: torch.Tensor,
                      weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_i NLL_i / sum_i w_i with NLL_i = mean NLL over sample i's target tokens.
    logits (b, T, V), ids/tgt_mask (b, T), weights (b,)."""
    nll = token_nll(logits, ids, tgt_mask)
    per = nll.sum(1) / tgt_mask[:, 1:].sum(1).clamp(min=1)
    return (weights * per).sum() / weights.sum().clamp(min=1e-12)


def unlikelihood_loss(logits: torch.Tensor, ids: torch.Tensor,
                      tgt_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the target tokens of -log(1 - p(token))."""
    p = F.softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1))
    ul = -torch.log1p(-p.squeeze(-1).clamp(max=1 - 1e-6))
    m = tgt_mask[:, 1:]
    return (ul * m).sum() / m.sum().clamp(min=1)


def guard_loss(model, windows: torch.Tensor, kind: str) -> torch.Tensor:
    """Generalisation guard on general-text windows (b, T): "lm" = their LM loss; "kl" =
    KL(p_initial || p_model) per token, p_initial = the model with its LoRA adapters off."""
    if kind == "lm":
        return model(input_ids=windows, labels=windows).loss
    if kind == "kl":
        with torch.no_grad(), model.disable_adapter():
            ref = F.log_softmax(model(input_ids=windows).logits.float(), dim=-1)
        cur = F.log_softmax(model(input_ids=windows).logits.float(), dim=-1)
        return F.kl_div(cur, ref, log_target=True, reduction="none").sum(-1).mean()
    raise ValueError(f"unknown guard '{kind}' (lm, kl)")


def masked_kl(cur_logits: torch.Tensor, ref_logits: torch.Tensor,
              tgt_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions that predict a target token (tgt_mask[:, 1:]) of
    KL(p_ref || p_cur) = sum_v p_ref(v) (log p_ref(v) - log p_cur(v)). logits (b, T, V)."""
    cur = F.log_softmax(cur_logits[:, :-1].float(), dim=-1)
    ref = F.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    kl = (ref.exp() * (ref - cur)).sum(-1)
    m = tgt_mask[:, 1:]
    return (kl * m).sum() / m.sum().clamp(min=1)


def sample_kl_loss(model, ids: torch.Tensor, tgt_mask: torch.Tensor,
                   logits: torch.Tensor | None = None) -> torch.Tensor:
    """`masked_kl` of the model (its current `logits` on ids, if already computed) against
    the initial LLM, i.e. the same model with its LoRA adapters off."""
    with torch.no_grad(), model.disable_adapter():
        ref = model(input_ids=ids).logits
    if logits is None:
        logits = model(input_ids=ids).logits
    return masked_kl(logits, ref, tgt_mask)


def label_contrast_loss(model, label_prompts: list[list[int]], conts: list[list[int]],
                        labels: np.ndarray, weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_i CE(softmax_c(-NLL_i(c)), y_i) / sum_i w_i, NLL_i(c) the summed token NLL of
    continuation `conts[i]` after label c's prompt: the generative classifier's loss on the
    samples (one forward pass of len(conts) x C rows)."""
    C, b = len(label_prompts), len(conts)
    device = next(model.parameters()).device
    ids, m = pack_pairs([label_prompts[c] for c in range(C) for _ in range(b)], list(conts) * C)
    ids, m = ids.to(device), m.to(device)
    nll = token_nll(model(input_ids=ids).logits, ids, m).sum(1).reshape(C, b).T  # (b, C)
    y = torch.as_tensor(np.asarray(labels, np.int64), device=device)
    ce = F.cross_entropy(-nll, y, reduction="none")
    return (weights * ce).sum() / weights.sum().clamp(min=1e-12)


def ngram_novelty(texts: list[str], n: int = 6) -> np.ndarray:
    """(N,) share of each text's distinct character n-grams that occur in no other text of
    `texts` (1: nothing shared; a text shorter than n counts as 1)."""
    grams = [{t[i:i + n] for i in range(len(t) - n + 1)} for t in texts]
    count: dict[str, int] = {}
    for g in grams:
        for x in g:
            count[x] = count.get(x, 0) + 1
    return np.array([sum(count[x] == 1 for x in g) / len(g) if g else 1.0 for g in grams])


def select_for_clients(scores: np.ndarray, labels: np.ndarray, keep_top: float) -> np.ndarray:
    """Sorted indices of the `keep_top` best-scored samples of each label."""
    return np.flatnonzero(_top_per_label(np.asarray(scores, np.float64), labels, keep_top))


def update_llm(model, prompts: list[list[int]], conts: list[list[int]], weights: np.ndarray,
               bottom: np.ndarray, general: np.ndarray | None, steps: int, batch: int,
               lr: float, guard: str, guard_weight: float, unlikelihood: float,
               seq: int, rng: np.random.Generator, sample_kl: float = 0.0,
               label_contrast: float = 0.0, all_prompts: list[list[int]] | None = None,
               labels: np.ndarray | None = None, contrast_batch: int = 16) -> list[float]:
    """`steps` AdamW steps on the trainable (LoRA) parameters: reward-weighted NLL of the
    weighted samples (+ `sample_kl` x their KL from the initial LLM, + `label_contrast` x
    `label_contrast_loss` on the first `contrast_batch` of them, which needs every label's
    prompt `all_prompts` and the samples' `labels`) + unlikelihood on the `bottom` ones +
    the guard on general windows. Returns the per-step loss."""
    if label_contrast > 0 and (all_prompts is None or labels is None):
        raise ValueError("label_contrast needs all_prompts and labels")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    device = next(model.parameters()).device
    w_all = np.asarray(weights, dtype=np.float64)
    pos, neg = np.flatnonzero(w_all > 0), np.flatnonzero(bottom)
    losses = []
    model.train()
    for _ in range(steps):
        loss = torch.zeros((), device=device)
        if pos.size:
            b = rng.choice(pos, size=min(batch, pos.size), replace=False)
            ids, m = pack_pairs([prompts[i] for i in b], [conts[i] for i in b])
            ids, m = ids.to(device), m.to(device)
            w = torch.as_tensor(w_all[b], dtype=torch.float32, device=device)
            logits = model(input_ids=ids).logits
            loss = loss + weighted_nll_loss(logits, ids, m, w)
            if sample_kl > 0:
                loss = loss + sample_kl * sample_kl_loss(model, ids, m, logits)
            if label_contrast > 0:
                bc = b[:contrast_batch]
                loss = loss + label_contrast * label_contrast_loss(
                    model, all_prompts, [conts[i] for i in bc], labels[bc],
                    torch.as_tensor(w_all[bc], dtype=torch.float32, device=device))
        if unlikelihood > 0 and neg.size:
            b = rng.choice(neg, size=min(batch, neg.size), replace=False)
            ids, m = pack_pairs([prompts[i] for i in b], [conts[i] for i in b])
            ids, m = ids.to(device), m.to(device)
            loss = loss + unlikelihood * unlikelihood_loss(model(input_ids=ids).logits, ids, m)
        if guard != "none" and guard_weight > 0 and general is not None:
            win = torch.from_numpy(sample_windows(general, seq, batch, rng)).to(device)
            loss = loss + guard_weight * guard_loss(model, win, guard)
        if not loss.requires_grad:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
