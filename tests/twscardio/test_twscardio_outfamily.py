"""The out-of-family generator: the simulator's layout, truth consistent with its own beats,
its own loss model, heartbeat-free kinds, and kept out of training and calibration."""

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from twscardio.beats import beat_metrics, find_jpeaks
from twscardio.config import ChannelConfig, SimConfig
from twscardio.outfamily import HR_RANGE, simulate_out_of_family

SC = SimConfig(duration_s=30.0, fs_in=50.0, channel=ChannelConfig(loss=0.0))


@pytest.fixture(scope="module")
def rec():
    return simulate_out_of_family(SC, 0)


def test_layout_and_truth(rec):
    for side in ("left", "right"):
        b = rec[side]
        assert b["acc"].shape == b["gyro"].shape == (b["relative_time"].size, 3)
        assert np.all(np.diff(b["relative_time"]) > 0)
        assert 1 / np.median(np.diff(b["relative_time"])) == pytest.approx(50.0, rel=0.01)
    tr = rec["truth"]
    assert HR_RANGE[0] - 8 <= tr["hr_true"] <= HR_RANGE[1] + 8
    assert np.all(tr["ao_s"] > tr["r_s"]) and np.all(tr["ac_s"] > tr["ao_s"])
    assert tr["scg"].shape == tr["t"].shape and rec["family"] == "out"


def test_bcg_beats_follow_the_r_peaks(rec):
    """The truth BCG's J waves (its largest peak per beat) track the R peaks one for one."""
    tr = rec["truth"]
    m = beat_metrics(find_jpeaks(tr["bcg"], 100.0), tr)
    assert m["missed_pct"] < 2 and m["ibi_mae_ms"] < 10


def test_deterministic_and_seeded():
    a, b = simulate_out_of_family(SC, 1), simulate_out_of_family(SC, 1)
    assert np.array_equal(a["left"]["acc"], b["left"]["acc"])
    assert not np.array_equal(a["left"]["acc"][:100], simulate_out_of_family(SC, 2)["left"]["acc"]
                              [:100])


@pytest.mark.parametrize("loss, burst", [(0.1, 3.0), (0.2, 3.0)])
def test_loss_rate_and_bursts(loss, burst):
    sc = dataclasses.replace(SC, channel=ChannelConfig(loss=loss, burst=burst,
                                                       samples_per_packet=1))
    rates, runs = [], []
    for seed in range(3):
        d = simulate_out_of_family(sc, seed)["truth"]["delivered_left"]
        rates.append(1 - d.mean())
        edges = np.diff(np.r_[1, d.astype(int), 1])
        runs += list(np.flatnonzero(edges == 1) - np.flatnonzero(edges == -1))
    assert np.mean(rates) == pytest.approx(loss, abs=0.04)
    assert np.mean(runs) == pytest.approx(burst, rel=0.35)


def test_outages():
    t = simulate_out_of_family(SC, 1, outage_s=1.0)["left"]["relative_time"]
    assert (np.diff(t) > 0.9).sum() >= 2


@pytest.mark.parametrize("kind", ["noise", "no_contact"])
def test_heartbeat_free_kinds(kind):
    rec = simulate_out_of_family(SC, 2, kind)
    assert np.abs(rec["truth"]["bcg"]).max() == 0.0 and rec["truth"]["kind"] == kind
    with pytest.raises(ValueError, match="unknown kind"):
        simulate_out_of_family(SC, 2, "dream")


def test_never_used_for_training_or_calibration():
    root = Path(__file__).resolve().parents[2] / "twscardio"
    for rel in ("train.py", "data.py", "simulator.py", "quality.py", "models.py",
                "experiments/calibrate_sqi.py", "experiments/ship_weights.py"):
        tree = ast.parse((root / rel).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                 for a in n.names} | {getattr(n, "module", "") or "" for n in ast.walk(tree)
                                      if isinstance(n, ast.ImportFrom)}
        assert not any("outfamily" in x for x in names), rel


