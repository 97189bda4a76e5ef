"""The KD-gap probe's measurements against hand-computed cases and the bench's own metric."""

import numpy as np

from crosslm.experiments.kd_gap import distinct_ratio, gen_classifier, near_copy_share, nll_matrix


def test_distinct_ratio_counts_repeated_character_ngrams():
    # "abcabc" has the 3-grams abc, bca, cab, abc: 3 distinct of 4
    assert distinct_ratio(["abcabc"], n=3) == 3 / 4
    # two copies of one text: every n-gram twice
    assert distinct_ratio(["abcd", "abcd"], n=2) == 3 / 6
    assert distinct_ratio(["ab", "cd"], n=6) == 0.0  # too short for any 6-gram


def test_near_copy_share_uses_ngram_jaccard():
    pool = ["abcdef"]
    # "abcdeg": 2-grams {ab, bc, cd, de, eg} vs {ab, bc, cd, de, ef}: Jaccard 4 / 6
    assert near_copy_share(["abcdeg"], pool, n=2, thr=0.6) == 1.0
    assert near_copy_share(["abcdeg"], pool, n=2, thr=0.7) == 0.0
    assert near_copy_share(["ABCDEF", "zzzzzz"], pool, n=2) == 0.5  # case-insensitive
    assert near_copy_share(["abc"], [], n=2) == 0.0


def test_gen_classifier_reads_the_nll_matrix():
    before = np.array([[1.0, 2.0], [1.0, 1.5], [3.0, 1.0]])  # argmin 0, 0, 1
    after = before + np.array([[1.5, 0.0], [0.1, 0.1], [0.0, 0.0]])  # argmin 1, 0, 1
    y = np.array([0, 1, 1])
    g = gen_classifier(before, after, y)
    assert g["acc_before"] == 2 / 3 and g["acc_after"] == 1 / 3
    assert g["pred_share_before"] == [0.667, 0.333]
    # true-prompt changes 1.5, 0.1, 0.0; other-prompt changes 0.0, 0.1, 0.0
    assert np.isclose(g["delta_nll_true_prompt"], 1.6 / 3)
    assert np.isclose(g["delta_nll_other_prompts"], 0.1 / 3)
    # margin = mean over texts of (other-prompt NLL - true-prompt NLL): (1 - 0.5 + 2) / 3
    assert np.isclose(g["margin_before"], 2.5 / 3)
    # debiased: column means (5/3, 1.5) subtracted -> rows -2/3 vs 0.5, -2/3 vs 0, 4/3 vs -0.5
    assert g["acc_debiased_before"] == 2 / 3


def test_nll_matrix_agrees_with_the_bench_generative_classifier(tiny_setup):
    from crosslm.evaluation import generative_accuracy
    from crosslm.generation import label_prompts
    from crosslm.pipeline import fresh_llm

    s = tiny_setup
    prompts = label_prompts(s.codec, s.fed.task.descriptions(), "prompt")
    idx = s.fed.test[:12]
    texts, y = s.fed.texts(idx), s.fed.task.labels[idx]
    llm = fresh_llm(s)
    m = nll_matrix(llm, s.codec, prompts, texts)
    assert m.shape == (12, len(prompts))
    assert (m.argmin(1) == y).mean() == generative_accuracy(llm, s.codec, prompts, texts, y)


def _pools_under_two_score_orders(setup, cfg, mode):
    """The synthetic pool after round 1 when the clients' scores come in one order, and when
    they come reversed; plus whether the LLM's trainable weights stayed as they were."""
    import torch

    from crosslm.pipeline import make_arm
    from shared.fl import Update

    pools, same_llm = [], True
    for flip in (False, True):
        strategy, _ = make_arm(setup, mode, cfg)
        before = {k: v.detach().clone() for k, v in strategy.llm.named_parameters()
                  if v.requires_grad}
        n = len(strategy.query_texts)
        s = torch.linspace(0.05, 0.95, n)
        s = s.flip(0) if flip else s
        strategy.aggregate_fit(1, [Update(k, {"scores": s}, 10, {}) for k in range(3)])
        pools.append(list(strategy.pool_texts))
        same_llm &= all(torch.equal(v, dict(strategy.llm.named_parameters())[k])
                        for k, v in before.items())
    return pools, same_llm


def test_kd_without_the_filter_ignores_the_scores_and_keeps_the_llm(tiny_setup, tiny_cfg):
    import dataclasses

    from crosslm.bench import BenchConfig, _arm_cfg
    from crosslm.config import CrossLMConfig

    bench = BenchConfig(**{f.name: getattr(tiny_cfg, f.name)
                           for f in dataclasses.fields(CrossLMConfig)})
    task = tiny_cfg.data.task
    nofilter = _arm_cfg(bench, "kd-nofilter", task, tiny_cfg.seed)
    assert not nofilter.feedback.enabled
    pools, same_llm = _pools_under_two_score_orders(tiny_setup, nofilter, "kd")
    assert pools[0] == pools[1] and pools[0] and same_llm
    # the filtered KD arm does read the scores: reversing them changes what the clients get
    pools, same_llm = _pools_under_two_score_orders(
        tiny_setup, _arm_cfg(bench, "kd", task, tiny_cfg.seed), "kd")
    assert pools[0] != pools[1] and same_llm



def test_oracle_accuracy_is_the_bench_judges_accuracy_on_real_test_text(tiny_cfg, tiny_setup):
    """`kd_gap.oracle_accuracy` trains the judge as `build_setup` does (a MiniLM judge with its
    embedder, since the tiny config's oracle is MiniLM) and scores it on the real test split."""
    from crosslm.bench import BenchConfig
    from crosslm.experiments.kd_gap import oracle_accuracy
    from shared.config import from_dict, to_dict

    assert tiny_cfg.oracle == "minilm"
    fed = tiny_setup.fed
    ref = float((tiny_setup.oracle.predict(fed.texts(fed.test))
                 == fed.task.labels[fed.test]).mean())
    cfg = from_dict(BenchConfig, {**to_dict(tiny_cfg), "tasks": [tiny_cfg.data.task],
                                  "seeds": [tiny_cfg.seed]})
    assert oracle_accuracy(cfg, tiny_cfg.data.task, tiny_cfg.seed) == ref
    assert 0.5 < ref <= 1.0  # a binary task: above chance
