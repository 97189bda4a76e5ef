"""The online recogniser: one small per-frame CNN per modality with TFEM inside, running
aggregation over frames, a classifier per time step per modality and the exit gate.

    x_rgb (B, T, 3, H, W), x_mot (B, T, Cm, G, G), detail (B, T, 1, G, G)
      -> FrameEncoder per modality: patchify stem, MSEM, [TLSM + residual conv] x 2 stages
      -> per-frame features f_t (B, T, D) -> running max (or mean) z_t = agg(f_1..f_t)
      -> per-step classifiers W_t z_t + b_t (FrameExit-style, one per step; steps past T reuse
         the last) -> logits (B, T, K) per modality
      -> gate f_Gate([z_t, z_t - z_{t-1}] of both modalities) -> exit logit (B, T)

`forward` runs a whole clip (batched, training); `init_state`/`step` run one frame at a time
with the shift buffers and the running aggregate (an online stream); both give the same output.
Weights are saved as safetensors + JSON (`save_model`/`load_model`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgeoar.config import ModelConfig
from edgeoar.tfem import PartitionSpatialEnhancement, TemporalLayeringShift
from shared.config import from_dict
from shared.errors import DataError
from shared.io import load_weights, save_weights
from shared.validate import check_finite_params, check_state_dict

__all__ = ["FrameEncoder", "OnlineRecognizer", "build_model", "save_model", "load_model",
           "count_macs", "MODEL_FILE"]

MODEL_FILE = "model.safetensors"
KIND = "edgeoar-recognizer"


class ShiftBlock(nn.Module):
    """TLSM then a residual 3x3 conv: y = x + relu(bn(conv(shift(x))))."""

    def __init__(self, c: int, cfg: ModelConfig):
        super().__init__()
        self.shift = TemporalLayeringShift(c, cfg.shift_div, tuple(cfg.shift_offsets))
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.bn(self.conv(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C, h, w)
        b, t = x.shape[:2]
        y = self.shift(x).flatten(0, 1)
        return self.body(y).view(b, t, *y.shape[1:])

    def step(self, x: torch.Tensor, state):  # (B, C, h, w)
        y, state = self.shift.step(x, state)
        return self.body(y), state


def _conv_bn(cin: int, cout: int, k: int, s: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, padding=(k - 1) // 2 if k % 2 else 0,
                                   bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FrameEncoder(nn.Module):
    """Per-frame CNN of one modality. in (N, Cin, S, S) with S = grid * stem -> (N, D)."""

    def __init__(self, in_ch: int, stem: int, cfg: ModelConfig, msem: bool):
        super().__init__()
        w1, w2, w3 = cfg.width, cfg.width * 4 // 3, cfg.width * 2
        self.stem = _conv_bn(in_ch, w1, stem if stem > 1 else 3, stem)
        self.msem = PartitionSpatialEnhancement(w1) if msem else None
        self.down1 = _conv_bn(w1, w2, 3, 2)
        self.block1 = ShiftBlock(w2, cfg)
        self.down2 = _conv_bn(w2, w3, 3, 2)
        self.block2 = ShiftBlock(w3, cfg)
        self.head = nn.Linear(w3, cfg.feat_dim)

    def _front(self, x: torch.Tensor, detail: torch.Tensor | None) -> torch.Tensor:
        y = self.stem(x)
        if self.msem is not None:
            y = self.msem(y, detail)
        return self.down1(y)

    def forward(self, x: torch.Tensor, detail: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, Cin, S, S), detail (B, T, 1, G, G) or None -> (B, T, D)."""
        b, t = x.shape[:2]
        d = detail.flatten(0, 1) if detail is not None else None
        y = self._front(x.flatten(0, 1), d)
        y = self.block1(y.view(b, t, *y.shape[1:])).flatten(0, 1)
        y = self.down2(y)
        y = self.block2(y.view(b, t, *y.shape[1:]))
        return self.head(y.mean((-2, -1)))

    def step(self, x: torch.Tensor, detail: torch.Tensor | None, state: list | None):
        """One frame: x (B, Cin, S, S) -> ((B, D), state)."""
        s1, s2 = state if state is not None else (None, None)
        y, s1 = self.block1.step(self._front(x, detail), s1)
        y, s2 = self.block2.step(self.down2(y), s2)
        return self.head(y.mean((-2, -1))), [s1, s2]


