"""Saved tanh-Gaussian policies: the committed expert / medium checkpoints and how to act with them.

A policy file is a `torch.save`d dict (format `shared.il.policy/1`): env id, observation and
action sizes, the MLP's state dict (`nets.mlp` layout, output = [mean, log_std] of size 2*A) and
the action bounds. `GaussianPolicy.act(obs (N, S)) -> (N, A)` squashes with tanh and rescales to
the bounds; deterministic actions are tanh(mean).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from shared.errors import DataError
from shared.il.nets import mlp
from shared.io import atomic_torch_save
from shared.validate import brief, check_state_dict, check_torch_file, finite_array

__all__ = ["LOG_STD_MIN", "LOG_STD_MAX", "squash_log_std", "GaussianPolicy", "save_policy",
           "load_policy", "POLICY_FORMAT"]

POLICY_FORMAT = "shared.il.policy/1"
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
_KEYS = ("format", "env_id", "obs_dim", "act_dim", "hidden", "depth", "action_low",
         "action_high", "state_dict")


def squash_log_std(raw: torch.Tensor) -> torch.Tensor:
    """Map an unbounded network output into [LOG_STD_MIN, LOG_STD_MAX] smoothly (CleanRL's SAC)."""
    return LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1)


class GaussianPolicy(nn.Module):
    """A saved SAC actor: obs (N, S) -> action (N, A) within [action_low, action_high]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, depth: int = 2,
                 action_low: np.ndarray | None = None, action_high: np.ndarray | None = None):
        super().__init__()
        self.net = mlp(obs_dim, 2 * act_dim, hidden, depth)
        low = torch.as_tensor(-np.ones(act_dim) if action_low is None else action_low,
                              dtype=torch.float32)
        high = torch.as_tensor(np.ones(act_dim) if action_high is None else action_high,
                               dtype=torch.float32)
        self.register_buffer("scale", (high - low) / 2)
        self.register_buffer("bias", (high + low) / 2)
        self.obs_dim, self.act_dim, self.hidden, self.depth = obs_dim, act_dim, hidden, depth

    @torch.no_grad()
    def mean_std(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pre-tanh Gaussian parameters (N, A), (N, A) for obs (N, S)."""
        mean, raw = self.net(torch.as_tensor(np.asarray(obs), dtype=torch.float32)).chunk(2, -1)
        return mean.numpy(), squash_log_std(raw).exp().numpy()

    def squash(self, u: np.ndarray) -> np.ndarray:
        """Pre-tanh u (N, A) -> action within the bounds."""
        return np.tanh(u) * self.scale.numpy() + self.bias.numpy()

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = True,
            generator: torch.Generator | None = None) -> np.ndarray:
        """obs (N, S) -> actions (N, A) as float32 numpy; sampling uses `generator` if given."""
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        mean, raw = self.net(x).chunk(2, dim=-1)
        if deterministic:
            u = mean
        else:
            std = squash_log_std(raw).exp()
            u = mean + std * torch.randn(mean.shape, generator=generator)
        return (torch.tanh(u) * self.scale + self.bias).numpy()


def save_policy(path: str | Path, env_id: str, state_dict: dict, obs_dim: int, act_dim: int,
                hidden: int, depth: int, action_low, action_high, **meta) -> None:
    """Write a policy file atomically; `meta` (steps, eval return, seed ...) is kept verbatim."""
    atomic_torch_save({
        "format": POLICY_FORMAT, "env_id": env_id, "obs_dim": obs_dim, "act_dim": act_dim,
        "hidden": hidden, "depth": depth,
        "action_low": np.asarray(action_low, np.float32).tolist(),
        "action_high": np.asarray(action_high, np.float32).tolist(),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "meta": meta,
    }, path)


def load_policy(path: str | Path) -> tuple[GaussianPolicy, dict]:
    """Load a policy file -> (policy in eval mode, the file's dict without weights)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"policy file not found: {path}")
    check_torch_file(path)
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{path}: unreadable policy file ({brief(e)})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a policy file (top level is {type(d).__name__})")
    missing = [k for k in _KEYS if k not in d]
    if missing:
        raise DataError(f"{path}: policy file lacks key '{missing[0]}'")
    if d["format"] != POLICY_FORMAT:
        raise DataError(f"{path}: format {d['format']!r}, expected '{POLICY_FORMAT}'")
    for k in ("obs_dim", "act_dim", "hidden", "depth"):
        if isinstance(d[k], bool) or not isinstance(d[k], int) or d[k] < 1:
            raise DataError(f"{path}: '{k}' must be a positive integer, got {d[k]!r}")
    # the declared sizes must describe the stored weights before anything is built from them
    if not isinstance(d["state_dict"], dict) or len(d["state_dict"]) != 2 * (d["depth"] + 1):
        raise DataError(f"{path}: 'state_dict' does not hold the {d['depth'] + 1} linear layers "
                        f"that 'depth' = {d['depth']} declares")
    dims = [d["obs_dim"]] + [d["hidden"]] * d["depth"] + [2 * d["act_dim"]]
    shapes = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        shapes[f"{2 * i}.weight"], shapes[f"{2 * i}.bias"] = (b, a), (b,)
    state = check_state_dict(d["state_dict"], shapes, str(path))
    low = finite_array(d["action_low"], f"{path}: 'action_low'", (d["act_dim"],))
    high = finite_array(d["action_high"], f"{path}: 'action_high'", (d["act_dim"],))
    if not (low < high).all():
        raise DataError(f"{path}: 'action_low' must be below 'action_high'")
    pol = GaussianPolicy(d["obs_dim"], d["act_dim"], d["hidden"], d["depth"], low, high)
    pol.net.load_state_dict(state)
    pol.eval()
    info = {k: v for k, v in d.items() if k != "state_dict"}
    return pol, info
