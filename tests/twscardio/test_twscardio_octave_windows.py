"""The octave-window survey (`experiments.octave_windows`): its window count is
`beats.octave_errors`' pair for pair, a window's kind follows the detected-over-true ratio, and
its stage follows whether the segment period (`beats.beat_period`) is an octave of the truth."""

import numpy as np

from twscardio.beats import octave_errors
from twscardio.experiments.octave_windows import recording_windows


def _pulses(r_s: np.ndarray, fs: float, dur: float, amp: np.ndarray) -> np.ndarray:
    """A 10 Hz wave packet at each beat time (s), amplitude amp per beat."""
    t = np.arange(int(dur * fs)) / fs
    x = np.zeros_like(t)
    for b, a in zip(r_s, amp):
        x += a * np.exp(-0.5 * ((t - b) / 0.04) ** 2) * np.cos(2 * np.pi * 10 * (t - b))
    return x


def test_kinds_and_stages_against_the_planted_detections():
    fs, dur = 50.0, 60.0
    rng = np.random.default_rng(0)
    r = np.cumsum(np.full(80, 0.8))[:74]  # beats 0.8 ... 59.2 s
    x = _pulses(r, fs, dur, np.ones(r.size)) + 0.01 * rng.normal(size=int(dur * fs))
    for det, kind in ((r, None), (r[::2], "double"),
                      (np.sort(np.concatenate([r, r[:-1] + 0.4])), "half")):
        scored, bad, strength = recording_windows(det, r, x, fs, dur)
        assert (scored, len(bad)) == octave_errors(det, r, dur)
        assert len(strength) == 6 and min(strength) > 0.5  # a clean rhythm per segment
        if kind is None:
            assert bad == []
        else:  # the signal beats at the true period: the peaks, not the period, were wrong
            assert len(bad) == scored and {w["kind"] for w in bad} == {kind}
            assert {w["stage"] for w in bad} == {"picking"}
            assert all(abs(w["segment_period_s"] - 0.8) < 0.05 for w in bad)


def test_a_second_weak_wave_per_beat_is_a_period_stage_error_when_the_period_is_halved():
    # beats every 1.6 s, each with an equal-amplitude wave 0.8 s later: the signal's own
    # period is 0.8 s (a rhythm the check cannot tell from one at 0.8 s), so picks at 0.8 s
    # are an octave error of the period stage, not of peak picking
    fs, dur = 50.0, 60.0
    r = np.arange(0.8, 59.0, 1.6)
    x = _pulses(np.sort(np.concatenate([r, r + 0.8])), fs, dur, np.ones(2 * r.size))
    det = np.sort(np.concatenate([r, r + 0.8]))
    _, bad, _ = recording_windows(det, r, x, fs, dur)
    assert bad and {w["kind"] for w in bad} == {"half"}
    assert {w["stage"] for w in bad} == {"period"}
