"""Rhythm-consistent beat tracking: matched filter + dynamic programming over candidate peaks.

References: the matched filter's value at a planted copy of the template is the copy's amplitude
(closed form, non-overlapping copies); the tracker must return exactly the planted beats (known
IBIs) among half-way noise candidates, keep a weak beat at the expected spot, and resume after an
outage; `find_jpeaks(tightness>0)` must recover known IBIs where plain peak picking (asserted
first) takes noise spikes. `prefer_early` equals its rule written out candidate by candidate,
and recovers planted premature beats that the chain alone (asserted first) passes over.
"""

import numpy as np
import pytest

from shared.errors import DataError
from twscardio.beats import (
    find_jpeaks,
    local_period,
    matched_filter,
    prefer_early,
    track_beats,
)
from twscardio.simulator import render_atoms

FS = 100.0


def test_matched_filter_returns_each_copy_amplitude():
    shape = render_atoms(51, FS, np.array([0.25]), np.array([1.0]), np.array([0.03]),
                         np.array([7.0]), 0.3) + 0.2  # not zero-mean on purpose
    pos = np.arange(60, 1000, 90)
    amps = np.array([1.0, 0.5, 2.0, 0.7, 1.5, 1.0, 0.6, 1.8, 1.0, 1.2, 0.8])  # median 1
    x = np.zeros(1100)
    for p, a in zip(pos, amps):
        x[p - 25:p + 26] += a * shape
    m, tmpl = matched_filter(x, FS, pos)
    assert np.allclose(m[pos], amps, atol=1e-9)
    assert abs(tmpl.mean()) < 1e-12


def test_local_period_replaces_octave_slips_and_interpolates():
    p = np.array([0.8, 1.6, 0.8, 0.4, 0.9])  # segments 2 and 4 slipped an octave
    starts = np.arange(5) * 1000
    lp = local_period(p, starts, 5000, 1000)
    assert lp[500] == pytest.approx(0.8) and lp[1500] == pytest.approx(0.8)
    assert lp[3500] == pytest.approx(0.8) and lp[4500] == pytest.approx(0.9)
    assert lp[4000] == pytest.approx(0.85)  # half-way between centres 3500 and 4500


def _planted(rng, n=40, period=80.0):
    beats = np.cumsum(period + rng.normal(0, 4, n))
    noise = beats[:-1] + np.diff(beats) * rng.uniform(0.4, 0.6, n - 1)
    cand = np.concatenate([beats, noise])
    score = np.concatenate([np.ones(n), np.full(n - 1, 0.5)])
    order = np.argsort(cand)
    return beats, cand[order], score[order], order < n


def test_tracker_returns_the_planted_beats_among_noise():
    rng = np.random.default_rng(1)
    beats, cand, score, is_beat = _planted(rng)
    score[np.flatnonzero(is_beat)[10]] = 0.2  # a weak beat: kept, it sits where a beat is due
    chosen = track_beats(score, cand, np.full(cand.size, 80.0), tightness=2.0)
    assert np.array_equal(cand[chosen], beats)


def test_tracker_resumes_after_an_outage():
    rng = np.random.default_rng(2)
    beats, cand, score, is_beat = _planted(rng)
    gap = (cand > beats[14] + 1) & (cand < beats[19] - 1)  # 4 beats lost, no candidates
    chosen = track_beats(score[~gap], cand[~gap], np.full((~gap).sum(), 80.0), tightness=2.0)
    kept = beats[(beats <= beats[14]) | (beats >= beats[19])]
    assert np.array_equal(cand[~gap][chosen], kept)


def test_tracker_cannot_be_pulled_to_half_rate():
    rng = np.random.default_rng(3)
    beats, cand, score, is_beat = _planted(rng)
    score[np.flatnonzero(is_beat)[1::2]] = 0.3  # every other beat weak: the half-rate trap
    chosen = track_beats(score, cand, np.full(cand.size, 80.0), tightness=2.0)
    assert np.array_equal(cand[chosen], beats)


