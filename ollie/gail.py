"""OLLIE step 5: online finetuning by GAIL with PPO, from (π⁰, D⁰) (paper, method section; GAIL:
Ho & Ermon 2016; PPO: `ppo.py`).

Each iteration:
1. roll the stochastic policy out in `n_envs` environments for `rollout_steps` steps (episodes
   continue across iterations; the observation normaliser is the offline phase's, fixed);
2. reward every transition with the discriminator as it stands (so the first iteration's rewards
   come from D⁰ itself): D = σ(logit) = P(policy | s, a) and
   'positive': r = -log D = softplus(-logit) (the -log(1 - D_expert) form), or
   'negative': r = log(1 - D) = -softplus(logit) (the log D_expert form);
   a termination, with `absorbing`, enters an absorbing state (DAC, Kostrikov et al. 2019) worth
   r_abs / (1 - γ), r_abs = the lowest reward of the batch (the expert data hold no such state,
   so the discriminator would call it fully policy-like), else it is worth 0;
3. update the discriminator: BCE, rollout (s, a) labelled 1 vs D_e (s, a) labelled 0;
4. (first iteration) fit the value function alone for `value_warmup_epochs`, so a pretrained
   policy is not moved by a random critic's advantages (every arm alike);
5. PPO epochs: GAE advantages (normalised per batch), clipped surrogate, value regression;
   the policy stops (`kl_check: minibatch`) before the first minibatch whose approximate KL
   to the rollout policy exceeds 1.5 `target_kl` (the value function keeps fitting), or
   (`epoch`) the epochs stop once the whole batch's KL exceeds `target_kl` after an epoch. A
   pretrained policy can be sharp (DWBC's on HalfCheetah: σ down to e^-4): one epoch of Adam
   steps moved its mean by many σ (approximate KL 4-24 after the first epoch), and once log ρ
   passed 88 the online phase went NaN (results/ollie/NOTES.md).
   log π is taken at the rollout's pre-tanh samples u (`ppo.log_prob_pre_tanh`), not
   recomputed from a = tanh(u), which float32 cannot invert near ±1.

Nothing non-finite passes silently: an action, a loss or a network parameter that is not finite
stops the run with a DataError naming the run (`where`), the iteration and the env step, before
the environment sees the action or the optimiser takes the step.

`OnlineState` holds everything that changes (networks, optimisers, RNG, counters, curve) and
is what the recipe checkpoints after every `ckpt_every` iterations; a resumed run resets its
environments (episodes in flight at the checkpoint are cut) and continues the step count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ollie.config import OnlineConfig
from ollie.ppo import MAX_LOG_RATIO, clipped_policy_loss, gae, log_prob_pre_tanh, sample_action
from shared.errors import DataError
from shared.il.discriminator import sample_rows
from shared.il.envs import make_vector_env
from shared.il.models import Normalizer, TanhGaussianPolicy
from shared.il.nets import mlp

__all__ = ["ValueNet", "OnlineState", "gail_reward", "disc_bce", "collect", "run_online"]


class ValueNet(nn.Module):
    """V(s): s (B, S) -> (B,), on the shared normaliser."""

    def __init__(self, state_dim: int, hidden: int, norm: Normalizer):
        super().__init__()
        self.net = mlp(state_dim, 1, hidden)
        self.norm = norm

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(s)).squeeze(-1)


def gail_reward(logit: torch.Tensor, kind: str) -> torch.Tensor:
    """Reward (B,) from discriminator logits (B,) of D = P(policy | s, a)."""
    return F.softplus(-logit) if kind == "positive" else -F.softplus(logit)


def disc_bce(logit_policy: torch.Tensor, logit_expert: torch.Tensor) -> torch.Tensor:
    """BCE with policy rows labelled 1 and expert rows labelled 0."""
    return F.softplus(-logit_policy).mean() + F.softplus(logit_expert).mean()


@dataclass
class OnlineState:
    policy: TanhGaussianPolicy
    value: ValueNet
    disc: nn.Module
    policy_opt: torch.optim.Optimizer
    value_opt: torch.optim.Optimizer
    disc_opt: torch.optim.Optimizer
    gen: torch.Generator
    env_steps: int = 0
    iteration: int = 0
    curve: list[dict] = field(default_factory=list)
    next_eval: int = 0

    def state_dict(self) -> dict:
        nets = ("policy", "value", "disc", "policy_opt", "value_opt", "disc_opt")
        return {**{k: getattr(self, k).state_dict() for k in nets}, "gen": self.gen.get_state(),
                "env_steps": self.env_steps, "iteration": self.iteration, "curve": self.curve,
                "next_eval": self.next_eval}

    def load_state_dict(self, st: dict) -> None:
        for k in ("policy", "value", "disc", "policy_opt", "value_opt", "disc_opt"):
            getattr(self, k).load_state_dict(st[k])
        self.gen.set_state(st["gen"].cpu())
        self.env_steps, self.iteration = st["env_steps"], st["iteration"]
        self.curve, self.next_eval = st["curve"], st["next_eval"]


def collect(envs, obs: np.ndarray, policy: TanhGaussianPolicy, gen: torch.Generator, T: int,
            dev, where: str = "rollout") -> tuple[dict, np.ndarray]:
    """T steps of the stochastic policy in every env of `envs` (from observations `obs`) ->
    (T, N, .) tensors s, a, u (pre-tanh), logp, s_next, term, end; returns the observations to
    continue from. A non-finite action raises a DataError naming `where` and the step, before
    the environment gets it."""
    keys = ("s", "a", "u", "logp", "s_next", "term", "end")
    buf: dict[str, list] = {k: [] for k in keys}
    for t in range(T):
        s = torch.as_tensor(obs, dtype=torch.float32, device=dev)
        a, u, logp = sample_action(policy, s, gen)
        if not (torch.isfinite(u).all() and torch.isfinite(logp).all()):
            raise DataError(f"{where}: the policy's action is not finite at rollout step {t} "
                            "(a diverged policy; the environment did not get it)")
        nobs, _, term, trunc, info = envs.step(a.cpu().numpy())
        end = term | trunc
        s_next = nobs.copy()
        if end.any():
            s_next[end] = np.stack(info["final_obs"][end])
        for k, v in zip(keys, (s, a, u, logp, s_next, term, end)):
            buf[k].append(torch.as_tensor(np.asarray(v), device=dev))
        obs = nobs
    out = {k: torch.stack(v) for k, v in buf.items()}
    out["s_next"] = out["s_next"].float()
    return out, obs


def _finite(x: torch.Tensor, what: str, where: str) -> torch.Tensor:
    """x, or a DataError naming `what` and `where` when any entry is not finite."""
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{where}: {what} is not finite (a diverged online phase)")
    return x


@torch.no_grad()
def _approx_kl(logp: torch.Tensor, logp_old: torch.Tensor) -> float:
    """KL(old || new) estimated from the samples' log-ratios (Schulman's k3: r − 1 − log r),
    the log-ratio clamped as in the surrogate (finite however far the policy moved)."""
    log_r = (logp - logp_old).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    return float((log_r.exp() - 1 - log_r).mean())


def _iteration(st: OnlineState, roll: dict, x_e: torch.Tensor, cfg: OnlineConfig,
               warmup: bool, where: str = "online") -> dict:
    T, N = roll["term"].shape
    s, a = roll["s"].reshape(T * N, -1), roll["a"].reshape(T * N, -1)
    u = roll["u"].reshape(T * N, -1)
    x = torch.cat([s, a], 1)
    with torch.no_grad():
        r = _finite(gail_reward(st.disc(x), cfg.reward).reshape(T, N), "the GAIL reward",
                    where)
        r_abs = r.min() if cfg.absorbing else torch.zeros(())
    # discriminator: this batch (label 1) against as many expert rows (label 0)
    d_losses = []
    for _ in range(cfg.disc_epochs):
        perm = torch.randperm(T * N, generator=st.gen, device=x.device)
        for i in range(0, T * N, cfg.disc_batch):
            xp = x[perm[i:i + cfg.disc_batch]]
            xe = sample_rows(x_e, len(xp), st.gen)
            loss = _finite(disc_bce(st.disc(xp), st.disc(xe)), "the discriminator loss", where)
            st.disc_opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(st.disc.parameters(), cfg.max_grad_norm)
            st.disc_opt.step()
            d_losses.append(loss.item())

    def targets():
        with torch.no_grad():
            v = st.value(s).reshape(T, N)
            v_next = st.value(roll["s_next"].reshape(T * N, -1)).reshape(T, N)
            term = roll["term"].bool()
            v_next = torch.where(term, r_abs / (1 - cfg.gamma), v_next)
            return gae(r, v, v_next, roll["end"], cfg.gamma, cfg.gae_lambda)

    adv, ret = targets()
    idx_all = T * N
    if warmup:
        for _ in range(cfg.value_warmup_epochs):
            perm = torch.randperm(idx_all, generator=st.gen, device=x.device)
            for i in range(0, idx_all, cfg.minibatch):
                j = perm[i:i + cfg.minibatch]
                vl = _finite(0.5 * (st.value(s[j]) - ret.reshape(-1)[j]).pow(2).mean(),
                             "the value loss", where)
                st.value_opt.zero_grad(set_to_none=True)
                vl.backward()
                st.value_opt.step()
        adv, ret = targets()
    adv, ret = adv.reshape(-1), ret.reshape(-1)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    logp_old = roll["logp"].reshape(-1)
    p_losses, v_losses, kl, policy_on = [], [], 0.0, True
    for _ in range(cfg.epochs):
        if kl > cfg.target_kl:
            break
        perm = torch.randperm(idx_all, generator=st.gen, device=x.device)
        for i in range(0, idx_all, cfg.minibatch):
            j = perm[i:i + cfg.minibatch]
            if policy_on:
                logp = log_prob_pre_tanh(st.policy, s[j], u[j])
                if cfg.kl_check == "minibatch" and _approx_kl(logp, logp_old[j]) > \
                        1.5 * cfg.target_kl:
                    policy_on = False  # the value function keeps fitting this batch
            if policy_on:
                pl = clipped_policy_loss(logp, logp_old[j], adv[j], cfg.clip_eps)
                if cfg.entropy_coef:
                    pl = pl + cfg.entropy_coef * logp.mean()  # -entropy, from samples
                _finite(pl, "the PPO policy loss", where)
                st.policy_opt.zero_grad(set_to_none=True)
                pl.backward()
                nn.utils.clip_grad_norm_(st.policy.parameters(), cfg.max_grad_norm)
                st.policy_opt.step()
                p_losses.append(pl.item())
            vl = _finite(0.5 * (st.value(s[j]) - ret[j]).pow(2).mean(), "the value loss", where)
            st.value_opt.zero_grad(set_to_none=True)
            vl.backward()
            nn.utils.clip_grad_norm_(st.value.parameters(), cfg.max_grad_norm)
            st.value_opt.step()
            v_losses.append(vl.item())
        with torch.no_grad():  # approx. KL(old || new) on the whole batch
            kl = _approx_kl(log_prob_pre_tanh(st.policy, s, u), logp_old)
    for name in ("policy", "value", "disc"):
        for k, w in getattr(st, name).named_parameters():
            _finite(w.detach(), f"the {name} parameter {k} after the update", where)
    return {"approx_kl": kl, "reward_mean": float(r.mean()), "disc_loss": float(np.mean(d_losses)),
            "policy_loss": float(np.mean(p_losses)), "value_loss": float(np.mean(v_losses)),
            "policy_steps": len(p_losses)}


def run_online(st: OnlineState, env_id: str, x_e: torch.Tensor, cfg: OnlineConfig, seed: int,
               evaluate: Callable[[TanhGaussianPolicy], dict],
               on_iteration: Callable[[OnlineState], None] | None = None,
               progress: Callable | None = None, where: str = "online phase") -> OnlineState:
    """GAIL + PPO until `cfg.env_steps` environment steps (from wherever `st` stands).

    `evaluate(policy)` -> {'return', 'score'} is called at step 0 and every `eval_every` steps
    (the curve's env_steps); `on_iteration(st)` after each iteration (checkpointing).
    """
    dev = x_e.device
    per_iter = cfg.n_envs * cfg.rollout_steps
    if st.env_steps == 0 and not st.curve:
        st.curve.append({"env_steps": 0, **evaluate(st.policy)})
        st.next_eval = cfg.eval_every
    if st.env_steps >= cfg.env_steps:
        return st
    envs = make_vector_env(env_id, cfg.n_envs)
    obs, _ = envs.reset(seed=[seed * 10_000 + 100 * st.iteration + i for i in range(cfg.n_envs)])
    bar = progress(total=cfg.env_steps, initial=st.env_steps) if progress else None
    while st.env_steps < cfg.env_steps:
        at = f"{where}, iteration {st.iteration} (env step {st.env_steps})"
        roll, obs = collect(envs, obs, st.policy, st.gen, cfg.rollout_steps, dev, at)
        stats = _iteration(st, roll, x_e, cfg, warmup=st.iteration == 0, where=at)
        st.env_steps += per_iter
        st.iteration += 1
        if bar is not None:
            bar.update(per_iter)
        if st.env_steps >= st.next_eval or st.env_steps >= cfg.env_steps:
            st.curve.append({"env_steps": st.env_steps, **evaluate(st.policy), **stats})
            while st.next_eval <= st.env_steps:
                st.next_eval += cfg.eval_every
        if on_iteration is not None:
            on_iteration(st)
    envs.close()
    if bar is not None:
        bar.close()
    return st
