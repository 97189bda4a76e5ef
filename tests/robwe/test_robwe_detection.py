"""Server-side detection statistics (RobWE §2.4) against closed forms."""

import numpy as np
import pytest
from scipy.stats import norm

from robwe.detection import WatermarkDetector, fit_normal


def test_fit_normal_closed_forms():
    v = np.array([0.9, 1.0, 1.0, 0.95, 0.7])
    assert fit_normal(v, "gaussian") == pytest.approx((v.mean(), v.std()))
    med = np.median(v)
    assert fit_normal(v, "robust") == pytest.approx((med, 1.4826 * np.median(np.abs(v - med))))
    assert fit_normal(np.ones(4), "robust", min_std=0.02) == (1.0, 0.02)
    with pytest.raises(ValueError):
        fit_normal(np.array([]))


def test_normal_bound_is_mu_minus_2_97_sigma():
    det = WatermarkDetector(confidence=0.997, estimator="gaussian", min_std=0.0)
    cohort = np.array([0.9, 1.0, 0.95, 0.85])
    mu, sd = cohort.mean(), cohort.std()
    assert det.normal_bound(cohort) == pytest.approx(mu + sd * norm.ppf(0.0015))
    assert norm.ppf(0.0015) == pytest.approx(-2.968, abs=1e-3)


def test_flags_a_forger_and_accepts_honest_clients():
    det = WatermarkDetector(min_cohort=3)
    accs = {c: 1.0 for c in range(8)} | {8: 0.9, 9: 0.91}
    decisions = det.check(accs)
    flagged = {d.client for d in decisions if not d.accepted}
    assert flagged == {8, 9}
    assert all(d.mode == "normal" for d in decisions)


def test_paper_gaussian_fit_is_fooled_by_forgers_in_the_cohort():
    # Why "robust" is our default: with 3 forgers among 19 others, mean/std widens the bound.
    accs = {c: 1.0 for c in range(16)} | {16: 0.9, 17: 0.9, 18: 0.9, 19: 0.9}
    gauss = WatermarkDetector(estimator="gaussian", min_std=0.0).check(accs)
    robust = WatermarkDetector(estimator="robust").check(accs)
    assert not any(not d.accepted for d in gauss)
    assert {d.client for d in robust if not d.accepted} == {16, 17, 18, 19}


def test_small_cohort_is_accepted_untested():
    det = WatermarkDetector(min_cohort=3)
    decisions = det.check({0: 1.0, 1: 0.2, 2: 1.0})  # 2 others < 3
    assert all(d.accepted and d.mode == "untested" for d in decisions)


def test_cohort_is_by_participation_count():
    det = WatermarkDetector(min_cohort=3)
    det.check({c: 0.6 for c in range(4)})  # first participations: half-embedded
    # client 9's first upload is compared with the first uploads (0.6), not later ones
    d = det.check({9: 0.6, 0: 1.0, 1: 1.0, 2: 1.0})
    by = {x.client: x for x in d}
    assert by[9].accepted and by[9].mode == "normal"
    assert by[0].mode == "untested"  # only 1, 2 have a 2nd participation besides 0


def test_bad_mode_after_bad_nums_flags():
    det = WatermarkDetector(bad_nums=2, min_cohort=3, confidence_bad=0.5)
    det.check({0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 10: 0.8, 11: 0.82})
    assert set(det.flagged) == {10, 11}
    mu, sd = np.mean([0.8, 0.82]), np.std([0.8, 0.82])
    assert det.bad_bound() == pytest.approx(mu + sd * norm.ppf(0.75))
    d = {x.client: x for x in det.check({4: 1.0, 5: 1.0, 6: 1.0, 12: 0.81})}
    assert d[4].accepted and d[4].mode == "bad"
    assert not d[12].accepted


def test_state_round_trip():
    det = WatermarkDetector()
    det.check({c: 1.0 for c in range(5)} | {7: 0.5})
    again = WatermarkDetector()
    again.load_state_dict(det.state_dict())
    assert again.state_dict() == det.state_dict()
    nxt = {c: 1.0 for c in range(5)}
    assert [x.accepted for x in again.check(nxt)] == [x.accepted for x in det.check(nxt)]