def test_find_jpeaks_tracking_recovers_known_ibis_under_spikes():
    rng = np.random.default_rng(4)
    dur = 40.0
    r = np.cumsum(0.85 + rng.normal(0, 0.03, 60))
    r = r[(r > 0.5) & (r < dur - 0.8)]
    n = int(dur * FS)
    x = render_atoms(n, FS, r, rng.uniform(0.8, 1.2, r.size), np.full(r.size, 0.03),
                     np.full(r.size, 7.0), 0.2)
    weak = np.arange(3, r.size, 4)  # every 4th beat at half height, a larger spike after it
    x -= 0.5 * render_atoms(n, FS, r[weak], np.ones(weak.size), np.full(weak.size, 0.03),
                            np.full(weak.size, 7.0), 0.2)
    spikes = r[weak] + 0.35
    x += render_atoms(n, FS, spikes, np.full(weak.size, 0.8), np.full(weak.size, 0.012),
                      np.full(weak.size, 25.0), 0.0)
    x += rng.normal(0, 0.03, n)
    true_j = r + 0.0  # atoms peak at their centre

    def ibi_err(b):
        d = np.abs(b[:, None] - true_j[None, :])
        k = d.argmin(axis=1)
        ok = d[np.arange(b.size), k] < 0.03
        return ok.sum(), np.abs(np.diff(b) - np.diff(true_j[k]))[ok[1:] & ok[:-1]].max()

    plain = find_jpeaks(x, FS, polarity="positive", wave_shift_s=0.25)
    assert ibi_err(plain)[0] < r.size - 3  # the trap bites: spikes taken, weak beats lost
    tracked = find_jpeaks(x, FS, polarity="positive", wave_shift_s=0.25, tightness=2.0)
    # with min_score 0 the chain may extend onto noise one period past the last beat
    inner = tracked[tracked < r[-1] + 0.3]
    hit, worst = ibi_err(inner)
    assert inner.size == r.size and hit == r.size and tracked.size - inner.size <= 1
    assert worst < 0.012  # every IBI within ~1 sample of the truth


def test_j_peaks_tracks_still_windows_and_picks_plainly_where_the_head_rotates():
    from twscardio.pipeline import J_TIGHTNESS, J_WAVE_SHIFT_S, j_peaks

    rng = np.random.default_rng(5)
    r = np.arange(0.4, 29.5, 0.8) + rng.normal(0, 0.01, 37)
    n = 3000
    x = render_atoms(n, FS, r, np.ones(r.size), np.full(r.size, 0.03), np.full(r.size, 7.0),
                     0.2) + rng.normal(0, 0.25, n)
    bounds = np.stack([np.arange(0, n, 500), np.arange(500, n + 1, 500)], axis=1)
    plain = find_jpeaks(x, FS, wave_shift_s=J_WAVE_SHIFT_S)
    tracked = find_jpeaks(x, FS, wave_shift_s=J_WAVE_SHIFT_S, tightness=J_TIGHTNESS)
    assert not np.array_equal(plain, tracked)  # the two detectors differ on this signal
    assert np.array_equal(j_peaks(x, FS, bounds, np.ones(6, bool)), plain)
    assert np.array_equal(j_peaks(x, FS, bounds, np.zeros(6, bool)), tracked)
    rot = np.array([False, False, True, True, False, False])
    mixed = j_peaks(x, FS, bounds, rot)
    inside = (mixed >= 10.0) & (mixed < 20.0)
    assert np.all(np.isin(mixed[inside], plain))
    assert np.all(np.isin(mixed[(mixed < 9.5) | (mixed >= 20.5)], tracked))


