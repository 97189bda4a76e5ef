"""Exit decisions against hand-computed cases: IIE weights and fusion, modality consistency,
the first-exit rule, threshold selection on validation and the accuracy-vs-frames AUC."""

import math

import numpy as np
import pytest

from edgeoar.exits import (
    ExitRule,
    apply_policy,
    auc,
    compare_policies,
    entropy,
    first_exit,
    fit_temperature,
    frame_floor,
    iie_fuse,
    mc_effect,
    modality_consistency,
    oracle_exits,
    select,
    step_scores,
    summarise,
)


def test_iie_hand_computed():
    p1 = np.array([0.5, 0.5])  # H = ln 2
    p2 = np.array([0.9, 0.1])  # H = -(0.9 ln 0.9 + 0.1 ln 0.1)
    h1, h2 = math.log(2), -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    w1 = (1 / h1) / (1 / h1 + 1 / h2)
    fused, w = iie_fuse([p1, p2])
    assert w == pytest.approx([w1, 1 - w1])
    assert fused == pytest.approx(w1 * p1 + (1 - w1) * p2)
    assert fused.sum() == pytest.approx(1.0)
    assert w[1] > w[0]  # the confident modality weighs more
    eq, w_eq = iie_fuse([p2, p2])
    assert w_eq == pytest.approx([0.5, 0.5]) and eq == pytest.approx(p2)
    assert entropy(p1) == pytest.approx(h1)


def test_modality_consistency_hand_computed():
    p = np.array([1.0, 0.0])
    q = np.array([0.0, 1.0])
    assert modality_consistency(p, p) == pytest.approx(1.0)
    assert modality_consistency(p, q) == pytest.approx(0.0, abs=1e-6)
    # JS([1,0],[.5,.5]) = 0.5 KL([1,0]||[.75,.25]) + 0.5 KL([.5,.5]||[.75,.25])
    r = np.array([0.5, 0.5])
    js = 0.5 * math.log(1 / 0.75) + 0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2))
    assert modality_consistency(p, r) == pytest.approx(1 - js / math.log(2), abs=1e-6)


def test_first_exit_and_policies():
    cond = np.array([[False, True, True], [False, False, False], [True, False, False]])
    assert first_exit(cond).tolist() == [1, 2, 0]
    # two clips, 3 steps, 2 classes: clip 0 confident from step 1, clip 1 never agrees
    rgb = np.log(np.array([[[0.5, 0.5], [0.99, 0.01], [0.99, 0.01]],
                           [[0.9, 0.1], [0.9, 0.1], [0.2, 0.8]]]))
    mot = np.log(np.array([[[0.5, 0.5], [0.98, 0.02], [0.99, 0.01]],
                           [[0.3, 0.7], [0.3, 0.7], [0.2, 0.8]]]))
    s = step_scores(rgb, mot, np.zeros((2, 3)))
    ex, pred = apply_policy("iie_mc", s, (0.9, 0.5))
    assert ex.tolist() == [1, 2] and pred.tolist() == [0, 1]  # clip 1: modalities disagree
    ex, _ = apply_policy("iie", s, 0.65)  # clip 1 fused: 0.69 on class 0
    assert ex.tolist() == [1, 0]  # without MC clip 1 exits at once (and is wrong)
    ex, _ = apply_policy("fixed_n", s, 2)
    assert ex.tolist() == [1, 1]
    ex, _ = apply_policy("full_clip", s, None)
    assert ex.tolist() == [2, 2]
    m = summarise(np.array([1, 0]), np.array([0, 0]), np.array([0, 1]), 3)
    assert m == {"acc": 0.5, "frames": 1.5, "frac": 0.5, "wrong_early": 0.5}


