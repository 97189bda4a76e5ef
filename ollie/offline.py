"""OLLIE's offline phase (steps 1-3 of the paper's method), one gradient step at a time.

1. d(s, a): D_e vs D_o, PU or BCE loss, clipped to `offline.disc_clip` (`discriminator.py`);
   R̃ = logit d over D_o, shifted to be non-negative (`offline.reward_shift`,
   `discriminator.shift_reward`), fixed afterwards.
2. ν(s), y(s, a): the saddle point of L(ν, y) on D_o transitions and D_o's initial states
   (`dice.py`), simultaneous Adam descent (ν) / ascent (y); ν's constant mode b has its own lr.
   With `offline.y_update: dual`, ν descends the closed-form inner maximum over 0 ≤ y ≤ e^h
   (`dice.dual_objective`) and y is fitted to its maximiser min(δ_ν - 1, h).
3. π⁰: y-weighted BC on D_o (`extraction.py`), uniform batches weighted by y or batches drawn
   ∝ y (`offline.extraction`); y over D_o is fixed once step 2 ends. With
   `offline.extraction_y_cut` > 0 the rows whose y is below that share of a low quantile of y
   over D_e get weight 0 (`extraction.cut_low_y`; off by default, a deviation from the paper).

`prep_step(i, gen)` runs step i of stages 1-2 (`prep_steps` in all); `loss(policy, gen)` is one
stage-3 minibatch loss. All networks and optimiser states are in `state_dict()`, so the recipe can
checkpoint and resume anywhere. The offline baselines (`baselines.py`) share this interface.
Shapes: D_o (N_o, .), D_e (N_e, .), p0 (N_0, S); batches (B, .).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ollie.config import OfflineConfig
from ollie.data import OLLIEData, initial_states
from ollie.dice import (
    NuNet,
    YNet,
    dual_objective,
    saddle_objective,
    saddle_step,
    y_regression_loss,
)
from ollie.discriminator import offline_disc_loss, shift_reward, surrogate_reward
from ollie.extraction import cut_low_y, extraction_loss, resample_rows
from shared.il.discriminator import sample_rows
from shared.il.models import Discriminator, Normalizer, TanhGaussianPolicy

__all__ = ["OLLIEPretrainer", "t32"]


def t32(x: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)


class OLLIEPretrainer:
    """Offline OLLIE: d, then (ν, y), then y-weighted BC of the policy."""

    name = "ollie"

    def __init__(self, data: OLLIEData, norm: Normalizer, cfg: OfflineConfig):
        self.cfg = cfg
        dev = self.dev = norm.mean.device
        union = data.union
        S, A = union["observations"].shape[1], union["actions"].shape[1]
        self.x_e = torch.cat([t32(data.expert["observations"], dev),
                              t32(data.expert["actions"], dev)], 1)
        self.s_o, self.a_o = t32(union["observations"], dev), t32(union["actions"], dev)
        self.x_o = torch.cat([self.s_o, self.a_o], 1)
        self.s_next = t32(union["next_observations"], dev)
        self.not_done = 1.0 - t32(union["terminals"], dev)
        self.s0 = t32(initial_states(union), dev)
        sa_norm = norm.with_actions(A)
        self.d = Discriminator(S + A, cfg.hidden, cfg.disc_clip, sa_norm).to(dev)
        self.nu = NuNet(S, cfg.hidden, norm, cfg.gamma).to(dev)
        self.y = YNet(S + A, cfg.hidden, sa_norm, (-cfg.log_y_max - 5.0, cfg.log_y_max)).to(dev)
        # the absorbing state (terminations lead there): scalar ν and log y, its reward is
        # logit of d's lower clip (D_e holds no such state), shifted as R̃ is
        self.nu_abs = torch.zeros((), device=dev, requires_grad=True)
        self.log_y_abs = torch.zeros((), device=dev, requires_grad=True)
        n_term = float(union["terminals"].sum())
        self.abs_share = n_term / (len(union["terminals"]) + n_term)
        self.d_opt = torch.optim.Adam(self.d.parameters(), lr=cfg.disc_lr,
                                      weight_decay=cfg.disc_weight_decay)
        betas = (cfg.dice_beta1, 0.999)
        extra = cfg.absorbing
        self.nu_params = list(self.nu.parameters()) + ([self.nu_abs] if extra else [])
        self.y_params = list(self.y.parameters()) + ([self.log_y_abs] if extra else [])
        net = [p for p in self.nu_params if p is not self.nu.offset]
        self.nu_opt = torch.optim.Adam([{"params": net},
                                        {"params": [self.nu.offset], "lr": cfg.nu_offset_lr}],
                                       lr=cfg.dice_lr, betas=betas)
        self.y_opt = torch.optim.Adam(self.y_params, lr=cfg.dice_lr, betas=betas)
        self.prep_steps = cfg.disc_steps + cfg.dice_steps
        self.policy_steps = cfg.policy_steps
        self.reward: torch.Tensor | None = None  # R̃ over D_o (N_o,), after stage 1
        self.reward_abs: torch.Tensor | None = None  # the absorbing state's R̃ (scalar)
        self.y_o: torch.Tensor | None = None  # y over D_o (N_o,), after stage 2
        self.w_o: torch.Tensor | None = None  # stage 3's weights over D_o (N_o,): y after the cut
        self.cdf: torch.Tensor | None = None  # cumulative y over D_o, for resampled batches
        self.stats: dict = {}

    # stage 1 and 2 -------------------------------------------------------------------------
    def prep_step(self, i: int, gen: torch.Generator) -> float:
        c = self.cfg
        if i < c.disc_steps:
            B = c.disc_batch
            p = self.d(torch.cat([sample_rows(self.x_e, B, gen), sample_rows(self.x_o, B, gen)]))
            loss = offline_disc_loss(p[:B], p[B:], c.disc_loss, c.pu_eta)
            self.d_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.d_opt.step()
            return loss.item()
        r = self.surrogate()
        idx = torch.randint(len(self.s_o), (c.dice_batch,), generator=gen, device=self.dev)
        i0 = torch.randint(len(self.s0), (c.dice_batch,), generator=gen, device=self.dev)
        nu = self.nu(torch.cat([self.s_o[idx], self.s_next[idx], self.s0[i0]]))
        B = c.dice_batch
        # ν_abs on the scale of the absorbing state's value r_abs / (1 - γ) (a scalar under Adam
        # moves about lr per step), plus ν's constant mode, so that the latter shifts every δ
        # alike and only sets E[y] = 1
        absorbing = ((self.nu_abs + self.nu.offset) / (1 - c.gamma),
                     self.log_y_abs.clamp(self.y.lo, self.y.hi), self.reward_abs,
                     self.abs_share) if c.absorbing else None
        raw = self.y.raw(self.x_o[idx])
        if c.y_update == "dual":  # ν on the closed-form inner max, y fitted to its maximiser
            obj = dual_objective(r[idx], nu[:B], nu[B:2 * B], self.not_done[idx], nu[2 * B:],
                                 c.gamma, self.y.hi)
            delta = r[idx] + c.gamma * self.not_done[idx] * nu[B:2 * B] - nu[:B]
            target = (delta.detach() - 1).clamp(self.y.lo, self.y.hi) + 1
            saddle_step(obj, self.nu_params, self.y_params, self.nu_opt, self.y_opt,
                        y_regression_loss(raw, target))
            return obj.item()
        obj = saddle_objective(raw.clamp(self.y.lo, self.y.hi), r[idx], nu[:B], nu[B:2 * B],
                               self.not_done[idx], nu[2 * B:], c.gamma, absorbing)
        y_loss = None
        if c.y_update == "regression":
            delta = r[idx] + c.gamma * self.not_done[idx] * nu[B:2 * B] - nu[:B]
            y_loss = y_regression_loss(raw, delta)
        saddle_step(obj, self.nu_params, self.y_params, self.nu_opt, self.y_opt, y_loss)
        return obj.item()

    def surrogate(self) -> torch.Tensor:
        """R̃ over D_o as the saddle point sees it (computed once d is trained): logit d, shifted
        or scaled by `offline.reward_shift`."""
        if self.reward is None:
            lo = torch.logit(torch.tensor([self.cfg.disc_clip[0]], device=self.dev))
            r = shift_reward(torch.cat([surrogate_reward(self.d, self.x_o), lo]),
                             self.cfg.reward_shift, self.cfg.disc_clip[0])
            self.reward, self.reward_abs = r[:-1], r[-1]  # D_o rows; the absorbing state
        return self.reward

    # stage 3 -------------------------------------------------------------------------------
    def weights(self) -> torch.Tensor:
        """y over D_o (N_o,), fixed once the saddle point is solved."""
        if self.y_o is None:
            with torch.no_grad():
                self.y_o = torch.cat([self.y(self.x_o[i:i + 8192]).exp()
                                      for i in range(0, len(self.x_o), 8192)])
            n_e = len(self.x_e)
            self.stats = {**self._y_means(self.y_o),
                          "reward_mean_expert": float(self.surrogate()[:n_e].mean()),
                          "reward_mean_imperfect": float(self.surrogate()[n_e:].mean())}
        return self.y_o

    def _y_means(self, y: torch.Tensor) -> dict:
        n_e = len(self.x_e)
        return {"y_mean_expert": float(y[:n_e].mean()), "y_mean_imperfect": float(y[n_e:].mean())}

    def extraction_weights(self) -> torch.Tensor:
        """Step 3's weights over D_o (N_o,): y, with the rows below the low-y cut set to 0
        (`offline.extraction_y_cut`; y itself when the cut is 0)."""
        if self.w_o is None:
            y, c, n_e = self.weights(), self.cfg, len(self.x_e)
            self.w_o, thr = cut_low_y(y, y[:n_e], c.extraction_y_cut, c.extraction_y_cut_quantile)
            if c.extraction_y_cut > 0:
                cut = self.w_o == 0
                self.stats.update(y_cut_threshold=thr, y_cut_rows_expert=int(cut[:n_e].sum()),
                                  y_cut_rows_imperfect=int(cut[n_e:].sum()),
                                  y_cut_mass=float(y.double()[cut].sum() / y.double().sum()))
        return self.w_o

    STEP3_FIELDS = ("extraction", "extraction_y_cut", "extraction_y_cut_quantile", "policy_lr",
                    "policy_weight_decay", "policy_steps", "policy_batch")

    def set_extraction(self, cfg: OfflineConfig | None = None,
                       y: torch.Tensor | None = None) -> None:
        """Re-target step 3 without retraining stages 1-2: another offline config that differs
        only in step 3's fields (`STEP3_FIELDS`: batching, low-y cut, policy optimiser; any other
        difference is a ValueError, as stages 1-2 were trained with this one) and/or other y over
        D_o (N_o,). Drops the cached step-3 weights, the resampling table and the cut's stats,
        and refreshes the y means in `stats` for a new y."""
        if cfg is not None:
            other = [f.name for f in dataclasses.fields(cfg) if f.name not in self.STEP3_FIELDS
                     and getattr(cfg, f.name) != getattr(self.cfg, f.name)]
            if other:
                raise ValueError(f"set_extraction changes only step 3; {', '.join(other)} differ")
            self.cfg = cfg
        if y is not None:
            if y.shape != (len(self.s_o),):
                raise ValueError(f"y has shape {tuple(y.shape)}, expected ({len(self.s_o)},)")
            self.y_o = y
            self.stats.update(self._y_means(y))
        for k in [k for k in self.stats if k.startswith("y_cut_")]:
            del self.stats[k]
        self.w_o = self.cdf = None

    def loss(self, policy: TanhGaussianPolicy, gen: torch.Generator) -> torch.Tensor:
        y, B = self.extraction_weights(), self.cfg.policy_batch
        if self.cfg.extraction == "resample":  # rows drawn ∝ y, equal weights
            if self.cdf is None:
                self.cdf = torch.cumsum(y.double(), 0)
            idx = resample_rows(self.cdf, B, gen)
            w = torch.ones(B, device=self.dev)
        else:
            idx = torch.randint(len(self.s_o), (B,), generator=gen, device=self.dev)
            w = y[idx]
        return extraction_loss(policy.log_prob(self.s_o[idx], self.a_o[idx]), w)

    def state_dict(self) -> dict:
        return {**{k: getattr(self, k).state_dict()
                   for k in ("d", "nu", "y", "d_opt", "nu_opt", "y_opt")},
                "nu_abs": self.nu_abs.detach().clone(),
                "log_y_abs": self.log_y_abs.detach().clone()}

    def load_state_dict(self, st: dict) -> None:
        for k, v in st.items():
            if k in ("nu_abs", "log_y_abs"):
                with torch.no_grad():
                    getattr(self, k).copy_(v)
            else:
                getattr(self, k).load_state_dict(v)
        self.reward = self.y_o = self.w_o = self.cdf = None
