"""Removal attacks on a stolen personalised model, and the uniqueness test (RobWE §5; the
threat model of the package README).

The attacker holds the victim's model (global body + private head) and `x, y`: a share of
the victim's own data (`attacker_indices`: 1%, 10% or 100% of its training set). Every attack
returns a new model (the input is never modified) and trains for a budget of SGD *steps*
(`train_steps`), so a smaller share of data means more passes over fewer samples, not less
compute. Strength axes (what the robustness curves sweep):

- `fine_tune_attack`: CE on the attacker's data, all parameters or the head only (steps);
- `prune_attack`: unstructured magnitude pruning of every weight tensor (rate in [0, 1), as
  `torch.nn.utils.prune.l1_unstructured` per layer); `prune_finetune_attack` then fine-tunes
  with the pruning mask held (rate);
- `reinit_head_attack`: a freshly initialised head retrained on the attacker's data, body
  frozen: the head watermark is gone by construction, the cost is accuracy (steps);
- `overwrite_attack`: embed the attacker's *own* fresh head and slice keys (at the victim's
  slice position) while training on CE (loss weight 1x-100x, lr);
- `noise_removal_attack`: key-agnostic; the attacker knows which weights carry the marks
  (the head and the victim's slice) but not the keys, and pulls them toward fresh noise of
  the same scale: CE + s * mean((c - noise)^2) / var(c0) (strength s);
- `distill_attack`: a freshly initialised student of the same architecture trained on the
  victim model's soft labels (temperature T) on the attacker's inputs (steps);
- `uniqueness_matrix`: every model's head against every client's head key: (N, N) bit
  accuracies, diagonal ~ 1, off-diagonal ~ 0.5 for independent keys.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F

from robwe.config import FLConfig
from robwe.fedrep import MomentumSGD, live_weight_vector, make_optimizer, slice_vector
from robwe.models import FedRepNet, head_vector
from robwe.watermark import WatermarkKey, watermark_loss

__all__ = ["attacker_indices", "train_steps", "fine_tune_attack", "magnitude_mask",
           "prune_attack", "prune_finetune_attack", "reinit_head_attack", "overwrite_attack",
           "noise_removal_attack", "distill_attack", "uniqueness_matrix", "ATTACKS"]

ATTACKS = ("finetune", "finetune_head", "prune_finetune", "reinit_head", "overwrite",
           "noise_removal", "distill")

OnStep = Callable[[int, FedRepNet], None]


def attacker_indices(idx: torch.Tensor, frac: float, gen: torch.Generator) -> torch.Tensor:
    """The attacker's share of the victim's training indices idx (n,): max(1, round(frac*n))
    of them, drawn without replacement."""
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"attacker data fraction must be in (0, 1], got {frac}")
    k = max(1, int(round(frac * len(idx))))
    return idx[torch.randperm(len(idx), generator=gen)[:k]]


def train_steps(loss_fn: Callable[[torch.Tensor], torch.Tensor], n: int, steps: int,
                batch_size: int, opt: MomentumSGD, gen: torch.Generator,
                after_step: Callable[[int], None] | None = None) -> None:
    """`steps` minibatch SGD steps over n samples, epoch after epoch (each a fresh permutation;
    a batch never spans two epochs). `loss_fn(idx)` takes a batch of indices (b,);
    `after_step(s)` runs after step s = 1..steps."""
    s = 0
    while s < steps:
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            if s == steps:
                break
            opt.zero_grad(set_to_none=True)
            loss_fn(perm[start:start + batch_size]).backward()
            opt.step()
            s += 1
            if after_step is not None:
                after_step(s)


def _train(model: FedRepNet, params: list[tuple[str, torch.nn.Parameter]],
           loss_fn: Callable[[torch.Tensor], torch.Tensor], n: int, steps: int, fl: FLConfig,
           gen: torch.Generator, on_step: OnStep | None = None,
           after_step: Callable[[], None] | None = None) -> FedRepNet:
    model.train()
    opt = make_optimizer(params, fl)

    def hook(s: int) -> None:
        if after_step is not None:
            after_step()
        if on_step is not None:
            on_step(s, model)

    train_steps(loss_fn, n, steps, fl.batch_size, opt, gen, hook)
    return model


def fine_tune_attack(model: FedRepNet, x: torch.Tensor, y: torch.Tensor, steps: int,
                     fl: FLConfig, gen: torch.Generator, head_only: bool = False,
                     on_step: OnStep | None = None) -> FedRepNet:
    """A copy of `model` fine-tuned with CE only on x: (n, C, H, W), y: (n,): all parameters,
    or the head only (`head_only`, body frozen). `on_step(s, model)` after each step."""
    model = copy.deepcopy(model)
    params = list(model.named_parameters())
    if head_only:
        params = [(n, p) for n, p in params if n.startswith("head.")]
    return _train(model, params, lambda b: F.cross_entropy(model(x[b]), y[b]), len(y), steps,
                  fl, gen, on_step)


def magnitude_mask(w: torch.Tensor, rate: float) -> torch.Tensor:
    """Boolean mask keeping all but the round(rate * numel) smallest-|w| entries of w."""
    k = int(round(rate * w.numel()))
    if k <= 0:
        return torch.ones_like(w, dtype=torch.bool)
    order = w.abs().reshape(-1).argsort()
    mask = torch.ones(w.numel(), dtype=torch.bool)
    mask[order[:k]] = False
    return mask.reshape(w.shape)


@torch.no_grad()
def prune_attack(model: FedRepNet, rate: float) -> FedRepNet:
    """A copy of `model` with each weight tensor (ndim > 1) magnitude-pruned at `rate`."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"pruning rate must be in [0, 1), got {rate}")
    model = copy.deepcopy(model)
    for p in model.parameters():
        if p.ndim > 1:
            p.mul_(magnitude_mask(p, rate))
    return model


