"""Octave-robust beat detection: planted half-rate and double-rate traps.

* Half-rate trap: every other beat has another carrier phase and 0.8x the amplitude, so the raw
  signal's autocorrelation peaks at 2 RR - a plain autocorrelation period (`estimate_period`)
  locks onto every other beat.
* Double-rate trap: each heartbeat carries a second, wider, half-amplitude wave half a period
  later, and RR wanders, so the raw autocorrelation peaks at RR/2 - each beat counted twice.
`beat_period` (envelope autocorrelation + explicit half/double check) must return RR in both, and
`find_jpeaks` (every arm's detector) must find one beat per heartbeat.
"""

import numpy as np
import pytest

from twscardio.beats import alternation, beat_period, estimate_period, find_jpeaks
from twscardio.simulator import render_atoms

FS = 100.0
DUR = 30.0


def half_rate_trap(period, seed, alt_amp=0.8):
    rng = np.random.default_rng(seed)
    r = np.arange(0.3, DUR - 0.5, period)
    r = r + rng.normal(0, 0.005, r.size)
    odd = np.arange(r.size) % 2 == 1
    t = np.arange(int(DUR * FS)) / FS
    tau = t[None, :] - r[:, None]
    phase = np.where(odd, 0.6 * np.pi, 0.0)[:, None]
    amp = np.where(odd, alt_amp, 1.0)[:, None]
    x = (amp * np.exp(-0.5 * (tau / 0.035) ** 2) * np.cos(2 * np.pi * 7 * tau + phase)).sum(0)
    return x + rng.normal(0, 0.03, x.size), r


def double_rate_trap(period, seed, second_amp=0.5):
    rng = np.random.default_rng(seed)
    r = np.cumsum(period + rng.normal(0, 0.04, int(DUR / period) + 2))
    r = r[r < DUR - 1.2]
    centres = np.concatenate([r, r + 0.5 * period])
    amps = np.concatenate([np.ones(r.size), np.full(r.size, second_amp)])
    sig = np.concatenate([np.full(r.size, 0.03), np.full(r.size, 0.06)])
    x = render_atoms(int(DUR * FS), FS, centres, amps, sig, np.full(2 * r.size, 8.0), 0.3)
    return x + rng.normal(0, 0.03, x.size), r


@pytest.mark.parametrize("period", [0.5, 0.6, 0.7])
@pytest.mark.parametrize("seed", [0, 1])
def test_half_rate_trap(period, seed):
    x, r = half_rate_trap(period, seed)
    assert estimate_period(x, FS) == pytest.approx(2 * period, rel=0.05)  # the trap bites
    p, strength = beat_period(x, FS)
    assert p == pytest.approx(period, rel=0.05)
    assert 0.5 < strength <= 1.0
    beats = find_jpeaks(x, FS)
    assert abs(beats.size - r.size) <= 1


@pytest.mark.parametrize("period", [0.85, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_double_rate_trap(period, seed):
    x, r = double_rate_trap(period, seed)
    assert estimate_period(x, FS) == pytest.approx(period / 2, rel=0.1)  # the trap bites
    assert beat_period(x, FS)[0] == pytest.approx(period, rel=0.05)
    beats = find_jpeaks(x, FS)
    assert abs(beats.size - r.size) <= 1
    # every detection sits on a main wave, none on the second one
    d = np.abs(beats[:, None] - r[None, :]).min(axis=1)
    assert np.median(d) < 0.03


def test_plain_rhythm_keeps_its_period():
    """No trap: identical beats at 0.9 s; the checks must not move the period."""
    rng = np.random.default_rng(5)
    r = np.arange(0.3, DUR - 0.5, 0.9)
    x = render_atoms(int(DUR * FS), FS, r, np.ones(r.size), np.full(r.size, 0.04),
                     np.full(r.size, 6.0), 0.2) + rng.normal(0, 0.03, int(DUR * FS))
    assert beat_period(x, FS)[0] == pytest.approx(0.9, rel=0.03)
    shape_r, amp = alternation(x, FS, 0.9)
    assert shape_r > 0.9 and amp > 0.9


def test_alternation_sees_the_second_wave():
    x, _ = double_rate_trap(1.0, 0)
    shape_r, amp = alternation(x, FS, 0.5)
    assert amp < 0.65  # every other 'beat' is the weaker second wave
    assert alternation(x, FS, 1.0)[1] > 0.9
