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
