"""Weight-space ensembling of the base and the fine-tuned ShotVL (WiSE-FT: Wortsman et al.,
*Robust fine-tuning of zero-shot models*, CVPR 2022, eq. 1), so that fine-tuning on pose and
stage text keeps the base model's visual-content retrieval out of distribution (BestShot claims
general retrieval is retained after fine-tuning).

- `weight_average(base, finetuned, alpha)`: theta = (1 - alpha) theta_base + alpha theta_ft,
  parameter by parameter (both models share one architecture; the fine-tuned one started from
  the base weights, so the straight line between them stays in one loss basin).
- `select_alpha(curve, base_retention, tolerance)`: the mixing coefficient chosen on
  validation figures only, {alpha: {"hit1", "retention_r1"}} -> among the alphas whose
  retention R@1 is at most `tolerance` below the base model's, the one with the highest hit1
  (ties go to the smaller alpha, closer to the base model); alpha = 0 is the base itself, so
  some alpha always qualifies when the grid holds 0. Reconstructed rule: WiSE-FT picks alpha
  on held-out validation data too; the constraint is the retention budget BestShot's claim
  ("general retrieval retained") sets.
"""

from __future__ import annotations

import copy

import torch

from bestshot.models import ShotVL

__all__ = ["weight_average", "select_alpha"]


def weight_average(base: ShotVL, finetuned: ShotVL, alpha: float) -> ShotVL:
    """A new ShotVL with every float parameter and buffer (1 - alpha) base + alpha finetuned;
    alpha = 0 gives the base, alpha = 1 the fine-tuned model."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if base.cfg != finetuned.cfg:
        raise ValueError("weight_average needs two models of one ModelConfig")
    sa, sb = base.state_dict(), finetuned.state_dict()
    if sa.keys() != sb.keys():
        raise ValueError("weight_average: the two models' parameters differ")
    out = copy.deepcopy(finetuned)
    mixed = {k: torch.lerp(sa[k], sb[k], alpha) if sa[k].is_floating_point() else sb[k]
             for k in sb}
    out.load_state_dict(mixed)
    return out.eval()


def select_alpha(curve: dict[float, dict[str, float]], base_retention: float,
                 tolerance: float = 0.02) -> float:
    """The alpha of `curve` ({alpha: {"hit1", "retention_r1"}}, validation figures) with the
    highest hit1 among those with retention_r1 >= base_retention - tolerance; ties -> the
    smaller alpha. No alpha within the budget -> the one with the highest retention_r1."""
    if not curve:
        raise ValueError("select_alpha: empty curve")
    ok = [a for a in sorted(curve) if curve[a]["retention_r1"] >= base_retention - tolerance]
    if not ok:
        return max(sorted(curve), key=lambda a: (curve[a]["retention_r1"], -a))
    return max(ok, key=lambda a: (curve[a]["hit1"], -a))