def test_ao_peaks_picks_plainly_when_off_and_tracks_still_windows_when_on():
    """`pipeline.ao_peaks`: `find_ao` everywhere with J_AO_TIGHTNESS 0 (shipped); with the
    switch on, `find_ao(tightness=...)` in still windows and plain picks where the head rotates,
    as `j_peaks` does for J."""
    from twscardio.beats import find_ao, segment_periods
    from twscardio.pipeline import ao_peaks, switched

    rng = np.random.default_rng(6)
    r = np.arange(0.4, 29.5, 0.8) + rng.normal(0, 0.01, 37)
    n = 3000
    # an AO wave and, 0.3 s later, a smaller AC wave per beat, in noise
    x = (render_atoms(n, FS, r, np.ones(r.size), np.full(r.size, 0.02), np.full(r.size, 12.0),
                      0.0)
         + render_atoms(n, FS, r + 0.3, np.full(r.size, 0.6), np.full(r.size, 0.02),
                        np.full(r.size, 12.0), 0.0) + rng.normal(0, 0.3, n))
    periods = segment_periods(x, FS)[0]
    bounds = np.stack([np.arange(0, n, 500), np.arange(500, n + 1, 500)], axis=1)
    plain = find_ao(x, FS, periods_s=periods)
    tracked = find_ao(x, FS, periods_s=periods, tightness=2.0)
    assert not np.array_equal(plain, tracked)  # the two detectors differ on this signal
    still = np.zeros(6, bool)
    assert np.array_equal(ao_peaks(x, FS, periods, bounds, still), plain)  # off: plain
    with switched(J_AO_TIGHTNESS=2.0):
        assert np.array_equal(ao_peaks(x, FS, periods, bounds, still), tracked)
        assert np.array_equal(ao_peaks(x, FS, periods, bounds, ~still), plain)
        rot = np.array([False, False, True, True, False, False])
        mixed = ao_peaks(x, FS, periods, bounds, rot)
    inside = (mixed >= 10.0) & (mixed < 20.0)
    assert np.all(np.isin(mixed[inside], plain))
    assert np.all(np.isin(mixed[(mixed < 9.5) | (mixed >= 20.5)], tracked))


def test_aggregate_pools_octave_errors_of_accepted_windows():
    """Per-recording means for errors, but accepted-window octave errors over all accepted
    windows: one recording with a single (bad) accepted window must not weigh as much as one
    with ten."""
    from twscardio.eval import aggregate

    res = [{"b": {"hr_mae": 1.0, "octave_scored_accepted": 10, "octave_bad_accepted": 0}},
           {"b": {"hr_mae": 3.0, "octave_scored_accepted": 1, "octave_bad_accepted": 1}}]
    agg = aggregate(res)["b"]
    assert agg["hr_mae"] == pytest.approx(2.0)
    assert agg["octave_pct_accepted"] == pytest.approx(100.0 / 11)
    assert "octave_bad_accepted" not in agg


def _prefer_early_slow(score, cand, chosen, period, ratio, earliest=0.45, min_lead=0.1,
                       min_score=0.3):
    """The rule candidate by candidate: the strongest candidate in the early part of each
    chosen beat's cycle replaces it if clearly stronger."""
    out = list(chosen)
    for k in range(1, len(out)):
        c, p = out[k], period[out[k]]
        inside = [j for j in range(len(cand))
                  if cand[out[k - 1]] + earliest * p <= cand[j] <= cand[c] - min_lead * p]
        if inside:
            a = max(inside, key=lambda j: (score[j], -j))
            if score[a] >= max(ratio * score[c], min_score):
                out[k] = a
    return np.array(out)


def test_prefer_early_by_hand_and_against_the_rule_written_out():
    # beats every 80 samples; at 130 a premature beat (score 0.6) the chain passed over for a
    # weak pick at 160 (0.2); at 270 a candidate 2x the pick at 320 but below min_score
    cand = np.array([0.0, 80.0, 130.0, 160.0, 240.0, 270.0, 320.0, 400.0])
    score = np.array([1.0, 1.0, 0.6, 0.2, 1.0, 0.28, 0.14, 1.0])
    chosen = np.array([0, 1, 3, 4, 6, 7])
    period = np.full(cand.size, 80.0)
    assert prefer_early(score, cand, chosen, period, 1.5).tolist() == [0, 1, 2, 4, 6, 7]
    assert prefer_early(score, cand, chosen, period, 4.0).tolist() == [0, 1, 3, 4, 6, 7]
    rng = np.random.default_rng(9)
    for _ in range(20):
        beats, cand, score, _ = _planted(rng)
        score = score * rng.uniform(0.2, 1.5, score.size)
        period = np.full(cand.size, 80.0)
        chosen = track_beats(score, cand, period, tightness=2.0)
        for ratio in (1.0, 1.5, 3.0):
            assert np.array_equal(prefer_early(score, cand, chosen, period, ratio),
                                  _prefer_early_slow(score, cand, chosen, period, ratio))