class StepClassifiers(nn.Module):
    """One linear classifier per time step, W_t = W + dW_t (a shared part every step trains and
    a per-step correction, zero at init): z (B, T, D) -> (B, T, K); steps >= T use the last."""

    def __init__(self, steps: int, dim: int, classes: int):
        super().__init__()
        self.shared = nn.Parameter(torch.randn(classes, dim) * dim ** -0.5)
        self.weight = nn.Parameter(torch.zeros(steps, classes, dim))
        self.bias = nn.Parameter(torch.zeros(steps, classes))

    def forward(self, z: torch.Tensor, t0: int = 0) -> torch.Tensor:
        n = self.weight.shape[0]
        idx = torch.clamp(torch.arange(t0, t0 + z.shape[1]), max=n - 1)
        w = self.shared.unsqueeze(0) + self.weight[idx]
        return torch.einsum("btd,tkd->btk", z, w) + self.bias[idx]


class Gate(nn.Module):
    """f_Gate: exit logit from [z_t, z_t - z_{t-1}] of every modality (FrameExit-style)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, z: torch.Tensor, z_prev: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, z - z_prev], -1)).squeeze(-1)


class OnlineRecognizer(nn.Module):
    """Two-modality online recogniser (RGB + motion). See the module docstring for shapes."""

    def __init__(self, cfg: ModelConfig, classes: int, steps: int, image_size: int, cell: int):
        super().__init__()
        self.cfg, self.classes, self.steps = cfg, classes, steps
        self.image_size, self.cell = image_size, cell
        msem = cfg.partition_guidance and cfg.motion_source == "codec"
        self.motion_channels = 2 if cfg.motion_source == "codec" else 1
        self.rgb = FrameEncoder(3, cell, cfg, msem)
        self.motion = FrameEncoder(self.motion_channels, 1, cfg, msem)
        self.heads = nn.ModuleDict({m: StepClassifiers(steps, cfg.feat_dim, classes)
                                    for m in ("rgb", "motion")})
        self.gate = Gate(4 * cfg.feat_dim, cfg.gate_hidden)
        self.register_buffer("rgb_mean", torch.tensor([0.45, 0.45, 0.45]).view(1, 1, 3, 1, 1))
        self.register_buffer("mot_scale", torch.tensor(0.25 if cfg.motion_source == "codec"
                                                       else 8.0))

    def _aggregate(self, f: torch.Tensor) -> torch.Tensor:
        if self.cfg.aggregation == "max":
            return torch.cummax(f, dim=1).values
        n = torch.arange(1, f.shape[1] + 1, device=f.device, dtype=f.dtype).view(1, -1, 1)
        return torch.cumsum(f, 1) / n

    def prepare(self, rgb: torch.Tensor, mot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, T, H, W, 3) and raw motion (B, T, Cm, G, G) -> normalised float inputs."""
        x = rgb.permute(0, 1, 4, 2, 3).float() / 255.0
        return x - self.rgb_mean, mot.float() * self.mot_scale

    def forward(self, rgb: torch.Tensor, mot: torch.Tensor, detail: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """rgb uint8 (B, T, H, W, 3), mot (B, T, Cm, G, G), detail (B, T, 1, G, G) ->
        {"rgb", "motion"}: logits (B, T, K); "gate": exit logits (B, T); "z": (B, T, 2D)."""
        x, m = self.prepare(rgb, mot)
        d = detail.float() if detail is not None and self.rgb.msem is not None else None
        z = torch.cat([self._aggregate(self.rgb(x, d)), self._aggregate(self.motion(m, d))], -1)
        return self._outputs(z, torch.cat([torch.zeros_like(z[:, :1]), z[:, :-1]], 1), 0)

    def _outputs(self, z: torch.Tensor, z_prev: torch.Tensor, t0: int) -> dict:
        dim = self.cfg.feat_dim
        return {"rgb": self.heads["rgb"](z[..., :dim], t0),
                "motion": self.heads["motion"](z[..., dim:], t0),
                "gate": self.gate(z, z_prev), "z": z}

    def init_state(self) -> dict:
        return {"t": 0, "rgb": None, "motion": None, "agg": None}

    def step(self, rgb: torch.Tensor, mot: torch.Tensor, detail: torch.Tensor | None,
             state: dict) -> tuple[dict, dict]:
        """One frame: rgb uint8 (B, H, W, 3), mot (B, Cm, G, G), detail (B, 1, G, G) ->
        (outputs with T = 1, new state)."""
        x, m = self.prepare(rgb[:, None], mot[:, None])
        d = detail.float() if detail is not None and self.rgb.msem is not None else None
        fr, s_rgb = self.rgb.step(x[:, 0], d, state["rgb"])
        fm, s_mot = self.motion.step(m[:, 0], d, state["motion"])
        f = torch.cat([fr, fm], -1)[:, None]
        t, agg = state["t"], state["agg"]
        if agg is None:
            z = f
        elif self.cfg.aggregation == "max":
            z = torch.maximum(agg, f)
        else:
            z = (agg * t + f) / (t + 1)
        prev = torch.zeros_like(z) if agg is None else agg
        out = self._outputs(z, prev, t)
        return out, {"t": t + 1, "rgb": s_rgb, "motion": s_mot, "agg": z}


def build_model(cfg: ModelConfig, classes: int, steps: int, image_size: int, cell: int
                ) -> OnlineRecognizer:
    return OnlineRecognizer(cfg, classes, steps, image_size, cell)


def save_model(model: OnlineRecognizer, path: str | Path, class_names: list[str],
               extra: dict | None = None) -> None:
    info = {"kind": KIND, "model": asdict(model.cfg), "classes": list(class_names),
            "steps": model.steps, "image_size": model.image_size, "cell": model.cell,
            **(extra or {})}
    save_weights(path, model.state_dict(), info)


def load_model(path: str | Path) -> tuple[OnlineRecognizer, dict]:
    """(model in eval mode, info) from `save_model`'s file; a foreign or corrupt file is a
    one-line DataError."""
    tensors, info = load_weights(path, KIND)
    try:
        cfg = from_dict(ModelConfig, info["model"])
        classes = info["classes"]
        steps, size, cell = int(info["steps"]), int(info["image_size"]), int(info["cell"])
        if not (isinstance(classes, list) and 1 <= len(classes) <= 10000
                and 1 <= steps <= 4096 and 16 <= size <= 4096 and cell in (4, 8, 16)):
            raise ValueError("sizes out of range")
    except Exception as e:
        raise DataError(f"{path}: bad model description ({e})") from None
    model = build_model(cfg, len(classes), steps, size, cell)
    check_state_dict(tensors, model, str(path))
    model.load_state_dict(tensors)
    check_finite_params(model, str(path))
    return model.eval(), info


def count_macs(model: OnlineRecognizer) -> dict[str, int]:
    """Multiply-accumulates of one streamed frame (convs and linears), per branch."""
    out = {"rgb": 0, "motion": 0, "heads": 0}

    def hook(branch):
        def f(mod, inp, outp):
            if isinstance(mod, nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
                out[branch] += int(outp.numel() // outp.shape[0] * k)
            elif isinstance(mod, nn.Linear):
                out[branch] += int(mod.in_features * mod.out_features)
        return f

    hs = []
    for branch, mod in (("rgb", model.rgb), ("motion", model.motion), ("heads", model.gate)):
        for sub in mod.modules():
            if isinstance(sub, (nn.Conv2d, nn.Linear)):
                hs.append(sub.register_forward_hook(hook(branch)))
    g = model.image_size // model.cell
    with torch.no_grad():
        model.step(torch.zeros(1, model.image_size, model.image_size, 3, dtype=torch.uint8),
                   torch.zeros(1, model.motion_channels, g, g), torch.zeros(1, 1, g, g),
                   model.init_state())
    for h in hs:
        h.remove()
    out["heads"] += 2 * model.classes * model.cfg.feat_dim
    out["total"] = out["rgb"] + out["motion"] + out["heads"]
    return out