def test_rr_tachogram_spectrum_mean_and_sd():
    """The RR process: mean 60 / hr, SD 60 hr_sd / hr^2 for any draw of the phases, and its
    power (random phases, fixed amplitudes) split 1 : 2 between Gaussian peaks at 0.1 and
    0.25 Hz (LF/HF 0.5)."""
    from twscardio import outfamily as of

    n, hr, sd = 4096, 75.0, 3.0
    rng = np.random.default_rng(0)
    f = np.fft.rfftfreq(n, 1 / of._RR_FS)
    power = np.zeros(f.size)
    for _ in range(20):
        rr = of._rr_tachogram(rng, hr, sd, n)
        assert rr.mean() == pytest.approx(60 / hr, abs=1e-12)
        assert rr.std() == pytest.approx(60 * sd / hr ** 2, rel=1e-6)
        power += np.abs(np.fft.rfft(rr - rr.mean())) ** 2
    lf = power[(f > 0.05) & (f < 0.15)].sum()
    hf = power[(f > 0.2) & (f < 0.3)].sum()
    assert lf / hf == pytest.approx(0.5, rel=1e-6)
    assert (lf + hf) / power.sum() > 1 - 1e-5  # Gaussian tails beyond 5 SD
    assert abs(f[np.argmax(power * (f < 0.175))] - 0.1) <= 2 / (n / of._RR_FS)
    assert abs(f[np.argmax(power * (f > 0.175))] - 0.25) <= 2 / (n / of._RR_FS)


def test_r_peaks_step_through_the_tachogram_and_the_ecg_peaks_at_them():
    from twscardio import outfamily as of

    rr = 0.8 + 0.1 * np.sin(np.arange(400) / of._RR_FS)
    r = of._r_peaks(rr, -1.0, 60.0)
    grid = -1.0 + np.arange(rr.size) / of._RR_FS
    assert r[0] == -1.0 and r[-1] >= 60.0 > r[-2]
    assert np.allclose(np.diff(r), np.interp(r[:-1], grid, rr), atol=1e-12)
    t = np.arange(0, 59.0, 1 / 250.0)
    ecg = of._ecg(r, t)
    inner = r[(r > 1) & (r < 58)]
    for x in inner:  # the R wave is each cycle's maximum, at the R peak
        sel = (t > x - 0.3) & (t < x + 0.3)
        assert abs(t[sel][np.argmax(ecg[sel])] - x) <= 1 / 250.0


def test_same_recording_whatever_the_cpu_simd_level(tmp_path):
    """numpy's SIMD dispatch (AVX2, AVX-512, ...) changes float results in the last bits; the
    recordings must not depend on it (ECGSYN's ODE once made the R peaks drift by 8 ms)."""
    import os
    import subprocess
    import sys

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    on = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    if not on:
        pytest.skip("this CPU runs numpy's baseline code only: nothing to switch off")
    code = ("import sys, numpy as np\n"
            "from twscardio.config import ChannelConfig, SimConfig\n"
            "from twscardio.outfamily import simulate_out_of_family\n"
            "sc = SimConfig(duration_s=30.0, fs_in=50.0, channel=ChannelConfig(loss=0.1))\n"
            "rec = simulate_out_of_family(sc, int(sys.argv[2]))\n"
            "np.savez(sys.argv[1], r=rec['truth']['r_s'], acc=rec['left']['acc'],\n"
            "         t=rec['left']['relative_time'], bcg=rec['truth']['bcg'])\n")
    root = Path(__file__).resolve().parents[2]
    out = {}
    for name, env in (("all", {}), ("baseline", {"NPY_DISABLE_CPU_FEATURES": " ".join(on)})):
        path = tmp_path / f"{name}.npz"
        subprocess.run([sys.executable, "-c", code, str(path), "3"], check=True, cwd=root,
                       env={**os.environ, **env, "PYTHONPATH": str(root)})
        out[name] = np.load(path)
    for key in ("r", "acc", "t"):
        assert np.array_equal(out["all"][key], out["baseline"][key]), key
    assert np.allclose(out["all"]["bcg"], out["baseline"]["bcg"], rtol=0, atol=1e-12)