def test_find_jpeaks_keeps_premature_beats_the_rhythm_prior_passes_over():
    """Every sixth beat premature (0.6 of the interval early, half height, then a pause): the
    chain alone takes none of them (the trap, asserted first); with early_ratio 1.5 every beat
    is found within 20 ms and the beat count does not change."""
    rng = np.random.default_rng(0)
    r = np.cumsum(0.85 + rng.normal(0, 0.02, 60))
    r = r[(r > 0.5) & (r < 39.2)]
    prem = np.arange(4, r.size - 2, 6)
    r[prem] = r[prem - 1] + 0.6 * (r[prem + 1] - r[prem - 1]) / 2
    amp = np.where(np.isin(np.arange(r.size), prem), 0.5, 1.0)
    x = render_atoms(4000, FS, r, amp, np.full(r.size, 0.03), np.full(r.size, 7.0), 0.2)
    x += rng.normal(0, 0.05, x.size)

    def found(b):
        return np.abs(b[:, None] - r[None, :]).min(axis=0) < 0.02

    chain = find_jpeaks(x, FS, polarity="positive", wave_shift_s=0.25, tightness=2.0)
    assert not found(chain)[prem].any() and found(chain)[np.setdiff1d(np.arange(r.size),
                                                                      prem)].all()
    early = find_jpeaks(x, FS, polarity="positive", wave_shift_s=0.25, tightness=2.0,
                        early_ratio=1.5)
    assert found(early).all() and early.size == chain.size


@pytest.mark.parametrize("min_share", [0.0, 0.5])
def test_masked_matched_filter_is_the_least_squares_amplitude_over_delivered_samples(min_share):
    rng = np.random.default_rng(5)
    x = rng.normal(size=900)
    valid = np.ones(900, dtype=bool)
    for s in rng.integers(0, 880, 25):  # loss bursts of 2-20 samples
        valid[s:s + rng.integers(2, 21)] = False
    beats = np.arange(60, 860, 80)
    m, tmpl = matched_filter(x, FS, beats, valid=valid, min_share=min_share)
    H = (tmpl.size - 1) // 2
    for t in range(H, 900 - H):  # the amplitude a minimising sum_valid (x - a tmpl)^2, lag by lag
        w = valid[t - H:t + H + 1]
        num = np.sum(x[t - H:t + H + 1][w] * tmpl[w])
        den = max(np.sum(tmpl[w] ** 2), min_share * np.sum(tmpl ** 2))
        assert m[t] == pytest.approx(num / den, abs=1e-9)
    plain, _ = matched_filter(x, FS, beats)  # every sample delivered: the plain filter (inside)
    every = matched_filter(x, FS, beats, valid=np.ones(900, bool), min_share=min_share)[0]
    assert np.allclose(every[H:-H], plain[H:-H], atol=1e-12)


