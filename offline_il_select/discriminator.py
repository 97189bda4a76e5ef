"""Discriminator training: expert (label 1) vs another set (label 0), ILID Sec. 5.1 / Eq. (7).

    max_d  E_pos[log d(x)] + E_neg[log(1 - d(x))]

The training loop is `shared.il.discriminator.train_discriminator` (shared with other imitation
packages); x is a state (B, S) for d(s) or a state-action pair (B, S + A) for D(s, a).
"""

from shared.il.discriminator import sample_rows, train_discriminator

__all__ = ["train_discriminator", "sample_rows"]