def prune_finetune_attack(model: FedRepNet, x: torch.Tensor, y: torch.Tensor, rate: float,
                          steps: int, fl: FLConfig, gen: torch.Generator) -> FedRepNet:
    """Magnitude pruning at `rate`, then `steps` of CE fine-tuning of all parameters with the
    pruned entries held at zero (the mask is re-applied after every step)."""
    model = prune_attack(model, rate)
    masks = [(p, p != 0) for p in model.parameters() if p.ndim > 1]

    @torch.no_grad()
    def hold() -> None:
        for p, m in masks:
            p.mul_(m)

    return _train(model, list(model.named_parameters()),
                  lambda b: F.cross_entropy(model(x[b]), y[b]), len(y), steps, fl, gen,
                  after_step=hold)


def _seeded(gen: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=gen))


def reinit_head_attack(model: FedRepNet, x: torch.Tensor, y: torch.Tensor, steps: int,
                       fl: FLConfig, gen: torch.Generator,
                       on_step: OnStep | None = None) -> FedRepNet:
    """A copy of `model` whose head is re-initialised (PyTorch's Linear init, seeded from
    `gen`) and retrained with CE for `steps`, the body frozen. The result does not depend on
    the victim's head at all."""
    model = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seeded(gen))
        model.head.reset_parameters()
    params = [(n, p) for n, p in model.named_parameters() if n.startswith("head.")]
    return _train(model, params, lambda b: F.cross_entropy(model(x[b]), y[b]), len(y), steps,
                  fl, gen, on_step)


def overwrite_attack(model: FedRepNet, x: torch.Tensor, y: torch.Tensor,
                     head_key: WatermarkKey | None, slice_key: WatermarkKey | None,
                     names: list[str], steps: int, fl: FLConfig, scales: tuple[float, float],
                     gen: torch.Generator) -> FedRepNet:
    """A copy of `model` trained on (x, y) with CE + the attacker's own head and slice
    watermarks (`scales` = (head weight, slice weight); a None key is skipped): the
    overwriting attack. Its strength axes are the weights and `fl.lr`."""
    model = copy.deepcopy(model)

    def loss(b: torch.Tensor) -> torch.Tensor:
        out = F.cross_entropy(model(x[b]), y[b])
        if head_key is not None:
            out = out + scales[0] * watermark_loss(head_key, head_vector(model))
        if slice_key is not None:
            local = WatermarkKey(slice_key.matrix, slice_key.bits, 0)
            out = out + scales[1] * watermark_loss(local, slice_vector(model, names, slice_key))
        return out

    return _train(model, list(model.named_parameters()), loss, len(y), steps, fl, gen)


