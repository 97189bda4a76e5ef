"""FedRep networks: a shared body (the representation, averaged by the server) and a private
linear head per client (Collins et al., ICML 2021; RobWE §2.1 keeps this convention).

    x (B, C, H, W) -> body -> (B, d) -> head -> (B, num_classes)

`shared_weight_vector` is RobWE's representation vector y (§2.3): the shared *weight* tensors
(biases excluded) flattened and concatenated in module order, length P.
"""

from __future__ import annotations

import torch
from torch import nn

from robwe.config import ModelConfig

__all__ = ["FedRepNet", "build_model", "shared_weight_vector", "head_vector"]


class FedRepNet(nn.Module):
    def __init__(self, body: nn.Module, feat_dim: int, num_classes: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(feat_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def shared_state(self) -> dict[str, torch.Tensor]:
        """The parameters the server aggregates (body.*), detached copies."""
        return {k: v.detach().clone() for k, v in self.state_dict().items()
                if k.startswith("body.")}

    def head_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.state_dict().items()
                if k.startswith("head.")}

    def shared_weight_names(self, carrier: str = "all") -> list[str]:
        """Names of the shared weight tensors (ndim > 1) that make up y, in order: all of
        them, or (carrier="last") only the last one, the layer that feeds the head."""
        names = [k for k, p in self.named_parameters() if k.startswith("body.") and p.ndim > 1]
        return names[-1:] if carrier == "last" else names


def build_model(cfg: ModelConfig, in_shape: tuple[int, int, int], num_classes: int) -> FedRepNet:
    """An MLP or small CNN body for images of shape `in_shape` = (C, H, W)."""
    c, h, w = in_shape
    if cfg.kind == "mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        width = c * h * w
        for hidden in cfg.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        return FedRepNet(nn.Sequential(*layers), width, num_classes)
    layers = []
    ch = c
    for out in cfg.channels:
        layers += [nn.Conv2d(ch, out, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
        ch, h, w = out, h // 2, w // 2
    if h < 1 or w < 1:
        raise ValueError(f"{len(cfg.channels)} pooling stages are too many for {in_shape}")
    layers += [nn.Flatten(), nn.Linear(ch * h * w, cfg.cnn_fc), nn.ReLU()]
    return FedRepNet(nn.Sequential(*layers), cfg.cnn_fc, num_classes)


def shared_weight_vector(state: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    """y: the named weight tensors of `state` flattened and concatenated, (P,)."""
    return torch.cat([state[n].reshape(-1) for n in names])


def head_vector(model: FedRepNet) -> torch.Tensor:
    """theta_head: head weight then bias, flattened, (num_classes * (d + 1),)."""
    return torch.cat([model.head.weight.reshape(-1), model.head.bias.reshape(-1)])
