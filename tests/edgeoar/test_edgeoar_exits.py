"""Exit decisions against hand-computed cases: IIE weights and fusion, modality consistency,
the first-exit rule, threshold selection on validation (every operating rule, by hand, as
properties and against a clip-by-clip brute force) and the accuracy-vs-frames AUC."""

import math

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from edgeoar.exits import (
    RULES,
    ExitRule,
    OperatingRule,
    apply_policy,
    auc,
    choose_point,
    compare_policies,
    entropy,
    first_exit,
    fit_temperature,
    frame_floor,
    iie_fuse,
    mc_effect,
    modality_consistency,
    oracle_exits,
    paired_drop_se,
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
                      rule=0.0)
    assert param == 0.9 and m["acc"] == 1.0  # 0.65 exits clip 2 early and wrong
    param, m = select("max_softmax", s, labels, [0.0, 0.65], ref_acc=1.0, rule=0.4)
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


# candidate operating points (param, summary, se of the paired difference), full clip 0.90,
# tolerance 0.02: the bar is 0.88
_ROWS = [("p1", {"acc": 0.80, "frac": 0.20}, 0.010),
         ("p2", {"acc": 0.88, "frac": 0.28}, 0.020),  # the edge of the bar
         ("p3", {"acc": 0.89, "frac": 0.31}, 0.015),
         ("p4", {"acc": 0.90, "frac": 0.33}, 0.010),
         ("p5", {"acc": 0.91, "frac": 0.38}, 0.005)]


@pytest.mark.parametrize("rule, expect", [
    (OperatingRule("fewest_frames"), "p2"),
    (OperatingRule("budget", budget=0.34), "p4"),  # p5 is over the budget
    (OperatingRule("budget", budget=0.30), "p2"),  # only the edge fits
    (OperatingRule("budget", budget=0.25), "p2"),  # nothing accurate fits: fewest_frames
    # a = acc - 0.88 = 0, .01, .02 and f = 0.34 - frac = .06, .03, .01 over p2..p4; divided by
    # their maxima: min(0, 1), min(.5, .5), min(1, 1/6) -> p3
    (OperatingRule("centre", budget=0.34), "p3"),
    # acc - z se >= 0.88: z = 1: p2 0.86, p3 0.875, p4 0.89 -> p4; z = 3: p4 0.87, p5 0.895
    (OperatingRule("lower_bound", z=1.0), "p4"),
    (OperatingRule("lower_bound", z=3.0), "p5"),
    (OperatingRule("lower_bound", z=0.0), "p2"),  # no margin: the edge
])
def test_operating_rules_hand_computed(rule, expect):
    assert choose_point(_ROWS, 0.90, rule)[0] == expect


def test_operating_rules_without_an_accurate_point_take_the_most_accurate():
    rows = [r for r in _ROWS if r[0] in ("p1", "p2")]
    for kind in RULES:
        assert choose_point(rows, 0.95, OperatingRule(kind))[0] == "p2"
    with pytest.raises(ValueError, match="unknown operating rule"):
        OperatingRule("edge")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 100), st.integers(1, 100), st.integers(0, 20)),
                min_size=1, max_size=12),
       st.integers(60, 100), st.integers(20, 60))
def test_operating_rules_properties(pts, ref, budget):
    """On random candidate sets: the budget and centre points are accurate and inside the
    budget whenever any accurate point is; the budget point is at least as accurate as the
    edge point when the edge point fits; lower_bound at z = 0 is fewest_frames; every
    lower_bound point clears the bar with its margin, or is the most accurate point."""
    rows = [(i, {"acc": a / 100, "frac": f / 100}, e / 1000) for i, (a, f, e) in enumerate(pts)]
    ref, budget = ref / 100, budget / 100
    edge = choose_point(rows, ref, OperatingRule("fewest_frames"))
    inside = [r for r in rows if r[1]["acc"] >= ref - 0.02 - 1e-12
              and r[1]["frac"] <= budget + 1e-12]
    for kind in ("budget", "centre"):
        r = choose_point(rows, ref, OperatingRule(kind, budget=budget))
        if inside:
            assert r[1]["acc"] >= ref - 0.02 - 1e-12 and r[1]["frac"] <= budget + 1e-12
        else:
            assert r is edge
    if edge in inside:
        assert choose_point(rows, ref, OperatingRule("budget", budget=budget))[1]["acc"] >= \
            edge[1]["acc"]
    lb0 = choose_point(rows, ref, OperatingRule("lower_bound", z=0.0))
    assert lb0[1] == edge[1]
    lb = choose_point(rows, ref, OperatingRule("lower_bound", z=2.0))
    best = max(r[1]["acc"] for r in rows)
    assert lb[1]["acc"] - 2.0 * lb[2] >= ref - 0.02 - 1e-9 or lb[1]["acc"] == best


def test_paired_drop_se_hand_computed_and_against_a_bootstrap():
    # d = 1, 0, -1, 0: mean 0, sd (ddof 1) sqrt(2 / 3), se sqrt(2 / 3) / 2
    assert paired_drop_se(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0])) == pytest.approx(
        math.sqrt(2 / 3) / 2)
    rng = np.random.default_rng(0)
    ref = rng.random(400) < 0.9
    mine = np.where(rng.random(400) < 0.15, ~ref, ref)  # flips 15 % of the clips
    d = mine.astype(float) - ref
    boot = [d[rng.integers(0, 400, 400)].mean() for _ in range(4000)]  # slow reference
    assert paired_drop_se(mine, ref) == pytest.approx(np.std(boot), rel=0.06)


def test_select_with_a_rule_matches_a_brute_force_over_the_grid():
    """`select` with each rule = `choose_point` over rows counted clip by clip."""
    rng = np.random.default_rng(3)
    n, t, k = 60, 6, 4
    y = rng.integers(0, k, n)
    rgb = rng.normal(0, 1, (n, t, k))
    mot = rng.normal(0, 1, (n, t, k))
    rgb[np.arange(n)[:, None], np.arange(t)[None], y[:, None]] += np.linspace(0, 3, t)
    s = step_scores(rgb, mot, np.zeros((n, t)))
    grid = [(a, b) for a in np.linspace(0.3, 1, 15) for b in (0.0, 0.5)]
    full_ok = s["p_iie"][:, -1].argmax(-1) == y
    ref = full_ok.mean()
    rows = []
    for p in grid:
        ex = np.array([next((j for j in range(t) if s["p_iie"][i, j].max() >= p[0]
                             and s["mc"][i, j] >= p[1]), t - 1) for i in range(n)])
        ok = s["p_iie"][np.arange(n), ex].argmax(-1) == y
        d = ok.astype(float) - full_ok
        rows.append((p, {"acc": ok.mean(), "frac": (ex + 1).mean() / t},
                     np.std(d, ddof=1) / math.sqrt(n)))
    for kind in RULES:
        rule = OperatingRule(kind, tolerance=0.05, budget=0.5, z=1.0)
        param, m = select("iie_mc", s, y, grid, ref, rule)
        assert param == choose_point(rows, ref, rule)[0]