def noise_removal_attack(model: FedRepNet, x: torch.Tensor, y: torch.Tensor, names: list[str],
                         coords: tuple[int, int, int] | None, strength: float, steps: int,
                         fl: FLConfig, gen: torch.Generator,
                         targets: tuple[str, ...] = ("head", "slice")) -> FedRepNet:
    """Key-agnostic removal: CE + strength * sum_c mean((c - noise_c)^2) / var(c0) over the
    carriers c = the head vector and the victim's slice of y, `coords` = (offset, stride,
    length) (public in the scheme; None = all shared weights), each pulled toward fresh
    N(0, var(c0)) noise; `targets` picks the carriers ("head", "slice"). strength 0 is plain
    fine-tuning."""
    model = copy.deepcopy(model)
    if coords is None:
        coords = (0, 1, live_weight_vector(model, names).numel())
    offset, stride, length = coords
    fake = WatermarkKey(torch.empty(0, length), torch.empty(0), offset, stride)  # coords only

    if not targets or not set(targets) <= {"head", "slice"}:
        raise ValueError(f"targets must be a non-empty subset of (head, slice), got {targets}")

    def carriers() -> list[torch.Tensor]:
        return ([head_vector(model)] if "head" in targets else []) + (
            [slice_vector(model, names, fake)] if "slice" in targets else [])

    with torch.no_grad():
        init = [c.detach().clone() for c in carriers()]
    scale = [float(c.var()) + 1e-12 for c in init]
    noise = [torch.randn(c.shape, generator=gen) * s ** 0.5
             for c, s in zip(init, scale)] if strength else []

    def loss(b: torch.Tensor) -> torch.Tensor:
        out = F.cross_entropy(model(x[b]), y[b])
        if strength:
            for c, n, s in zip(carriers(), noise, scale):
                out = out + strength * ((c - n) ** 2).mean() / s
        return out

    return _train(model, list(model.named_parameters()), loss, len(y), steps, fl, gen)


def distill_attack(model: FedRepNet, x: torch.Tensor, steps: int, fl: FLConfig,
                   gen: torch.Generator, temperature: float = 2.0,
                   on_step: OnStep | None = None) -> FedRepNet:
    """A freshly initialised student (same architecture, seeded from `gen`) trained to match
    the victim model's softened outputs on the attacker's inputs x (labels unused):
    T^2 * KL(softmax(teacher / T) || softmax(student / T))."""
    teacher = copy.deepcopy(model).eval()
    student = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seeded(gen))
        for m in student.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    with torch.no_grad():
        soft = F.softmax(teacher(x) / temperature, 1)  # (n, classes)

    def loss(b: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(student(x[b]) / temperature, 1)
        return temperature ** 2 * F.kl_div(logp, soft[b], reduction="batchmean")

    return _train(student, list(student.named_parameters()), loss, len(x), steps, fl, gen,
                  on_step)


def uniqueness_matrix(head_vectors: torch.Tensor, keys: list[WatermarkKey]) -> torch.Tensor:
    """U[i, j] = bit accuracy of model i's head under client j's key.

    head_vectors: (N, P) stacked theta_head; keys: N head keys with matrices (m, P).
    """
    mats = torch.stack([k.matrix for k in keys])  # (N, m, P)
    bits = torch.stack([k.bits for k in keys])  # (N, m)
    proj = torch.einsum("ip,jmp->ijm", head_vectors, mats)  # (N, N, m)
    return (torch.sign(proj) == bits[None]).float().mean(-1)
