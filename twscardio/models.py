"""BCG->SCG reconstruction network and the region-focused loss (paper sec. 2.2.4).

`BCG2SCGNet` is non-autoregressive: one forward pass maps a whole window of the dual-bud,
multi-axis stream (+ validity mask and time encoding) to the SCG on the 100 Hz output grid. The
public code decodes autoregressively (one sample per step, O(T^2) per window), too slow for real
time on 2 cores; a dilated temporal convolution stack sees +-0.65 s around every output sample.

`RegionFocusedLoss`: sum_t w(t)|y_hat - y| / sum_t w(t) + beta (1 - r(y_hat, y)), with
w(t) = 1 + lam * sum_beats [G(t - t_AO, sigma) + G(t - t_AC, sigma)] (lam 4, sigma 20 ms).
`kind='l1'` gives the public code's plain L1 (the ablation). `local_r_weight` > 0 (ours; the
config's default is 1) adds gamma sum_i v_i (1 - r_i) / sum_i v_i over sliding windows i of
`local_r_s` (`local_pearson`), v_i the target's variance in window i: per-beat shape, as the
bench scores it. `err='l2'` (ours, an option) puts e^2 in the region term. `correction_l1` > 0
(ours, an option) adds lambda mean |y_hat - prior| for a residual network (an L1 prior on its
correction of the prior channel).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from twscardio.config import N_FEATURES_PRIOR, LossConfig, NetConfig
from twscardio.simulator import render_atoms

__all__ = ["BCG2SCGNet", "NetEnsemble", "RegionFocusedLoss", "region_weights", "local_pearson",
           "build_model", "save_model", "load_model", "MODEL_FILE"]

MODEL_FILE = "model.safetensors"  # what twscardio.train writes into its run dir
_KIND = "twscardio.BCG2SCGNet"


class _Block(nn.Module):
    def __init__(self, c: int, k: int, d: int, p: float):
        super().__init__()
        self.norm = nn.GroupNorm(1, c)
        self.conv = nn.Conv1d(c, c, k, dilation=d, padding=d * (k - 1) // 2)
        self.mix = nn.Conv1d(c, c, 1)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.drop(torch.nn.functional.gelu(self.conv(
            torch.nn.functional.gelu(self.norm(x))))))


class BCG2SCGNet(nn.Module):
    """Non-autoregressive dilated TCN: features (B, C_in, L) -> SCG (B, L).

    C_in = 17 (`twscardio.pipeline.network_features`): 6 motion-cancelled accel axes, 6 gyro
    axes, the fused BCG, 2 validity masks, 2 time-since-valid encodings. L is any length.
    """

    def __init__(self, in_channels: int, cfg: NetConfig):
        super().__init__()
        c = cfg.channels
        self.stem = nn.Conv1d(in_channels, c, 7, padding=3)
        self.blocks = nn.Sequential(*[_Block(c, cfg.kernel, d, cfg.dropout) for d in cfg.dilations])
        self.head = nn.Sequential(nn.GroupNorm(1, c), nn.GELU(), nn.Conv1d(c, 1, 1))
        # `cfg.residual_prior`: output = last input channel (the prior) + correction, the
        # correction's last layer zero at the start
        self.residual = bool(cfg.residual_prior)
        if self.residual and in_channels != N_FEATURES_PRIOR:
            raise ValueError(f"net.residual_prior needs the {N_FEATURES_PRIOR} input channels of "
                             f"the prior (the last is the prior), got {in_channels}")
        if self.residual:
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            raise ValueError(f"BCG2SCGNet expects (B, C, L), got shape {tuple(x.shape)}")
        y = self.head(self.blocks(self.stem(x)))[:, 0]
        return y + x[:, -1] if self.residual else y


class NetEnsemble(nn.Module):
    """The mean output of networks of one shape (`NetConfig.members`): (B, C_in, L) -> (B, L)."""

    def __init__(self, nets: list[BCG2SCGNet]):
        super().__init__()
        if not nets:
            raise ValueError("NetEnsemble needs at least one network")
        self.members = nn.ModuleList(nets)

    @property
    def stem(self) -> nn.Conv1d:  # the input layer every member shares the shape of
        return self.members[0].stem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def build_model(in_channels: int, cfg: NetConfig) -> BCG2SCGNet | NetEnsemble:
    """One network, or `cfg.members` > 1 of them as a `NetEnsemble`."""
    if cfg.members == 1:
        return BCG2SCGNet(in_channels, cfg)
    one = replace(cfg, members=1)
    return NetEnsemble([BCG2SCGNet(in_channels, one) for _ in range(cfg.members)])


def region_weights(n: int, fs: float, ao_s: np.ndarray, ac_s: np.ndarray, lam: float,
                   sigma_s: float) -> np.ndarray:
    """w (n,) = 1 + lam * sum_beats [G(t - AO) + G(t - AC)], G a unit-peak Gaussian."""
    centers = np.concatenate([ao_s, ac_s])
    g = render_atoms(n, fs, centers, np.ones(centers.size), np.full(centers.size, sigma_s),
                     np.zeros(centers.size), 4 * sigma_s)
    return (1.0 + lam * g).astype(np.float32)


def local_pearson(pred: torch.Tensor, target: torch.Tensor, n: int, hop: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pearson r of pred and target (B, L) over windows of n samples every hop samples, and the
    target's variance in each: -> (r (B, W), v (B, W)), W = (L - n) // hop + 1."""
    p, t = pred.unfold(1, n, hop), target.unfold(1, n, hop)
    p, t = p - p.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)
    r = (p * t).sum(-1) / (p.norm(dim=-1) * t.norm(dim=-1) + 1e-8)
    return r, t.pow(2).mean(-1)


