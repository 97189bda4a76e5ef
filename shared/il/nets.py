"""Small MLPs shared by the SAC expert trainer and the saved policies.

`EnsembleMLP` holds E independent MLPs in stacked weights so E agents (seeds) train in one
batched matmul per layer: input (E, B, in) -> output (E, B, out), `torch.baddbmm` per layer. A
member is exported to a plain `nn.Sequential` MLP (`member_state_dict`) for saving and rollouts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["EnsembleLinear", "EnsembleMLP", "mlp", "member_state_dict"]


class EnsembleLinear(nn.Module):
    """E independent `nn.Linear(in, out)` layers: (E, B, in) -> (E, B, out).

    Initialised like `nn.Linear` (uniform in +-1/sqrt(in) for weight and bias), member by member.
    """

    def __init__(self, members: int, n_in: int, n_out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(members, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, n_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """E MLPs n_in -> hidden -> hidden -> n_out with ReLU; (E, B, n_in) -> (E, B, n_out)."""

    def __init__(self, members: int, n_in: int, n_out: int, hidden: int = 256, depth: int = 2):
        super().__init__()
        dims = [n_in] + [hidden] * depth + [n_out]
        self.layers = nn.ModuleList(
            EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.members = members

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def mlp(n_in: int, n_out: int, hidden: int = 256, depth: int = 2) -> nn.Sequential:
    """Plain MLP n_in -> hidden^depth -> n_out with ReLU (the layout saved policies use)."""
    dims = [n_in] + [hidden] * depth + [n_out]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def member_state_dict(ens: EnsembleMLP, member: int) -> dict[str, torch.Tensor]:
    """State dict of member `member` in the layout of `mlp(...)` (Linear weights are (out, in))."""
    out = {}
    for i, layer in enumerate(ens.layers):
        out[f"{2 * i}.weight"] = layer.weight[member].detach().t().contiguous().cpu().clone()
        out[f"{2 * i}.bias"] = layer.bias[member, 0].detach().cpu().clone()
    return out
