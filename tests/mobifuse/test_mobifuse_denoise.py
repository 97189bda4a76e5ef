"""DEI bilateral denoising: a per-pixel loop reference, planes and edges kept, inside the guard."""

import numpy as np
import pytest

from mobifuse.denoise import dei_bilateral


def _loop_reference(d, sigma, c, r):
    """The definition, pixel by pixel (edge pixels repeated outside the frame)."""
    h, w = d.shape
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            num = den = 0.0
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    q = float(d[min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)])
                    wt = np.exp(-(dy * dy + dx * dx) / (2 * (r / 2) ** 2)
                                - (q - d[y, x]) ** 2 / (2 * (c * sigma[y, x]) ** 2))
                    num += wt * q
                    den += wt
            out[y, x] = num / den
    return out


def test_dei_bilateral_matches_a_per_pixel_loop_and_handles_stacks():
    rng = np.random.default_rng(0)
    d = (1 + 3 * rng.random((2, 9, 11))).astype(np.float32)
    s = (0.02 + 0.3 * rng.random((2, 9, 11))).astype(np.float32)
    out = dei_bilateral(d, s, c=0.5, radius=2)
    assert out.shape == d.shape and out.dtype == np.float32
    for i in range(2):
        np.testing.assert_allclose(out[i], _loop_reference(d[i], s[i], 0.5, 2), rtol=1e-5)
        np.testing.assert_array_equal(dei_bilateral(d[i], s[i], c=0.5, radius=2), out[i])


def test_dei_bilateral_row_split_gives_the_same_bits_for_any_thread_count():
    """Row blocks in threads: every pixel's arithmetic is the split's, so 1, 2 and 3 threads
    give identical maps (and the one-thread map matches the per-pixel loop)."""
    import torch

    rng = np.random.default_rng(5)
    d = (1 + 3 * rng.random((97, 41))).astype(np.float32)
    s = (0.02 + 0.3 * rng.random((97, 41))).astype(np.float32)
    before = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            outs.append(dei_bilateral(d, s, c=0.5, radius=3))
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])
    np.testing.assert_allclose(outs[0][:12, :12], _loop_reference(d, s, 0.5, 3)[:12, :12],
                               rtol=1e-5)


def test_dei_bilateral_keeps_planes_and_depth_edges_and_removes_noise():
    yy, xx = np.mgrid[0:40, 0:60].astype(np.float32)
    plane = 2.0 + 0.01 * xx + 0.02 * yy
    sig = np.full_like(plane, 0.05)
    out = dei_bilateral(plane, sig)
    np.testing.assert_allclose(out[3:-3, 3:-3], plane[3:-3, 3:-3], atol=1e-5)  # interior
    step = np.where(xx < 30, 1.5, 3.0).astype(np.float32)  # a jump of 30 sigma: kept
    np.testing.assert_allclose(dei_bilateral(step, sig), step, atol=1e-6)
    noisy = step + np.random.default_rng(1).normal(0, 0.02, step.shape).astype(np.float32)
    assert np.abs(dei_bilateral(noisy, sig) - step).mean() < 0.6 * np.abs(noisy - step).mean()
    assert np.array_equal(dei_bilateral(noisy, sig, c=0.0), noisy)  # off
    with pytest.raises(ValueError, match="c and radius"):
        dei_bilateral(noisy, sig, c=-1.0)


def test_dei_bilateral_stays_inside_the_convex_guard_interval():
    """With both inputs given the output is clipped to [min, max] of ToF and stereo over the
    guard window, so a fused map outside it (here a far outlier) is pulled back inside."""
    from mobifuse.experiments.fusion_ceiling import hull

    rng = np.random.default_rng(2)
    tof = (2 + 0.1 * rng.random((20, 24))).astype(np.float32)
    st = (tof + rng.normal(0, 0.05, tof.shape)).astype(np.float32)
    fused = (0.5 * (tof + st)).astype(np.float32)
    fused[10, 10] = 9.0
    out = dei_bilateral(fused, np.full_like(tof, 0.1), tof, st, guard_radius=2)
    lo, hi = hull(tof, st, 2)
    assert (out >= lo - 1e-6).all() and (out <= hi + 1e-6).all()
