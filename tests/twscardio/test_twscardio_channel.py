"""Gilbert-Elliott channel: the measured loss rate and burst length match the parameters."""

import numpy as np
import pytest

from twscardio.channel import GilbertElliottChannel, burst_lengths, packet_loss_mask


@pytest.mark.parametrize("loss,burst", [(0.05, 1.0), (0.1, 3.0), (0.3, 8.0), (0.2, 2.5)])
def test_loss_rate_and_burst_length_match(loss, burst):
    ch = GilbertElliottChannel(loss, burst)
    lost = ch.lost(400_000, np.random.default_rng(0))
    assert lost.mean() == pytest.approx(loss, abs=0.01 + 0.1 * loss)
    assert burst_lengths(lost).mean() == pytest.approx(burst, rel=0.06)


def test_transition_probabilities_closed_form():
    ch = GilbertElliottChannel(0.2, 4.0)
    assert ch.r == pytest.approx(0.25)
    assert ch.p == pytest.approx(0.25 * 0.2 / 0.8)
    assert ch.p / (ch.p + ch.r) == pytest.approx(0.2)  # stationary loss


def test_empirical_transitions_match_markov_chain():
    ch = GilbertElliottChannel(0.1, 3.0)
    x = ch.lost(300_000, np.random.default_rng(1))
    good_to_bad = np.mean(x[1:][~x[:-1]])
    bad_to_good = np.mean(~x[1:][x[:-1]])
    assert good_to_bad == pytest.approx(ch.p, rel=0.05)
    assert bad_to_good == pytest.approx(ch.r, rel=0.05)


def test_packets_remove_runs_of_samples():
    ch = GilbertElliottChannel(0.2, 2.0)
    m = packet_loss_mask(10_001, 4, ch, np.random.default_rng(2))
    assert m.shape == (10_001,)
    # every lost run starts on a packet boundary and is a multiple of 4 samples long
    d = np.diff(np.concatenate([[1], m.astype(int), [1]]))
    starts, stops = np.flatnonzero(d == -1), np.flatnonzero(d == 1)
    assert np.all(starts % 4 == 0)
    assert np.all((stops - starts)[stops < 10_000] % 4 == 0)


def test_no_loss_and_bad_parameters():
    assert not GilbertElliottChannel(0.0, 3.0).lost(1000, np.random.default_rng(0)).any()
    with pytest.raises(ValueError, match="loss"):
        GilbertElliottChannel(1.2, 3.0)
    with pytest.raises(ValueError, match="burst"):
        GilbertElliottChannel(0.1, 0.5)
