"""Networks: the tanh-Gaussian BC policy and the clipped-sigmoid discriminators (ILID Sec. 5),
shared with other imitation packages through `shared.il.models`.

Shapes: B batch, S state, A action.
- `TanhGaussianPolicy`: s (B, S) -> mean, log_std (B, A); `log_prob(s, a) (B,)`; `act(s)` =
  tanh(mean) (deterministic evaluation, as in the paper's code).
- `Discriminator`: x (B, D) -> probability (B,) in [clip_lo, clip_hi] (the paper clips to
  [0.1, 0.9] "for a fair comparison with DWBC"); D = S for d(s), S + A for D(s, a).
"""

from shared.il.models import Discriminator, Normalizer, TanhGaussianPolicy
from shared.il.nets import mlp

__all__ = ["mlp", "TanhGaussianPolicy", "Discriminator", "Normalizer"]