class RegionFocusedLoss(nn.Module):
    """Loss on (B, L) predictions/targets with (B, L) region weights (ignored for 'l1'); `fs` is
    the output rate (Hz), which the sliding-window term needs."""

    def __init__(self, cfg: LossConfig, fs: float):
        super().__init__()
        self.cfg = cfg
        # TrainConfig.validate keeps both >= 1 sample (the window >= 2) for the region loss
        self.n_local = int(round(cfg.local_r_s * fs))
        self.hop_local = int(round(cfg.local_r_hop_s * fs))

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weights: torch.Tensor | None = None, prior: torch.Tensor | None = None
                ) -> torch.Tensor:
        """`prior` (B, L): what a residual network corrects (its input's prior channel); the
        loss adds correction_l1 x mean |pred - prior| (needed when correction_l1 > 0)."""
        sparse = 0.0
        if self.cfg.correction_l1 > 0:
            if prior is None:
                raise ValueError("loss.correction_l1 needs the prior the network corrects")
            sparse = self.cfg.correction_l1 * (pred - prior).abs().mean()
        return self._fit(pred, target, weights) + sparse

    def _fit(self, pred: torch.Tensor, target: torch.Tensor,
             weights: torch.Tensor | None) -> torch.Tensor:
        err = (pred - target).abs()
        if self.cfg.kind == "l1":
            return err.mean()
        if weights is None:
            raise ValueError("the region-focused loss needs AO/AC region weights")
        if self.cfg.err == "l2":
            err = err * err
        wl1 = (weights * err).sum() / weights.sum()
        r = local_pearson(pred, target, pred.shape[1], pred.shape[1])[0]  # over the whole crop
        loss = wl1 + self.cfg.corr_weight * (1 - r).mean()
        if self.cfg.local_r_weight > 0:
            if pred.shape[1] < self.n_local:
                raise ValueError(f"loss.local_r_s needs {self.n_local} samples, the crop has "
                                 f"{pred.shape[1]}")
            rl, v = local_pearson(pred, target, self.n_local, self.hop_local)
            loss = loss + self.cfg.local_r_weight * ((1 - rl) * v).sum() / (v.sum() + 1e-12)
        return loss


def save_model(model: BCG2SCGNet | NetEnsemble, cfg: NetConfig, path,
               extra: dict | None = None) -> None:
    """Weights, the net config and `extra` (JSON: training history...) as one safetensors
    file (`shared.io.save_weights`)."""
    from shared.config import to_dict
    from shared.io import save_weights

    save_weights(path, model.state_dict(), {"kind": _KIND, "in_channels": model.stem.in_channels,
                                            "net": to_dict(cfg), **(extra or {})})


def load_model(path) -> tuple[BCG2SCGNet | NetEnsemble, dict]:
    """(model in eval mode, the file's info) from `save_model`; runs no code from the file. A
    missing, corrupt or foreign file or mismatched tensors is a one-line DataError."""
    from shared.config import from_dict
    from shared.errors import ConfigError, DataError
    from shared.io import load_weights
    from shared.validate import check_state_dict

    state, info = load_weights(path, _KIND)
    try:
        cfg = from_dict(NetConfig, info.get("net"))
        in_ch = int(info["in_channels"])
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: model metadata: {e}") from None
    with torch.device("meta"):
        shape = build_model(in_ch, cfg)
    model = build_model(in_ch, cfg)
    model.load_state_dict(check_state_dict(state, shape, str(path)))
    return model.eval(), info