def test_masked_matched_filter_keeps_a_beat_whose_main_wave_was_lost():
    # an H-I-J-K-L complex (side lobes two waves away correlate with the template); one copy's
    # J and K waves fall in a loss burst (zero, as the fusion leaves gaps)
    t = np.arange(-25, 26) / FS
    lobes = [(-0.13, 0.3), (-0.065, -0.5), (0.0, 1.0), (0.065, -0.6), (0.13, 0.35)]
    shape = sum(a * np.exp(-0.5 * ((t - c) / 0.02) ** 2) for c, a in lobes)
    shape -= shape.mean()  # copies equal the zero-mean template
    pos = np.arange(60, 1000, 80)
    x = np.zeros(1100)
    for p in pos:
        x[p - 25:p + 26] += shape
    valid = np.ones(x.size, dtype=bool)
    k = pos[5]
    valid[k - 3:k + 10] = False
    x[~valid] = 0.0
    ref = np.delete(pos, 5)  # template from the intact copies: exactly `shape`, made zero-mean
    plain, tmpl = matched_filter(x, FS, ref)
    near = np.arange(k - 20, k + 21)
    assert near[np.argmax(plain[near])] != k  # the plain amplitude peaks on a side lobe
    masked, _ = matched_filter(x, FS, ref, valid=valid, min_share=0.0)
    assert near[np.argmax(masked[near])] == k
    assert masked[k] == pytest.approx(1.0, abs=1e-9)  # the copy's amplitude, in closed form


def _hijkl_recording(seed, gap_s=(-0.03, 0.12), every=4):
    """H-I-J-K-L complexes at known beats (RR 0.8 +- 0.02 s) in white noise; every `every`-th
    beat loses its J and K waves to a burst where no bud delivered (zero, as fused)."""
    rng = np.random.default_rng(seed)
    beats = 1.0 + np.cumsum(0.8 + rng.normal(0, 0.02, 70))
    t = np.arange(int((beats[-1] + 1.0) * FS)) / FS
    x = np.zeros(t.size)
    for c, a in [(-0.13, 0.3), (-0.065, -0.5), (0.0, 1.0), (0.065, -0.6), (0.13, 0.35)]:
        x += a * np.exp(-0.5 * ((t[:, None] - beats[None, :] - c) / 0.02) ** 2).sum(axis=1)
    x += 0.05 * rng.normal(size=t.size)
    valid = np.ones(t.size, dtype=bool)
    for b in beats[2::every]:
        valid[int((b + gap_s[0]) * FS):int((b + gap_s[1]) * FS)] = False
    x[~valid] = 0.0
    return x, valid, beats, beats[2::every]


def test_tracker_scored_on_delivered_samples_keeps_beats_whose_j_was_lost():
    missed_plain = 0
    for seed in range(3):
        x, valid, beats, gapped = _hijkl_recording(seed)
        kw = dict(wave_shift_s=0.25, tightness=2.0, valid=valid)
        plain = find_jpeaks(x, FS, **kw)
        missed_plain += int(np.sum(np.abs(gapped[:, None] - plain[None, :]).min(axis=1) > 0.03))
        masked = find_jpeaks(x, FS, score_share=0.5, **kw)
        assert np.abs(beats[:, None] - masked[None, :]).min(axis=1).max() < 0.03
    assert missed_plain >= 10  # scored with the gap fill, the chain takes a side lobe instead


def test_switched_sets_the_switches_for_the_block_and_restores_them():
    import twscardio.pipeline as pipeline

    shipped = (pipeline.J_SCORE_SHARE, pipeline.J_DATA_ONLY, pipeline.J_EARLY_RATIO)
    with pipeline.switched(J_SCORE_SHARE=0.5, J_DATA_ONLY=not shipped[1]):
        assert (pipeline.J_SCORE_SHARE, pipeline.J_DATA_ONLY) == (0.5, not shipped[1])
        assert pipeline.J_EARLY_RATIO == shipped[2]
    assert (pipeline.J_SCORE_SHARE, pipeline.J_DATA_ONLY, pipeline.J_EARLY_RATIO) == shipped
    with pytest.raises(RuntimeError), pipeline.switched(J_EARLY_RATIO=1.5):
        raise RuntimeError("inside")
    assert pipeline.J_EARLY_RATIO == shipped[2]
    for bad in ({"J_NOT_A_SWITCH": 1}, {"N_FEATURES": 3}):
        with pytest.raises(ValueError, match="no pipeline switch"), pipeline.switched(**bad):
            pass
    assert pipeline.N_FEATURES == 17


def _anchored_ao_slow(x, fs, pred, half_s):
    """`anchored_ao` written out prediction by prediction."""
    from twscardio.beats import template_refine

    H = int(round(half_s * fs))
    best = []
    for p in np.sort(pred):
        b = int(round(p * fs))
        if b - H < 0 or b + H >= len(x):
            continue
        seg = x[b - H:b + H + 1]
        best.append(b - H + int(np.argmax(seg)))
    best = np.array(best, dtype=np.int64)
    return np.sort(template_refine(x, fs, best, half_s=0.1, max_shift_s=0.04) / fs)


def test_anchored_ao_takes_one_ao_per_prediction_where_plain_picking_doubles():
    """`beats.anchored_ao`: equal to the prediction-by-prediction reference; one AO per
    prediction, on the planted AO and not its AC 0.3 s later, on a signal (every other AO weak)
    where plain picking (`find_ao`) finds another number of beats."""
    from twscardio.beats import anchored_ao, find_ao

    rng = np.random.default_rng(11)
    r = np.arange(0.5, 29.0, 0.8) + rng.normal(0, 0.02, 36)
    amp = np.where(np.arange(r.size) % 2 == 0, 1.0, 0.35)  # alternans: every other AO weak
    n = 3000
    x = (render_atoms(n, FS, r, amp, np.full(r.size, 0.02), np.full(r.size, 12.0), 0.0)
         + render_atoms(n, FS, r + 0.3, np.full(r.size, 0.6), np.full(r.size, 0.02),
                        np.full(r.size, 12.0), 0.0) + rng.normal(0, 0.05, n))
    pred = r + rng.normal(0, 0.02, r.size)  # the prior's AO, 20 ms off on average
    got = anchored_ao(x, FS, pred, 0.1)
    assert np.allclose(got, _anchored_ao_slow(x, FS, pred, 0.1))
    assert got.size == r.size and np.all(np.diff(got) > 0.5)
    assert np.abs(got - r).max() < 0.03  # on the AO, not its AC
    assert np.median(np.abs(got - r)) < np.median(np.abs(pred - r))
    plain = find_ao(x, FS)
    assert plain.size != r.size  # the trap bites plain picking (asserted so the test can fail)
    # a window leaving the recording drops its prediction; none or a zero window: no AO
    edge = anchored_ao(x, FS, np.r_[0.05, pred, 29.97], 0.1)
    assert np.allclose(edge, got)
    assert anchored_ao(x, FS, np.zeros(0), 0.1).size == 0
    assert anchored_ao(x, FS, np.r_[np.nan, pred], 0.1).size == r.size
    with pytest.raises(DataError, match="half_s"):
        anchored_ao(x, FS, pred, 0.004)  # below one sample at 100 Hz


def test_anchored_ao_window_edges_and_order():
    """The picks (`refine=False`) of `anchored_ao` by hand: a spike on either edge of the
    +-10-sample window is taken, one a sample beyond it is not (the small bump at the
    prediction is); a window touching the first or last sample is kept, one a sample beyond is
    dropped; shuffled predictions give sorted picks; inside the window the largest sample wins,
    also when it is the AC right after a weak AO."""
    from twscardio.beats import anchored_ao

    x = np.zeros(1000)
    for b in (300, 400, 500, 600):
        x[b] = 0.1  # a small bump at each prediction
    x[190] = x[310] = 1.0  # on the windows' edges: 200 - 10 and 300 + 10 samples
    x[389] = x[511] = 1.0  # one sample beyond the edges of 400 and 500
    x[600], x[608] = 0.3, 0.9  # a weak AO and a larger AC 80 ms later, inside the window
    pred = np.array([200, 300, 400, 500, 600]) / FS
    got = anchored_ao(x, FS, pred[[3, 0, 4, 2, 1]], 0.1, refine=False)
    assert np.allclose(got * FS, [190, 310, 400, 500, 608])
    x[3], x[995] = 0.5, 0.5
    keep = anchored_ao(x, FS, np.array([10, 989, 990]) / FS, 0.1, refine=False)
    assert np.allclose(keep * FS, [3, 995])  # windows 0-20 and 979-999 kept, 980-1000 dropped
