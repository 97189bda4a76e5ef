"""Posecodes against a hand-built skeleton with known angles (the reference), randomised binning
as a property, selection, aggregation and the deterministic templates."""

import numpy as np
import pytest
from bestshot_skeleton import NAMES, pose

from bestshot.posecodes import (
    IGNORED,
    POSECODES,
    categorise,
    category_frequencies,
    describe,
    extract_posecodes,
    posecode_match,
    posecode_values,
    select_posecodes,
)
from shared.errors import DataError


def _k(name):
    return [s.name for s in POSECODES].index(name)


KNEE_L = _k("angle:left_hip-left_knee-left_ankle")
KNEE_R = _k("angle:right_hip-right_knee-right_ankle")
ELBOW_L = _k("angle:left_shoulder-left_elbow-left_wrist")


@pytest.mark.parametrize("yaw", [0.0, 37.0, 180.0])
def test_angles_equal_the_ground_truth_exactly_with_randomisation_off(yaw):
    flex = np.array([0.0, 10.0, 30.0, 44.9, 45.1, 60.0, 90.0, 120.0, 134.0, 150.0])
    j = np.stack([pose(knee_flex=(f, f / 2), elbow_flex=(f, 0), yaw=yaw) for f in flex])
    v = posecode_values(j, NAMES)
    np.testing.assert_allclose(v[:, KNEE_L], 180.0 - flex, atol=1e-9)
    np.testing.assert_allclose(v[:, KNEE_R], 180.0 - flex / 2, atol=1e-9)
    np.testing.assert_allclose(v[:, ELBOW_L], 180.0 - flex, atol=1e-9)
    # the categories are exactly the bins of the true angle (thresholds 45/75/105/135/160)
    truth = np.searchsorted([45, 75, 105, 135, 160], 180.0 - flex, side="right")
    np.testing.assert_array_equal(extract_posecodes(j, NAMES)[:, KNEE_L], truth)


def test_relative_positions_are_in_the_body_frame():
    # a raised left arm is "above the head" whichever way the person faces; a lifted person's
    # feet are off the ground
    for yaw in (0.0, 90.0, 225.0):
        c = extract_posecodes(pose(arm_raise=(175, 0), yaw=yaw, lift=0.4), NAMES)[0]
        text = describe(c)
        assert "the left hand is above the head" in text
        assert "both feet are off the ground" in text
        assert "the right hand is below the head" in text


def test_randomised_binning_moves_only_values_near_a_threshold():
    spec = POSECODES[KNEE_L]
    rng = np.random.default_rng(0)
    far = np.array([20.0, 90.0, 175.0])   # > offset (5 deg) from every threshold
    near = np.full(2000, 104.0)           # 1 deg under the 105 threshold
    assert (categorise(far.repeat(50), spec, rng) == categorise(far, spec).repeat(50)).all()
    cats = categorise(near, spec, rng)
    assert set(cats) == {2, 3}            # right angle or partially bent, both occur
    assert 0.3 < (cats == 3).mean() < 0.5  # P(U(-5,5) < -1) = 0.4


def test_ignored_band_and_all_ignored_text():
    spec = next(s for s in POSECODES if s.kind == "vaxis" and s.subject == "left thigh")
    np.testing.assert_array_equal(categorise(np.array([5.0, 45.0, 85.0]), spec), [0, IGNORED, 2])
    assert describe(np.full(len(POSECODES), IGNORED)) == "The person stands in a neutral pose."


def test_aggregation_merges_equal_sides_and_keeps_different_ones():
    c = extract_posecodes(pose(knee_flex=(90, 90), elbow_flex=(170, 0)), NAMES)[0]
    text = describe(c)
    assert "Both knees are bent at a right angle" in text
    assert "the left elbow is completely bent" in text and "the right elbow is straight" in text
    assert "both elbows" not in text
    assert describe(c) == text  # deterministic


def test_selection_drops_common_codes_and_keeps_the_rarest():
    poses = [pose()] * 9 + [pose(knee_flex=(90, 90))]
    codes = extract_posecodes(np.stack(poses), NAMES)
    freqs = category_frequencies(codes)
    assert freqs[KNEE_L][5] == pytest.approx(0.9) and freqs[KNEE_L][2] == pytest.approx(0.1)
    mask = select_posecodes(codes, freqs, max_codes=2, common=0.5)
    assert mask.sum(1).max() <= 2
    assert not mask[0].any()                          # a standing pose has only common codes
    assert mask[-1, KNEE_L] and mask[-1, KNEE_R]      # the rare bent knees are kept
    assert describe(codes[-1], mask[-1]) == "Both knees are bent at a right angle."
    rng = np.random.default_rng(0)
    skipped = select_posecodes(codes, None, max_codes=99, skip_prob=0.9, rng=rng)
    assert (skipped.sum(1) >= 1).all() and skipped.sum() < (codes >= 0).sum()


def test_oracle_match_finds_the_queried_pose():
    flex = np.arange(0, 150, 10.0)
    codes = extract_posecodes(np.stack([pose(knee_flex=(f, f)) for f in flex]), NAMES)
    q = codes[9]
    s = posecode_match(q, q >= 0, codes)
    assert s[9] == 1.0 and np.argmax(s) in np.flatnonzero(s == 1.0)


def test_bad_joints_are_one_line_errors():
    with pytest.raises(DataError, match=r"expected shape \(N, 18, 3\)"):
        posecode_values(np.zeros((4, 17, 3)), NAMES)
    with pytest.raises(DataError, match="NaN"):
        posecode_values(np.full((1, 18, 3), np.nan), NAMES)
    with pytest.raises(DataError, match="missing"):
        posecode_values(np.zeros((1, 3, 3)), ["a", "b", "c"])
