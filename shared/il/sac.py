"""Soft Actor-Critic (Haarnoja et al. 2018, "SAC: Algorithms and Applications", Alg. 1) for expert
policies on gymnasium MuJoCo envs.

E independent agents (seeds) train in lockstep: every network is an `EnsembleMLP` with a leading
member axis, so one batched update serves all E agents and "train several seeds, keep the best"
costs little more than one. Per agent: twin Q critics with Polyak targets, a tanh-Gaussian actor,
automatic entropy tuning to target entropy -|A|; one gradient step per environment step.

Shapes (E agents, B batch, S obs, A action): replay rows (E, capacity, 2S+A+2); actor
(E, B, S) -> mean, log_std (E, B, A); critic (2E, B, S+A) -> Q (E, 2, B).

On CUDA the whole update (batch sampling from the on-device buffer included) is captured once as
a CUDA graph and replayed, and the environments step on the CPU while it runs. Training is
checkpointed (networks, optimisers, replay buffer, RNG) and resumes from `run_dir`; snapshots of
every agent's actor are taken at each evaluation (`snapshots.pt`) so an earlier, weaker
checkpoint can serve as a "medium" policy.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.config import NonNegFloat, NonNegInt, PosFloat, PosInt, Prob
from shared.errors import ConfigError
from shared.il.envs import make_vector_env
from shared.il.nets import EnsembleMLP, member_state_dict
from shared.il.policy import squash_log_std
from shared.io import Checkpointer, atomic_torch_save, atomic_write_json
from shared.log import get_logger, progress

__all__ = ["SACConfig", "SACAgents", "ReplayBuffer", "SACTrainer", "train_sac"]

log = get_logger("shared.il.sac")


@dataclass
class SACConfig:
    env_id: str = "Hopper-v5"  # gymnasium env id
    seed: int = 0  # agent i uses seed + i (networks, exploration, env resets)
    num_agents: PosInt = 1  # independent SAC agents trained in lockstep (keep the best)
    total_steps: PosInt = 1_000_000  # environment steps per agent
    learning_starts: NonNegInt = 5_000  # uniform-random actions before the first update
    batch_size: PosInt = 256  # transitions per agent per update
    hidden: PosInt = 256  # width of the 2 hidden layers (actor and critics)
    lr: PosFloat = 3e-4  # Adam learning rate (actor, critics, temperature)
    gamma: Prob = 0.99  # discount
    tau: Prob = 0.005  # Polyak rate of the target critics
    buffer_size: PosInt = 1_000_000  # replay capacity per agent
    eval_every: PosInt = 25_000  # steps between deterministic evaluations (+ actor snapshots)
    eval_episodes: PosInt = 3  # episodes per agent per evaluation
    ckpt_every: NonNegInt = 50_000  # steps between resumable checkpoints (0: only at the end)
    ckpt_buffer: bool = True  # include the replay buffer in checkpoints (exact resume)
    vector: Literal["sync", "async"] = "sync"  # env stepping: in-process or one process per agent
    device: str = "auto"  # auto | cpu | cuda
    cuda_graph: bool = True  # capture the update as a CUDA graph (CUDA only)
    time_limit_s: NonNegFloat = 0.0  # stop cleanly (eval + checkpoint) after this; 0 = no limit

    def validate(self) -> None:
        if self.num_agents < 1:
            raise ValueError("num_agents must be >= 1")
        if self.learning_starts < self.batch_size:
            raise ValueError("learning_starts must be >= batch_size")
        if self.eval_every < 1 or self.eval_episodes < 1:
            raise ValueError("eval_every and eval_episodes must be >= 1")


class SACAgents(nn.Module):
    """E SAC agents' networks: actor (E members), twin critics (2E members) + targets, log alpha."""

    def __init__(self, members: int, obs_dim: int, act_dim: int, hidden: int = 256):
        super().__init__()
        self.members, self.obs_dim, self.act_dim = members, obs_dim, act_dim
        self.actor = EnsembleMLP(members, obs_dim, 2 * act_dim, hidden)
        self.critic = EnsembleMLP(2 * members, obs_dim + act_dim, 1, hidden)
        self.critic_targ = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.zeros(members))

    def sample(self, obs: torch.Tensor, deterministic: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (E, B, S) -> action in [-1, 1] (E, B, A), log pi(a|s) (E, B)."""
        mean, raw = self.actor(obs).chunk(2, dim=-1)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[:-1], device=obs.device)
        log_std = squash_log_std(raw)
        u = mean + log_std.exp() * torch.randn_like(mean)
        logp = (-0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std
                - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log det of tanh's Jacobian, in the numerically stable form 2(log2 - u - softplus(-2u)).
        logp = logp - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), logp

    def q(self, net: EnsembleMLP, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """(E, B, S), (E, B, A) -> twin Q values (E, 2, B)."""
        x = torch.cat([obs, act], dim=-1).repeat_interleave(2, dim=0)
        return net(x).view(self.members, 2, -1)


class ReplayBuffer:
    """Per-agent ring buffers in one tensor rows (E, capacity, [s, a, r, terminated, s'])."""

    def __init__(self, members: int, capacity: int, obs_dim: int, act_dim: int, device: str):
        self.S, self.A, self.capacity = obs_dim, act_dim, capacity
        self.data = torch.zeros(members, capacity, 2 * obs_dim + act_dim + 2, device=device)
        self.size_t = torch.zeros((), device=device)  # read inside the captured graph
        self.ptr, self.size = 0, 0

    def add(self, obs, act, rew, term, next_obs) -> None:
        """One transition per agent: obs (E, S), act (E, A), rew, term (E,), next_obs (E, S)."""
        row = np.concatenate([obs, act, rew[:, None], term[:, None], next_obs], axis=1)
        self.data[:, self.ptr] = torch.as_tensor(row, dtype=torch.float32).to(
            self.data.device, non_blocking=True)
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.size_t.fill_(self.size)

    def sample(self, batch: int) -> tuple[torch.Tensor, ...]:
        """Uniform indices per agent (graph-safe: the size is read from a device scalar)."""
        E = self.data.shape[0]
        idx = (torch.rand(E, batch, device=self.data.device) * self.size_t).long()
        rows = self.data[torch.arange(E, device=self.data.device)[:, None], idx]
        S, A = self.S, self.A
        return (rows[..., :S], rows[..., S:S + A], rows[..., S + A], rows[..., S + A + 1],
                rows[..., S + A + 2:])

    def state(self) -> dict:
        return {"data": self.data[:, :self.size].cpu(), "ptr": self.ptr, "size": self.size}

    def load(self, st: dict) -> None:
        n = st["size"]
        if n > self.capacity:
            raise ConfigError(f"the checkpoint's replay buffer holds {n} transitions, more than "
                              f"this run's capacity {self.capacity} (total_steps, buffer_size)")
        self.data[:, :n] = st["data"].to(self.data.device)
        # a buffer filled to a smaller capacity (a run extended by more total_steps) goes on
        # appending, as the longer run would have, instead of wrapping onto its first rows
        self.ptr, self.size = (st["ptr"] if n == self.capacity else n), n
        self.size_t.fill_(n)


class SACTrainer:
    """Agents, optimisers, buffer and envs; `update()` = one SAC gradient step of all agents."""

    def __init__(self, cfg: SACConfig, device: str):
        self.cfg, self.device = cfg, device
        self.envs = make_vector_env(cfg.env_id, cfg.num_agents, cfg.vector)
        space = self.envs.single_action_space
        self.act_low, self.act_high = space.low.astype(np.float32), space.high.astype(np.float32)
        S = self.envs.single_observation_space.shape[0]
        A = space.shape[0]
        torch.manual_seed(cfg.seed)
        self.agents = SACAgents(cfg.num_agents, S, A, cfg.hidden).to(device)
        cap = device.startswith("cuda") and cfg.cuda_graph
        ag = self.agents
        self.opt_actor = torch.optim.Adam(ag.actor.parameters(), cfg.lr, capturable=cap)
        self.opt_critic = torch.optim.Adam(ag.critic.parameters(), cfg.lr, capturable=cap)
        self.opt_alpha = torch.optim.Adam([ag.log_alpha], cfg.lr, capturable=cap)
        self.buffer = ReplayBuffer(cfg.num_agents, min(cfg.buffer_size, cfg.total_steps), S, A,
                                   device)
        self.target_entropy = -float(A)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.use_graph = cap
        self.eval_envs = None

    def close(self) -> None:
        self.envs.close()
        if self.eval_envs is not None:
            self.eval_envs.close()

    def update(self) -> None:
        cfg, ag = self.cfg, self.agents
        obs, act, rew, term, nobs = self.buffer.sample(cfg.batch_size)
        alpha = ag.log_alpha.detach().exp()[:, None]  # (E, 1)
        with torch.no_grad():
            na, nlogp = ag.sample(nobs)
            q_next = ag.q(ag.critic_targ, nobs, na).min(dim=1).values
            y = rew + cfg.gamma * (1 - term) * (q_next - alpha * nlogp)  # (E, B)
        q = ag.q(ag.critic, obs, act)
        # Sum over agents of each agent's mean loss: agents' gradients stay independent.
        critic_loss = ((q - y[:, None]) ** 2).mean(-1).sum()
        self.opt_critic.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.opt_critic.step()

        ag.critic.requires_grad_(False)
        a, logp = ag.sample(obs)
        q_pi = ag.q(ag.critic, obs, a).min(dim=1).values
        actor_loss = (alpha * logp - q_pi).mean(-1).sum()
        self.opt_actor.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.opt_actor.step()
        ag.critic.requires_grad_(True)

        alpha_loss = (-ag.log_alpha[:, None] * (logp.detach() + self.target_entropy)).mean(-1).sum()
        self.opt_alpha.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.opt_alpha.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(ag.critic_targ.parameters()), list(ag.critic.parameters()),
                                 cfg.tau)

    def step_update(self) -> None:
        """One update: a graph replay on CUDA (captured on first use), else eager."""
        if not self.use_graph:
            self.update()
            return
        if self.graph is None:
            try:
                self._capture()
            except Exception as e:  # fall back rather than lose the run
                log.warning("CUDA graph capture failed (%s: %s); running eagerly",
                            type(e).__name__, e)
                self.use_graph = False
                self.update()
                return
        self.graph.replay()

    def _capture(self) -> None:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                self.update()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            self.update()
        self.graph = g
        log.info("captured the SAC update as a CUDA graph")

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """obs (E, S) -> actions in [-1, 1] (E, A)."""
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)[:, None]
        a, _ = self.agents.sample(x, deterministic)
        return a[:, 0].cpu().numpy()

    def to_env(self, a: np.ndarray) -> np.ndarray:
        return self.act_low + (a + 1) * 0.5 * (self.act_high - self.act_low)

    def evaluate(self, episodes: int, seed: int) -> np.ndarray:
        """Deterministic returns (E, episodes): each agent on its own env copy."""
        E = self.cfg.num_agents
        if self.eval_envs is None:
            self.eval_envs = make_vector_env(self.cfg.env_id, E, self.cfg.vector)
        envs = self.eval_envs
        obs, _ = envs.reset(seed=[seed + 1000 * i for i in range(E)])
        rets = np.zeros((E, episodes))
        done_n = np.zeros(E, dtype=int)
        run = np.zeros(E)
        while (done_n < episodes).any():
            obs, r, te, tr, _ = envs.step(self.to_env(self.act(obs, deterministic=True)))
            run += r
            for i in np.flatnonzero(te | tr):
                if done_n[i] < episodes:
                    rets[i, done_n[i]] = run[i]
                done_n[i] += 1
                run[i] = 0.0
        return rets

    def state(self, step: int, history: list, rng: np.random.Generator) -> dict:
        st = {"step": step, "agents": self.agents.state_dict(),
              "opt_actor": self.opt_actor.state_dict(), "opt_critic": self.opt_critic.state_dict(),
              "opt_alpha": self.opt_alpha.state_dict(), "history": history,
              "np_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}
        if self.cfg.ckpt_buffer:
            st["buffer"] = self.buffer.state()
        return st

    def load(self, st: dict) -> None:
        self.agents.load_state_dict(st["agents"])
        self.opt_actor.load_state_dict(st["opt_actor"])
        self.opt_critic.load_state_dict(st["opt_critic"])
        self.opt_alpha.load_state_dict(st["opt_alpha"])
        if "buffer" in st:
            self.buffer.load(st["buffer"])
        torch.set_rng_state(st["torch_rng"])


def _write_snapshots(run_dir: Path, trainer: SACTrainer, snaps: list[list[dict]],
                     history: list[dict]) -> dict:
    """Write `snapshots.pt`: every snapshot of the agent with the best evaluation so far."""
    best = max(((i, s) for i, ss in enumerate(snaps) for s in ss),
               key=lambda t: t[1]["eval_return"])
    agent = best[0]
    cfg = trainer.cfg
    atomic_torch_save({
        "env_id": cfg.env_id, "agent": agent, "seed": cfg.seed + agent,
        "obs_dim": trainer.agents.obs_dim, "act_dim": trainer.agents.act_dim,
        "hidden": cfg.hidden, "depth": 2, "action_low": trainer.act_low.tolist(),
        "action_high": trainer.act_high.tolist(), "snapshots": snaps[agent], "history": history,
    }, run_dir / "snapshots.pt")
    return {"agent": agent, "step": best[1]["step"], "eval_return": best[1]["eval_return"]}


def train_sac(cfg: SACConfig, run_dir: str | Path, device: str = "cpu") -> dict:
    """Train (or resume) `cfg.num_agents` SAC agents; returns a summary dict.

    Writes into `run_dir`: `ckpt.pt` (resume), `snapshots.pt` (actor snapshots of the best
    agent with their evaluation returns), `history.json` (evaluations of every agent).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = SACTrainer(cfg, device)
    E = cfg.num_agents
    rng = np.random.default_rng(cfg.seed)
    ckpt = Checkpointer(run_dir)
    history: list[dict] = []
    snaps: list[list[dict]] = [[] for _ in range(E)]
    start = 0
    st = ckpt.load()
    if st is not None:
        trainer.load(st)
        start, history = st["step"], st["history"]
        rng.bit_generator.state = st["np_rng"]
        prev = torch.load(run_dir / "snapshots.pt", weights_only=True) \
            if (run_dir / "snapshots.pt").exists() else None
        if prev is not None:
            snaps[prev["agent"]] = prev["snapshots"]
        log.info("resumed %s at step %d", run_dir, start)
    obs, _ = trainer.envs.reset(seed=[cfg.seed + i + 7919 * start for i in range(E)])
    ep_ret, recent = np.zeros(E), [[] for _ in range(E)]
    t0, t_last, step_last = time.time(), time.time(), start
    summary: dict = {}
    bar = progress(range(start, cfg.total_steps), desc=f"SAC {cfg.env_id}", initial=start,
                   total=cfg.total_steps)
    step = start
    for step in bar:
        if step < cfg.learning_starts:
            a = rng.uniform(-1, 1, size=(E, trainer.agents.act_dim)).astype(np.float32)
        else:
            a = trainer.act(obs)
        if step >= cfg.learning_starts:
            trainer.step_update()  # async on CUDA: overlaps with the env step below
        nobs, r, te, tr, info = trainer.envs.step(trainer.to_env(a))
        done = te | tr
        store_next = nobs.copy()
        for i in np.flatnonzero(done):
            store_next[i] = info["final_obs"][i]
        trainer.buffer.add(obs, a, r.astype(np.float32), te.astype(np.float32), store_next)
        ep_ret += r
        for i in np.flatnonzero(done):
            recent[i] = (recent[i] + [ep_ret[i]])[-10:]
            ep_ret[i] = 0.0
        obs = nobs
        n = step + 1
        out_of_time = cfg.time_limit_s > 0 and time.time() - t0 > cfg.time_limit_s
        if n % cfg.eval_every == 0 or n == cfg.total_steps or out_of_time:
            rets = trainer.evaluate(cfg.eval_episodes, seed=cfg.seed + 10_000 + n).mean(1)
            sps = (n - step_last) / (time.time() - t_last)
            t_last, step_last = time.time(), n
            history.append({"step": n, "eval_return": rets.tolist(),
                            "train_return": [float(np.mean(x)) if x else None for x in recent],
                            "alpha": trainer.agents.log_alpha.exp().tolist(),
                            "elapsed_s": time.time() - t0, "steps_per_s": sps})
            for i in range(E):
                snaps[i].append({"step": n, "eval_return": float(rets[i]),
                                 "state_dict": member_state_dict(trainer.agents.actor, i)})
            summary = _write_snapshots(run_dir, trainer, snaps, history)
            atomic_write_json(run_dir / "history.json", history)
            log.info("%s step %d: eval %s (best agent %d: %.0f) %.0f steps/s", cfg.env_id, n,
                     np.round(rets).astype(int).tolist(), summary["agent"],
                     summary["eval_return"], sps)
        if (cfg.ckpt_every and n % cfg.ckpt_every == 0) or n == cfg.total_steps or out_of_time:
            ckpt.save(trainer.state(n, history, rng))
        if out_of_time:
            log.info("time limit reached at step %d; checkpointed", n)
            break
    trainer.close()
    summary.update(steps=step + 1, elapsed_s=time.time() - t0, cuda_graph=trainer.graph is not None)
    return summary
