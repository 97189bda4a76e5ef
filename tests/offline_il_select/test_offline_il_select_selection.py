"""Resultant-state selection (ILID Eq. 6) and the beta gate, against a slow reference."""

import numpy as np
import pytest

from offline_il_select.selection import (
    ResultantStateSelector,
    beta_gate,
    select_resultant,
    select_resultant_reference,
)


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_matches_reference(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        n = int(rng.integers(1, 80))
        f, ends, k = rng.random(n) < 0.1, rng.random(n) < 0.08, int(rng.integers(1, 12))
        np.testing.assert_array_equal(select_resultant(f, ends, k),
                                      select_resultant_reference(f, ends, k))


def test_hand_built_never_crosses_episode_ends():
    # Two episodes of 4 steps: episode A (rows 0-3) ends with a terminal, B (rows 4-7) with a
    # timeout. Only B's first transition reaches an expert-like state (its s_{t+1}).
    d_next = np.array([0.1, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1])
    term = np.array([0, 0, 0, 1, 0, 0, 0, 0], bool)
    tout = np.array([0, 0, 0, 0, 0, 0, 0, 1], bool)
    sel = ResultantStateSelector(sigma=0.4, k=20)(d_next, term, tout)
    # A's transitions are 1-4 steps before row 4's resultant state but in another episode.
    np.testing.assert_array_equal(sel, [0, 0, 0, 0, 1, 0, 0, 0])
    # Same data with a timeout instead of a terminal closing A: still no crossing.
    sel = ResultantStateSelector(0.4, 20)(d_next, np.zeros(8, bool), term | tout)
    np.testing.assert_array_equal(sel, [0, 0, 0, 0, 1, 0, 0, 0])
    # Without any end between them the whole prefix is selected.
    sel = ResultantStateSelector(0.4, 20)(d_next, np.zeros(8, bool), tout)
    np.testing.assert_array_equal(sel, [1, 1, 1, 1, 1, 0, 0, 0])


def test_window_length_k():
    d_next = np.zeros(10)
    d_next[7] = 0.9  # s_8 is expert-like
    ends = np.zeros(10, bool)
    for k in (1, 3, 8):
        sel = select_resultant(d_next >= 0.4, ends, k)
        # transition t reaches s_8 at step t+j with j = 8 - t; selected iff 1 <= j <= k
        np.testing.assert_array_equal(sel, [(8 - t) <= k and t <= 7 for t in range(10)])


def test_threshold_is_inclusive_and_beta_gate():
    sel = ResultantStateSelector(sigma=0.4, k=1)(np.array([0.4, 0.39]), np.zeros(2, bool),
                                                  np.array([0, 1], bool))
    np.testing.assert_array_equal(sel, [True, False])
    np.testing.assert_array_equal(beta_gate(np.array([0.1, 0.4, 0.41, 0.9]), 0.4), [1, 1, 0, 0])
