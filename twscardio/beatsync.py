"""Beat-synchronous SCG reconstruction: beats from the fused BCG, timing from its median complex.

The SCG's per-beat Pearson r is decided by where its 10-15 Hz waves sit: a 12 Hz wave 10 ms late
keeps r ~0.7. The dense network (`models.BCG2SCGNet`) places them with a per-subject lag error
(its r rises from 0.55 to 0.76 on validation subjects when each recording's output is shifted by
the best lag with the truth), while the J peaks of the fused BCG (`pipeline.j_peaks`) are timed
to a few ms per beat but sit a subject-specific 75-180 ms after aortic opening (AO). So:

1. `median_complex`, `gyro_complex`: the recording's median fused-BCG and rotational-BCG
   complexes around its J peaks (z-scored);
2. `TimingModel`: an ensemble of small MLPs, complexes + heart rate -> (J -> AO lag, LVET
   offset), trained on the training family's subjects (`fit_timing`, targets from the
   simulator's truth, `timing_targets`);
3. `render_scg`: the SCG template (`SCG_ATOMS`: MC, AO, RE, AC, MO Gabor atoms, the training
   simulator's population-mean complex) placed at AO = J - lag and AC = AO + LVET, LVET from
   the Weissler regression on each beat's preceding interval plus the predicted offset; each
   wave group averaged over its timing uncertainty (`blur_s`), which maximises the expected
   correlation rather than betting on one timing.

Reconstructed, not in the paper (which maps the stream to the SCG with a network); the
irreducible part is the head transit delay (0-15 ms in the training family), which the BCG does
not reveal.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from shared.errors import DataError
from twscardio.simulator import render_atoms

__all__ = ["SCG_ATOMS", "render_scg", "median_complex", "gyro_complex", "timing_features",
           "timing_targets", "TimingModel", "fit_timing", "valve_times", "synchronous_scg",
           "save_timing",
           "load_timing", "lvet_regression"]

_KIND = "twscardio.TimingModel"

# SCG template atoms relative to AO (first three) and AC (last two): offset s, amplitude,
# frequency Hz, width s - the training simulator's population-mean complex
SCG_ATOMS = {
    "ao": (np.array([-0.030, 0.0, 0.070]), np.array([-0.35, 1.0, 0.3]),
           np.array([15.0, 12.5, 10.0]), np.array([0.012, 0.016, 0.020])),
    "ac": (np.array([0.0, 0.080]), np.array([0.6, -0.25]), np.array([12.0, 9.0]),
           np.array([0.016, 0.020])),
}


def lvet_regression(hr_bpm: np.ndarray) -> np.ndarray:
    """Left-ventricular ejection time (s) from heart rate, Weissler: 413 - 1.7 HR ms."""
    return (413.0 - 1.7 * np.asarray(hr_bpm, dtype=np.float64)) / 1000.0


def render_scg(n: int, fs: float, ao_s: np.ndarray, ac_s: np.ndarray,
               amp: np.ndarray | None = None, blur_s: tuple[float, float] = (0.0, 0.0)
               ) -> np.ndarray:
    """The template SCG (n,) at fs with one complex per beat (AO (B,), AC (B,) in s);
    `amp` (B,) scales each beat (default 1). `blur_s` (SD of the AO waves' and of the AC waves'
    timing, s): each group is averaged over Gaussian shifts of that SD (7-point Gauss-Hermite),
    the expected template when its times are that uncertain."""
    ao_s, ac_s = np.asarray(ao_s, np.float64), np.asarray(ac_s, np.float64)
    if ao_s.shape != ac_s.shape:
        raise DataError(f"AO {ao_s.shape} and AC {ac_s.shape} times must pair up")
    amp = np.ones(ao_s.size) if amp is None else np.asarray(amp, np.float64)
    nodes, w = np.polynomial.hermite_e.hermegauss(7)
    w = w / w.sum()
    out = np.zeros(n)
    for key, at, sd in (("ao", ao_s, blur_s[0]), ("ac", ac_s, blur_s[1])):
        off, a, f, sg = SCG_ATOMS[key]
        B = at.size
        if not B:
            continue
        for q, wq in (zip(nodes, w) if sd > 0 else [(0.0, 1.0)]):
            out += wq * render_atoms(n, fs, (at[:, None] + off[None, :] + q * sd).ravel(),
                                     (amp[:, None] * a[None, :]).ravel(), np.tile(sg, B),
                                     np.tile(f, B), 0.08)
    return out


def median_complex(x: np.ndarray, beats_s: np.ndarray, fs: float, pre_s: float,
                   post_s: float) -> np.ndarray:
    """Median over beats of x (T,) on [beat - pre_s, beat + post_s] (beats rounded to the
    grid; those too near an edge skipped), z-scored -> (L,). DataError below 3 usable beats."""
    c = _median_segments(np.asarray(x, dtype=np.float64), beats_s, fs, pre_s, post_s)
    return (c - c.mean()) / (c.std() + 1e-12)


def _median_segments(x: np.ndarray, beats_s: np.ndarray, fs: float, pre_s: float,
                     post_s: float) -> np.ndarray:
    off = np.arange(-int(round(pre_s * fs)), int(round(post_s * fs)) + 1)
    idx = np.round(np.asarray(beats_s) * fs).astype(np.int64)[:, None] + off[None, :]
    idx = idx[(idx[:, 0] >= 0) & (idx[:, -1] < len(x))]
    if len(idx) < 3:
        raise DataError(f"a median beat complex needs >= 3 beats inside the signal, got {len(idx)}")
    return np.median(x[idx], axis=0)


def gyro_complex(gyro: np.ndarray, beats_s: np.ndarray, fs: float, pre_s: float, post_s: float,
                 reference: np.ndarray) -> np.ndarray:
    """The rotational BCG's median complex (L,): per bud, the first principal component of the
    3-axis median gyro complex (orientation-free), signed to correlate positively with
    `reference` (the fused complex), summed over the buds, z-scored. gyro (T, 6) band-passed."""
    g = _median_segments(np.asarray(gyro, dtype=np.float64), beats_s, fs, pre_s, post_s)
    out = np.zeros(g.shape[0])
    for bud in (g[:, :3], g[:, 3:]):
        u, sv, _ = np.linalg.svd(bud - bud.mean(axis=0), full_matrices=False)
        pc = u[:, 0] * sv[0]
        out += pc if np.dot(pc, reference) >= 0 else -pc
    return (out - out.mean()) / (out.std() + 1e-12)


def timing_features(fused: np.ndarray, gyro: np.ndarray, beats_s: np.ndarray, fs: float,
                    pre_s: float, post_s: float) -> np.ndarray:
    """The timing model's input (2 L + 1,): the fused BCG's median complex, heart rate / 60 bpm
    and the gyro's median complex (`gyro_complex`: the head's rotation carries the longitudinal
    BCG without the anterior-posterior part that the fused signal mixes in)."""
    ibi = np.diff(np.sort(beats_s))
    ibi = ibi[(ibi > 0.33) & (ibi < 2.0)]
    hr = 60.0 / np.median(ibi) if ibi.size else 75.0
    c = median_complex(fused, beats_s, fs, pre_s, post_s)
    return np.r_[c, hr / 60.0, gyro_complex(gyro, beats_s, fs, pre_s, post_s, c)]


def timing_targets(beats_s: np.ndarray, truth: dict) -> tuple[float, float]:
    """(median J -> AO lag, median LVET offset from the Weissler regression), both in s, of a
    simulated recording: each beat paired with the last AO before it (lags -50..400 ms)."""
    ao, ac = np.asarray(truth["ao_s"]), np.asarray(truth["ac_s"])
    k = np.searchsorted(ao, beats_s) - 1
    lag = np.asarray(beats_s)[k >= 0] - ao[k[k >= 0]]
    lag = lag[(lag > -0.05) & (lag < 0.4)]
    hr = 60.0 / np.diff(np.asarray(truth["r_s"]))
    lvet_off = np.median(ac[1:] - ao[1:] - lvet_regression(hr))
    return (float(np.median(lag)) if lag.size else float("nan")), float(lvet_off)


class TimingModel(nn.Module):
    """An ensemble of `members` MLPs: timing features (B, F) -> (B, 2) = (J -> AO lag, LVET
    offset) in s, the members' mean. Input standardisation (mu, sd) and the output offset are
    buffers, saved with the weights."""

    def __init__(self, n_in: int, hidden: int = 64, members: int = 1):
        super().__init__()
        self.nets = nn.ModuleList([
            nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                          nn.GELU(), nn.Linear(hidden, 2)) for _ in range(members)])
        self.register_buffer("mu", torch.zeros(n_in))
        self.register_buffer("sd", torch.ones(n_in))
        self.register_buffer("y_mu", torch.zeros(2))

    def member(self, k: int, x: torch.Tensor) -> torch.Tensor:
        return self.nets[k]((x - self.mu) / self.sd) / 100.0 + self.y_mu  # nets work in 10 ms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.member(k, x) for k in range(len(self.nets))]).mean(0)

    def predict(self, feats: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.as_tensor(np.atleast_2d(feats), dtype=torch.float32)).numpy()


def fit_timing(X: np.ndarray, Y: np.ndarray, hidden: int = 64, epochs: int = 300,
               lr: float = 1e-3, weight_decay: float = 1e-2, seed: int = 0,
               members: int = 1) -> TimingModel:
    """Train a `TimingModel` on features X (N, F) and targets Y (N, 2) in s (smooth L1 at
    5 ms, AdamW, batches of 128; member k seeded seed + k). Rows with a non-finite entry are
    dropped."""
    ok = np.isfinite(X).all(1) & np.isfinite(Y).all(1)
    if ok.sum() < 2:
        raise DataError(f"timing model: {int(ok.sum())} usable training rows (need >= 2)")
    X, Y = X[ok], Y[ok]
    m = TimingModel(X.shape[1], hidden, members)
    m.mu.copy_(torch.as_tensor(X.mean(0)))
    m.sd.copy_(torch.as_tensor(X.std(0) + 1e-6))
    m.y_mu.copy_(torch.as_tensor(np.median(Y, axis=0)))
    xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32)
    for k in range(members):
        g = torch.Generator().manual_seed(seed + k)
        torch.manual_seed(seed + k)
        for p in m.nets[k].parameters():  # a fresh init per member from its own seed
            if p.ndim > 1:
                nn.init.kaiming_uniform_(p, a=5 ** 0.5)
            else:
                nn.init.uniform_(p, -0.05, 0.05)
        opt = torch.optim.AdamW(m.nets[k].parameters(), lr=lr, weight_decay=weight_decay)
        for _ in range(epochs):
            perm = torch.randperm(len(xt), generator=g)
            for i in range(0, len(xt), 128):
                j = perm[i:i + 128]
                loss = nn.functional.smooth_l1_loss(m.member(k, xt[j]) * 100.0, yt[j] * 100.0,
                                                    beta=0.5)
                opt.zero_grad()
                loss.backward()
                opt.step()
    return m.eval()


def valve_times(beats_s: np.ndarray, lag_s: float, lvet_off_s: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """(AO, AC) times (s) of sorted J peaks: AO = J - lag, AC = AO + the Weissler LVET of the
    preceding interval + the offset."""
    ao = beats_s - lag_s
    ibi = np.diff(ao, prepend=ao[0] - np.median(np.diff(ao)))
    return ao, ao + lvet_regression(60.0 / np.clip(ibi, 0.33, 2.0)) + lvet_off_s


def synchronous_scg(fused: np.ndarray, gyro: np.ndarray, beats_s: np.ndarray, fs: float,
                    model: TimingModel, pre_s: float, post_s: float,
                    blur_s: tuple[float, float] = (0.0, 0.0)) -> dict:
    """The beat-synchronous SCG of a recording: {"scg" (T,), "ao_s", "ac_s" (B,), "lag_s",
    "lvet_off_s"} from its fused BCG (T,), band-passed gyro (T, 6) and J peaks (s)."""
    beats_s = np.sort(np.asarray(beats_s, dtype=np.float64))
    try:
        feats = timing_features(fused, gyro, beats_s, fs, pre_s, post_s)
    except DataError:  # fewer than 3 whole complexes: no SCG
        return {"scg": np.zeros(len(fused)), "ao_s": np.zeros(0), "ac_s": np.zeros(0),
                "lag_s": float("nan"), "lvet_off_s": float("nan")}
    lag, lvet_off = (float(v) for v in model.predict(feats)[0])
    ao, ac = valve_times(beats_s, lag, lvet_off)
    return {"scg": render_scg(len(fused), fs, ao, ac, blur_s=blur_s), "ao_s": ao, "ac_s": ac,
            "lag_s": lag, "lvet_off_s": lvet_off}


def save_timing(model: TimingModel, path, extra: dict | None = None) -> None:
    """Weights + sizes as one safetensors file (`shared.io.save_weights`)."""
    from shared.io import save_weights

    save_weights(path, model.state_dict(), {"kind": _KIND, "n_in": int(model.mu.numel()),
                                            "hidden": int(model.nets[0][0].out_features),
                                            "members": len(model.nets), **(extra or {})})


def load_timing(path) -> tuple[TimingModel, dict]:
    """(model in eval mode, info) from `save_timing`; a bad file is a one-line DataError."""
    from shared.io import load_weights
    from shared.validate import check_state_dict

    state, info = load_weights(path, _KIND)
    try:
        n_in, hidden, members = int(info["n_in"]), int(info["hidden"]), int(info["members"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: timing model metadata: {e}") from None
    if not (0 < n_in < 10_000 and 0 < hidden < 10_000 and 0 < members < 100):
        raise DataError(f"{path}: timing model sizes out of range ({n_in}, {hidden}, {members})")
    model = TimingModel(n_in, hidden, members)
    model.load_state_dict(check_state_dict(state, {k: v.shape for k, v in
                                                   model.state_dict().items()}, str(path)))
    return model.eval(), info