def test_select_prefers_fewest_frames_within_tolerance():
    rgb = np.log(np.array([[[0.6, 0.4], [0.95, 0.05]], [[0.4, 0.6], [0.05, 0.95]],
                           [[0.7, 0.3], [0.2, 0.8]]]))
    s = step_scores(rgb, rgb, np.zeros((3, 2)))
    labels = np.array([0, 1, 1])
    param, m = select("max_softmax", s, labels, [0.0, 0.65, 0.9, 1.0], ref_acc=1.0,
                      tolerance=0.0)
    assert param == 0.9 and m["acc"] == 1.0  # 0.65 exits clip 2 early and wrong
    param, m = select("max_softmax", s, labels, [0.0, 0.65], ref_acc=1.0, tolerance=0.4)
    assert param == 0.0 and m["frames"] == 1.0


def test_auc_closed_form():
    # one operating point at half the clip with accuracy 1 and the full clip at 1: on a
    # 2-step clip budgets run from 0.5 to 1 and the curve is 1 throughout
    assert auc(np.array([[0.5, 1.0], [1.0, 1.0]]), 2) == pytest.approx(1.0)
    # accuracy 0.5 up to budget 1 where it reaches 1: area ~ 0.5 on [0.5, 1)
    a = auc(np.array([[0.5, 0.5], [1.0, 1.0]]), 2)
    assert 0.5 <= a <= 0.51


def test_exit_rule_streams_like_the_policy():
    rng = np.random.default_rng(0)
    rgb, mot = rng.normal(size=(1, 6, 4)) * 3, rng.normal(size=(1, 6, 4)) * 3
    s = step_scores(rgb, mot, np.zeros((1, 6)))
    for th in [(0.0, 0.0), (0.6, 0.5), (0.99, 0.99)]:
        ex, pred = apply_policy("iie_mc", s, th)
        rule = ExitRule(*th, max_frames=6)
        for t in range(6):
            label, conf, exited = rule.update(rgb[0, t], mot[0, t])
            if exited:
                break
        assert t == ex[0] and label == pred[0]
        assert rule.update(None, None) == (label, conf, True)


def test_compare_policies_runs_every_policy():
    rng = np.random.default_rng(1)
    lab = rng.integers(0, 3, 20)
    lg = rng.normal(size=(20, 5, 3)) + 3 * np.eye(3)[lab][:, None] * np.linspace(0, 1, 5)[:, None]
    s = step_scores(lg, lg + rng.normal(size=lg.shape), rng.normal(size=(20, 5)))
    res = compare_policies(s, lab, {"t": (s, lab)}, 0.0, 11, [0.0, 0.5])
    assert set(res) == {"fixed_n", "max_softmax", "entropy", "gate", "random", "iie", "iie_mc",
                        "full_clip"}
    full = res["full_clip"]["val"]["acc"]
    for r in res.values():
        assert 0 <= r["t"]["auc"] <= 1 and 1 <= r["t"]["frames"] <= 5
        if r["val"]["acc"] >= full:
            assert r["t"]["acc"] >= full - 1e-9  # same data: the tolerance holds


def test_mc_effect_hand_made():
    # clip 0: at step 0 rgb says class 0 with confidence, motion says class 1 (wrong: label 1);
    # IIE alone exits there and is wrong; with MC it waits until both agree on class 1
    rgb = np.log(np.array([[[0.97, 0.03], [0.1, 0.9], [0.1, 0.9]]]))
    mot = np.log(np.array([[[0.4, 0.6], [0.1, 0.9], [0.1, 0.9]]]))
    s = step_scores(rgb, mot, np.zeros((1, 3)))
    lab = np.array([1])
    assert apply_policy("iie", s, 0.6)[0].tolist() == [0]
    r = mc_effect(s, lab, s, lab, conf_grid=11, mc_grid=[0.0, 0.5])
    assert r["wrong_early_mc"] == 0.0 and r["acc_mc"] == 1.0 and r["param"][1] == 0.5
    # on the same split IIE's own threshold (chosen at full-clip accuracy) also waits
    assert r["wrong_early_iie"] == 0.0 and math.isnan(r["cut"])


def test_mc_effect_equal_frames_hand_made():
    # clip 0 as above (MC waits to step 1 and is right); clip 1: both modalities confident and
    # agreeing on the right class from step 0. On validation IIE + MC needs 1.5 frames on
    # average; IIE alone reaches at least that many frames only with a threshold above 0.9
    rgb = np.log(np.array([[[0.97, 0.03], [0.1, 0.9], [0.1, 0.9]],
                           [[0.95, 0.05], [0.95, 0.05], [0.95, 0.05]]]))
    mot = np.log(np.array([[[0.4, 0.6], [0.1, 0.9], [0.1, 0.9]],
                           [[0.95, 0.05], [0.95, 0.05], [0.95, 0.05]]]))
    s = step_scores(rgb, mot, np.zeros((2, 3)))
    lab = np.array([1, 0])
    r = mc_effect(s, lab, s, lab, conf_grid=11, mc_grid=[0.0, 0.5])
    on = summarise(*apply_policy("iie_mc", s, r["param"]), lab, 3)
    eq = summarise(*apply_policy("iie", s, r["tau_eq"]), lab, 3)
    assert eq["frames"] >= on["frames"] - 1e-9  # matched on validation frames
    assert r["frac_eq"] == pytest.approx(eq["frac"]) and r["wrong_early_eq"] == eq["wrong_early"]
    # the smallest such threshold: one grid step lower gives fewer frames than MC
    lower = [g for g in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9) if g < r["tau_eq"]]
    if lower:
        assert summarise(*apply_policy("iie", s, max(lower)), lab, 3)["frames"] < on["frames"]


def test_fit_temperature_recovers_known_temperature():
    # labels drawn from softmax(z / T0) at each step: the NLL-optimal temperature is T0
    rng = np.random.default_rng(0)
    t0 = np.array([0.5, 1.0, 3.0])
    z = rng.normal(0, 2.0, (4000, 3, 5))
    p = np.exp(z / t0[None, :, None])
    p /= p.sum(-1, keepdims=True)
    for t in range(3):
        lab = np.array([rng.choice(5, p=q) for q in p[:, t]])
        got = fit_temperature(z[:, t:t + 1], lab)[0]
        assert got == pytest.approx(t0[t], rel=0.15)


def test_fit_temperature_never_worse_than_identity():
    rng = np.random.default_rng(1)
    z, lab = rng.normal(0, 4.0, (200, 4, 6)), rng.integers(0, 6, 200)
    temps = fit_temperature(z, lab, grid=np.array([0.5, 1.0, 2.0, 8.0]))

    def nll(x):
        q = np.exp(x - x.max(-1, keepdims=True))
        q /= q.sum(-1, keepdims=True)
        return -np.log(np.take_along_axis(q, lab[:, None, None], -1)[..., 0]).mean(0)

    assert np.all(nll(z / temps[None, :, None]) <= nll(z) + 1e-12)
    assert np.all(temps > 1.0)  # random labels: confident logits get flattened


def test_oracle_exits_hand_made():
    # (N=3, T=4): right from step 1 on; right at 0 then wrong then right from 2; never right
    pred = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1]])
    probs = np.eye(2)[pred]
    lab = np.array([0, 0, 0])
    assert oracle_exits(probs, lab).tolist() == [1, 2, 3]


def test_frame_floor_against_brute_force():
    """The closed form against every exit assignment of small random outputs."""
    import itertools

    rng = np.random.default_rng(3)
    for _ in range(20):
        n, t, k = 4, 3, 2
        probs = rng.random((n, t, k))
        lab = rng.integers(0, k, n)
        ok = probs.argmax(-1) == lab[:, None]
        for acc in (0.0, 0.5, 0.75, 1.0):
            best = min((np.mean(np.array(ex) + 1) for ex in itertools.product(range(t), repeat=n)
                        if ok[np.arange(n), ex].mean() >= acc - 1e-12), default=float("nan"))
            got = frame_floor(probs, lab, acc)
            assert (np.isnan(best) and np.isnan(got)) or got == pytest.approx(best)
