"""Feedback and LLM-update components against hand-computed cases and slow references."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crosslm.feedback import (
    aggregate_scores,
    guard_loss,
    label_contrast_loss,
    masked_kl,
    ngram_novelty,
    pack_pairs,
    sample_kl_loss,
    sample_weights,
    select_for_clients,
    token_nll,
    unlikelihood_loss,
    update_llm,
    weighted_nll_loss,
)
from crosslm.models import build_tiny_llm, with_lora


def test_aggregate_scores_is_the_client_weighted_mean():
    s = np.array([[0.2, 0.9], [0.6, 0.1], [1.0, 0.5]])
    assert np.allclose(aggregate_scores(s), [0.6, 0.5])
    # weights 1:1:2 -> (0.2 + 0.6 + 2.0) / 4, (0.9 + 0.1 + 1.0) / 4
    assert np.allclose(aggregate_scores(s, np.array([1, 1, 2])), [0.7, 0.5])
    with pytest.raises(ValueError):
        aggregate_scores(np.zeros(3))
    with pytest.raises(ValueError):
        aggregate_scores(s, np.array([0, 0, 0]))


def test_weighted_nll_matches_a_hand_computed_case():
    # vocab 2; sample 0: prompt [0], continuation [1]; sample 1: prompt [0], continuation [0, 1]
    ids, mask = pack_pairs([[0], [0]], [[1], [0, 1]])
    assert ids.tolist() == [[0, 1, 0], [0, 0, 1]]
    assert mask.tolist() == [[False, True, False], [False, True, True]]
    logits = torch.zeros(2, 3, 2)
    logits[0, 0] = torch.tensor([0.0, math.log(3)])  # p(1) = 3/4
    logits[1, 0] = torch.tensor([math.log(3), 0.0])  # p(0) = 3/4
    logits[1, 1] = torch.tensor([0.0, 0.0])  # p(1) = 1/2
    nll0 = -math.log(3 / 4)
    nll1 = (-math.log(3 / 4) - math.log(1 / 2)) / 2
    w = torch.tensor([2.0, 1.0])
    want = (2 * nll0 + 1 * nll1) / 3
    assert weighted_nll_loss(logits, ids, mask, w).item() == pytest.approx(want, rel=1e-6)
    # zero weight removes a sample
    got = weighted_nll_loss(logits, ids, mask, torch.tensor([0.0, 1.0])).item()
    assert got == pytest.approx(nll1, rel=1e-6)
    # unlikelihood: mean over the 3 target tokens of -log(1 - p)
    ul = (-math.log(1 / 4) - math.log(1 / 4) - math.log(1 / 2)) / 3
    assert unlikelihood_loss(logits, ids, mask).item() == pytest.approx(ul, rel=1e-5)


def test_token_nll_matches_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 11)
    ids = torch.randint(0, 11, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.bool)
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1),
                          reduction="none").reshape(3, 5)
    assert torch.allclose(token_nll(logits, ids, mask), ref, atol=1e-6)


def test_sample_weights_and_selection_keep_the_top_share_per_label():
    s = np.array([0.1, 0.9, 0.5, 0.3, 0.8, 0.2])
    y = np.array([0, 0, 0, 1, 1, 1])
    w, bottom = sample_weights(s, y, "reward")
    assert np.array_equal(w, s) and not bottom.any()
    w, bottom = sample_weights(s, y, "topq", topq=1 / 3)
    assert w.tolist() == [0, 1, 0, 0, 1, 0] and np.array_equal(bottom, w == 0)
    assert select_for_clients(s, y, 2 / 3).tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        sample_weights(s, y, "nope")


def test_kl_guard_is_zero_before_training_and_update_moves_only_lora():
    torch.manual_seed(0)
    model = with_lora(build_tiny_llm(16, 1, 2, 32), 4, 8.0)
    win = torch.randint(0, 256, (2, 12))
    assert guard_loss(model, win, "kl").item() == pytest.approx(0.0, abs=1e-6)
    lm = guard_loss(model, win, "lm").item()
    assert lm == pytest.approx(model(input_ids=win, labels=win).loss.item(), rel=1e-6)
    frozen = {k: v.clone() for k, v in model.named_parameters() if not v.requires_grad}
    general = np.random.default_rng(0).integers(0, 256, 500).astype(np.uint8)
    losses = update_llm(model, [[65]] * 4, [[66, 67, 68]] * 4, np.ones(4), np.zeros(4, bool),
                        general, steps=3, batch=4, lr=1e-2, guard="kl", guard_weight=1.0,
                        unlikelihood=0.0, seq=16, rng=np.random.default_rng(0))
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert all(torch.equal(v, frozen[k]) for k, v in model.named_parameters()
               if not v.requires_grad)
    assert guard_loss(model, win, "kl").item() > 0


def test_reward_weighted_update_raises_the_likelihood_of_rewarded_samples():
    torch.manual_seed(1)
    base = build_tiny_llm(16, 1, 2, 32)
    with torch.no_grad():  # a random init's 0.02-scale tied embedding caps the logits near 0
        base.model.embed_tokens.weight.mul_(50)
    model = with_lora(base, 4, 8.0)
    good, bad = [ord(c) for c in "aaaa"], [ord(c) for c in "zzzz"]
    ids, mask = pack_pairs([[10], [10]], [good, bad])
    with torch.no_grad():
        before = token_nll(model(input_ids=ids).logits, ids, mask).sum(1)
    update_llm(model, [[10], [10]], [good, bad], np.array([1.0, 0.0]), np.zeros(2, bool),
               None, steps=30, batch=2, lr=5e-2, guard="none", guard_weight=0.0,
               unlikelihood=0.0, seq=8, rng=np.random.default_rng(0))
    with torch.no_grad():
        after = token_nll(model(input_ids=ids).logits, ids, mask).sum(1)
    assert after[0] < before[0] - 0.5  # the rewarded sample became much more likely
    assert (before[0] - after[0]) > (before[1] - after[1])


def test_masked_kl_matches_a_hand_computed_case():
    # two-token vocabulary; position 0 predicts a target token, position 1 does not
    ref = torch.tensor([[[0.0, 0.0], [5.0, 0.0], [0.0, 0.0]]])  # p_ref = (1/2, 1/2) at 0
    cur = torch.tensor([[[math.log(3.0), 0.0], [0.0, 5.0], [0.0, 0.0]]])  # p_cur = (3/4, 1/4)
    mask = torch.tensor([[False, True, False]])
    want = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert masked_kl(cur, ref, mask).item() == pytest.approx(want, rel=1e-6)
    assert masked_kl(ref, ref, mask).item() == pytest.approx(0.0, abs=1e-7)


def test_sample_kl_is_the_kl_to_the_initial_llm_and_keeps_the_update_near_it():
    torch.manual_seed(2)
    base = build_tiny_llm(16, 1, 2, 32)
    with torch.no_grad():
        base.model.embed_tokens.weight.mul_(50)
    import copy

    initial = copy.deepcopy(base).eval()  # an independent copy of the pre-LoRA model
    prompts, conts = [[10], [10]], [[ord(c) for c in "abcab"], [ord(c) for c in "xyz"]]
    ids, mask = pack_pairs(prompts, conts)
    runs = {}
    for weight in (0.0, 5.0):
        torch.manual_seed(3)
        model = with_lora(copy.deepcopy(base), 4, 8.0)
        assert sample_kl_loss(model, ids, mask).item() == pytest.approx(0.0, abs=1e-6)
        update_llm(model, prompts, conts, np.array([1.0, 1.0]), np.zeros(2, bool), None,
                   steps=20, batch=2, lr=5e-2, guard="none", guard_weight=0.0,
                   unlikelihood=0.0, seq=8, rng=np.random.default_rng(0), sample_kl=weight)
        with torch.no_grad():
            cur, ref = model(input_ids=ids).logits, initial(input_ids=ids).logits
            got = sample_kl_loss(model, ids, mask).item()
        # a loop over the scored positions against the separately kept initial model
        lc, lr_ = F.log_softmax(cur, -1), F.log_softmax(ref, -1)
        terms = [float((lr_[b, t].exp() * (lr_[b, t] - lc[b, t])).sum())
                 for b in range(2) for t in range(ids.shape[1] - 1) if mask[b, t + 1]]
        assert got == pytest.approx(sum(terms) / len(terms), rel=1e-4)
        runs[weight] = got
    assert runs[0.0] > 0 and runs[5.0] < 0.5 * runs[0.0]


def test_label_contrast_is_the_generative_classifiers_cross_entropy():
    torch.manual_seed(4)
    base = build_tiny_llm(16, 1, 2, 32)
    with torch.no_grad():
        base.model.embed_tokens.weight.mul_(20)
    model = with_lora(base, 4, 8.0).eval()
    prompts = [[10, 11], [12], [13, 14, 15]]  # three labels, prompts of different lengths
    conts = [[ord(c) for c in "abcab"], [ord(c) for c in "xy"], [ord(c) for c in "qqq"]]
    y, w = np.array([2, 0, 1]), torch.tensor([1.0, 0.5, 2.0])
    # reference: each (text, prompt) pair scored alone, one token at a time
    ce = []
    for i, x in enumerate(conts):
        logp = []
        for p in prompts:
            seq = torch.tensor([p + x])
            with torch.no_grad():
                lp = F.log_softmax(model(input_ids=seq).logits[0], -1)
            logp.append(sum(float(lp[len(p) - 1 + t, x[t]]) for t in range(len(x))))
        logp = torch.tensor(logp)
        ce.append(float(torch.logsumexp(logp, 0) - logp[y[i]]))
    want = sum(float(w[i]) * ce[i] for i in range(3)) / float(w.sum())
    with torch.no_grad():
        got = label_contrast_loss(model, prompts, conts, y, w).item()
    assert got == pytest.approx(want, rel=1e-4)


def test_label_contrast_update_separates_the_labels_prompts():
    torch.manual_seed(5)
    base = build_tiny_llm(16, 1, 2, 32)
    with torch.no_grad():
        base.model.embed_tokens.weight.mul_(20)
    prompts = [[10], [12]]
    conts = [[ord(c) for c in "aaab"], [ord(c) for c in "zzzy"]]
    y = np.array([0, 1])
    ids, mask = pack_pairs([prompts[0], prompts[1], prompts[1], prompts[0]], conts + conts)

    def margin(model):  # log p(x | own label) - log p(x | other label), summed over both
        with torch.no_grad():
            nll = token_nll(model(input_ids=ids).logits, ids, mask).sum(1)
        return float(nll[2] + nll[3] - nll[0] - nll[1])

    out = {}
    for weight in (0.0, 1.0):
        import copy

        torch.manual_seed(6)
        model = with_lora(copy.deepcopy(base), 4, 8.0)
        start = margin(model)
        update_llm(model, [prompts[c] for c in y], conts, np.ones(2), np.zeros(2, bool), None,
                   steps=15, batch=2, lr=5e-2, guard="none", guard_weight=0.0,
                   unlikelihood=0.0, seq=8, rng=np.random.default_rng(0),
                   label_contrast=weight, all_prompts=prompts, labels=y)
        out[weight] = margin(model) - start
    assert out[1.0] > out[0.0] + 5.0  # the contrastive term widens the prompts' margin
    with pytest.raises(ValueError):
        update_llm(model, prompts, conts, np.ones(2), np.zeros(2, bool), None, steps=1,
                   batch=2, lr=1e-2, guard="none", guard_weight=0.0, unlikelihood=0.0,
                   seq=8, rng=np.random.default_rng(0), label_contrast=1.0)


def test_ngram_novelty_counts_the_ngrams_no_other_text_has():
    nov = ngram_novelty(["abcdefgh", "abcdefxy", "zz", "abcdefgh"], n=6)
    # "abcdefgh": abcdef (shared), bcdefg, cdefgh (both in the duplicate) -> 0/3
    # "abcdefxy": abcdef shared; bcdefx, cdefxy its own -> 2/3; "zz": shorter than n -> 1
    assert nov.tolist() == pytest.approx([0.0, 2 / 3, 1.0, 0.0])
    assert ngram_novelty(["abcdefg", "uvwxyz1"], n=6).tolist() == [1.0, 1.0]
