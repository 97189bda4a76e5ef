"""A plot per pipeline stage (neurokit2 style); each returns a matplotlib Figure.

    >>> rec = simulate(SimConfig(), seed=0)
    >>> prep = prepare(rec, TrainConfig())
    >>> fus = fuse(prep["X"], prep["mask"], 100.0, FusionConfig())
    >>> save_figure(plot_simulation(rec), "sim.png"); save_figure(plot_fusion(prep, fus), "fus.png")
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_simulation", "plot_enhancement", "plot_fusion", "plot_beats",
           "plot_reconstruction"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _span(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return (t >= t0) & (t < t1)


def plot_simulation(rec: dict, t0: float = 0.0, t1: float = 6.0):
    """ECG, reference SCG with AO/AC, true BCG, and one bud's delivered accel samples."""
    plt = _plt()
    tr = rec["truth"]
    sel = _span(tr["t"], t0, t1)
    fig, ax = plt.subplots(4, 1, figsize=(11, 7), sharex=True)
    ax[0].plot(tr["t"][sel], tr["ecg"][sel], "k")
    ax[0].set_ylabel("ECG")
    ax[1].plot(tr["t"][sel], tr["scg"][sel], "k")
    for name, c in (("ao_s", "r"), ("ac_s", "b")):
        x = tr[name][_span(tr[name], t0, t1)]
        ax[1].vlines(x, *ax[1].get_ylim(), colors=c, linestyles=":", label=name[:2].upper())
    ax[1].legend(fontsize=7)
    ax[1].set_ylabel("SCG")
    ax[2].plot(tr["t"][sel], tr["bcg"][sel] * 1000, "C0")
    ax[2].set_ylabel("BCG (mg)")
    b = rec["left"]
    s = _span(b["relative_time"], t0, t1)
    ax[3].plot(b["relative_time"][s], b["acc"][s] * 1000, ".-", ms=3)
    ax[3].set_ylabel("left acc (mg)")
    ax[3].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_enhancement(prep: dict, channel: int = 2, t0: float = 0.0, t1: float = 6.0):
    """Uniform-grid signal of one channel with its validity mask and time-since-valid."""
    plt = _plt()
    t = prep["t"]
    s = _span(t, t0, t1)
    bud = 0 if channel < 6 else 1
    fig, ax = plt.subplots(2, 1, figsize=(11, 4.5), sharex=True)
    ax[0].plot(t[s], prep["X"][s, channel], "C0", label="enhanced")
    if "X_lin" in prep:
        ax[0].plot(t[s], prep["X_lin"][s, channel], "C1", lw=0.8, label="(a) linear fill + spline")
    ax[0].fill_between(t[s], *np.percentile(prep["X"][s, channel], [0, 100]),
                       where=~prep["mask"][s, bud], color="r", alpha=0.2, label="long gap")
    ax[0].legend(fontsize=7)
    ax[1].plot(t[s], prep["tsv"][s, bud], "k")
    ax[1].set_ylabel("time since valid (s)")
    ax[1].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_fusion(prep: dict, fus: dict, t0: float = 0.0, t1: float = 10.0):
    """Band-passed raw axes, motion-cancelled axes, fused BCG, per-window SQI and rejections."""
    plt = _plt()
    t = prep["t"]
    s = _span(t, t0, t1)
    fig, ax = plt.subplots(4, 1, figsize=(11, 8), sharex=False)
    ax[0].plot(t[s], fus["acc_bp"][s] * 1000, lw=0.7)
    ax[0].set_ylabel("band-passed (mg)")
    ax[1].plot(t[s], fus["acc_clean"][s] * 1000, lw=0.7)
    ax[1].set_ylabel("motion-cancelled (mg)")
    ax[2].plot(t[s], fus["fused"][s], "k")
    ax[2].set_ylabel("fused (z)")
    mid = fus["bounds"].mean(axis=1) / prep["fs"]
    ax[3].plot(mid, fus["sqi"], ".", alpha=0.5)
    ax[3].plot(mid, fus["fused_sqi"], "k-o", label="fused SQI")
    ax[3].plot(mid[fus["rejected"]], fus["fused_sqi"][fus["rejected"]], "rx", ms=10,
               label="rejected")
    ax[3].set_ylabel("SQI")
    ax[3].set_xlabel("time (s)")
    ax[3].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_beats(signal: np.ndarray, fs: float, beats_s: np.ndarray, truth: dict | None = None,
               t0: float = 0.0, t1: float = 10.0):
    """Signal with detected beats (and true R peaks when given)."""
    plt = _plt()
    t = np.arange(len(signal)) / fs
    s = _span(t, t0, t1)
    fig, ax = plt.subplots(figsize=(11, 3))
    ax.plot(t[s], signal[s], "k", lw=0.8)
    b = beats_s[_span(beats_s, t0, t1)]
    ax.plot(b, np.interp(b, t, signal), "rv", label="detected")
    if truth is not None:
        r = truth["r_s"][_span(truth["r_s"], t0, t1)]
        ax.vlines(r, signal[s].min(), signal[s].max(), colors="g", linestyles=":", label="R")
    ax.legend(fontsize=7)
    ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_reconstruction(scg_hat: np.ndarray, truth: dict, ao_s: np.ndarray | None = None,
                        t0: float = 10.0, t1: float = 16.0):
    """Reconstructed vs reference SCG with true (lines) and detected (markers) AO."""
    plt = _plt()
    t = truth["t"]
    s = _span(t, t0, t1)
    ref = truth["scg"][s] / truth["scg"][s].std()
    fig, ax = plt.subplots(figsize=(11, 3))
    ax.plot(t[s], ref, "k", label="reference")
    ax.plot(t[s], scg_hat[s] / scg_hat[s].std(), "C1", label="reconstructed")
    ax.vlines(truth["ao_s"][_span(truth["ao_s"], t0, t1)], -3, 4, colors="r", linestyles=":")
    if ao_s is not None:
        a = ao_s[_span(ao_s, t0, t1)]
        ax.plot(a, np.full(a.size, 3.5), "rv", label="detected AO")
    ax.legend(fontsize=7)
    ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig
