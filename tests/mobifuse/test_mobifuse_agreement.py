"""Stereo-agreement refinement against a per-pixel loop reference and its properties."""

import numpy as np
import pytest

from mobifuse.agreement import stereo_agreement


def _loop(d, s_ref, st, sv, s_st, k, ratio):
    out = np.array(d, dtype=np.float64)
    for idx in np.ndindex(out.shape):  # the obvious per-pixel rule
        close = abs(d[idx] - st[idx]) <= k * np.sqrt(s_ref[idx] ** 2 + s_st[idx] ** 2)
        if sv[idx] and s_st[idx] < ratio * s_ref[idx] and close:
            w1, w2 = 1 / s_ref[idx] ** 2, 1 / s_st[idx] ** 2
            out[idx] = (d[idx] * w1 + st[idx] * w2) / (w1 + w2)
    return out


@pytest.mark.parametrize("shape", [(7, 9), (2, 5, 6)])
def test_stereo_agreement_matches_a_loop_and_stays_between_its_inputs(shape):
    rng = np.random.default_rng(3)
    d = rng.uniform(1, 4, shape)
    st = d + rng.normal(0, 0.2, shape)
    s_ref, s_st = rng.uniform(0.02, 0.3, shape), rng.uniform(0.02, 0.3, shape)
    sv = rng.random(shape) < 0.7
    out = stereo_agreement(d, s_ref, st, sv, s_st, 0.75, 0.5)
    ref = _loop(d, s_ref, st, sv, s_st, 0.75, 0.5)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    assert 0 < np.mean(out != d.astype(np.float32)) < 1  # some pixels change, some do not
    lo, hi = np.minimum(d, st), np.maximum(d, st)
    assert np.all((out >= lo - 1e-5) & (out <= hi + 1e-5))  # a convex mix of the two
    np.testing.assert_array_equal(out[~sv], d[~sv].astype(np.float32))  # unmeasured: kept


def test_stereo_agreement_off_and_far_stereo_is_ignored():
    d = np.full((4, 4), 2.0)
    s = np.full((4, 4), 0.05)
    assert np.array_equal(stereo_agreement(d, s, d + 0.01, np.ones((4, 4)), s, 0.0), d)
    far = stereo_agreement(d, s, np.full((4, 4), 100.0), np.ones((4, 4)), s)  # a broken sensor
    np.testing.assert_array_equal(far, d)
    np.testing.assert_allclose(stereo_agreement(d, s, d + 0.02, np.ones((4, 4)), s, 1.0, 1.01),
                               2.01, rtol=1e-6)  # equal sigmas: the midpoint
    same = stereo_agreement(d, s, d + 0.02, np.ones((4, 4)), s)  # sigma_st = sigma_tof: no
    np.testing.assert_array_equal(same, d)
    with pytest.raises(ValueError, match="k must be >= 0"):
        stereo_agreement(d, s, d, np.ones((4, 4)), s, -1.0)


def test_tof_anchor_probe_stays_between_its_inputs_and_excess_split_adds_up():
    """The ToF-anchor probe (`experiments.cross_rig_seeds`): against a per-pixel loop, clipped
    to ToF +- c sigma where the ToF measured, untouched elsewhere, always between the net's
    depth and the ToF; the excess-error split of a class and its complement sum to 1."""
    from mobifuse.experiments.cross_rig_seeds import excess_split, ratios, tof_anchor

    rng = np.random.default_rng(3)
    d, tof = rng.uniform(1, 3, (6, 7)), rng.uniform(1, 3, (6, 7))
    tv, s = rng.random((6, 7)) < 0.7, rng.uniform(0.01, 0.3, (6, 7))
    out = tof_anchor(d, tof, tv, s, 2.0)
    for y in range(6):
        for x in range(7):
            want = min(max(d[y, x], tof[y, x] - 2 * s[y, x]), tof[y, x] + 2 * s[y, x]) \
                if tv[y, x] else d[y, x]
            assert out[y, x] == pytest.approx(want, rel=1e-6)
    assert np.all(out >= np.minimum(d, tof) - 1e-6) and np.all(out <= np.maximum(d, tof) + 1e-6)
    gt = rng.uniform(1, 3, (6, 7))
    f = {"gt": gt, "geom": np.stack([tof, tv, d, tv]), "mask_edges": rng.random((6, 7)) < 0.3,
         "sigma_tof": s}
    sp = excess_split(out, f)
    for c in ("tof_valid", "edge", "tof_valid_flat", "st_measured", "moved_to_stereo"):
        assert sp[c]["excess_share"] + sp[c]["excess_share_not"] == pytest.approx(1.0)
    # the depth quintiles partition the flat ToF-valid pixels: their excess adds up
    flat = tv & ~f["mask_edges"]
    ex = np.abs(out - gt) - np.abs(tof - gt)
    assert sum(q["excess_m_sum"] for q in sp["flat_by_depth"]) == pytest.approx(ex[flat].sum())
    assert ratios([tof], [f]) == [pytest.approx(1.0)]
