"""Server-side detection of tampered watermarks (RobWE §2.4, `check_confidence_interval`).

The server keeps every client's true slice key. For each upload it computes a_i, the slice
bit accuracy under the true key, and compares it with the *cohort*: the accuracies other
non-banned clients reached after the same number of participations (so early, half-embedded
uploads are compared with early ones):

- normal mode: fit N(mu, sigma) to the cohort; accept iff a_i >= mu + sigma * Phi^-1((1-c)/2)
  (c = 0.997: about mu - 2.97 sigma);
- bad mode (once `bad_nums` uploads have been flagged): also fit N(mu_b, sigma_b) to the flagged
  accuracies and reject when a_i < mu_b + sigma_b * Phi^-1((1+c_b)/2);
- fewer than `min_cohort` members: accept untested.

A flagged upload is dropped and its client banned. `estimator="gaussian"` is the paper's
mean/std fit; `"robust"` (our default) fits the median and 1.4826*MAD, with sigma floored at
`min_std`: forgers inside the cohort inflate a mean/std fit enough to pass (a deviation, see
the README).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

__all__ = ["WatermarkDetector", "fit_normal", "Decision"]


def fit_normal(values: np.ndarray, estimator: str = "gaussian",
               min_std: float = 0.0) -> tuple[float, float]:
    """(mu, sigma) of `values` (n,): mean/std (ddof=0) or median/1.4826*MAD; sigma >= min_std."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("fit_normal of an empty cohort")
    if estimator == "gaussian":
        mu, sigma = float(v.mean()), float(v.std())
    elif estimator == "robust":
        mu = float(np.median(v))
        sigma = 1.4826 * float(np.median(np.abs(v - mu)))
    else:
        raise ValueError(f"unknown estimator '{estimator}' (gaussian or robust)")
    return mu, max(sigma, min_std)


@dataclass
class Decision:
    client: int
    accuracy: float
    accepted: bool
    bound: float | None  # the threshold it was held to (None: untested)
    mode: str  # "untested", "normal" or "bad"


@dataclass
class WatermarkDetector:
    confidence: float = 0.997
    confidence_bad: float = 0.5
    bad_nums: int = 7
    min_cohort: int = 3
    estimator: str = "robust"
    min_std: float = 0.02
    participations: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    # accuracies of accepted uploads: participation index -> {client: accuracy}
    history: dict[int, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    flagged: dict[int, float] = field(default_factory=dict)  # client -> accuracy when flagged

    def normal_bound(self, cohort: np.ndarray) -> float:
        mu, sigma = fit_normal(cohort, self.estimator, self.min_std)
        return mu + sigma * float(norm.ppf((1 - self.confidence) / 2))

    def bad_bound(self) -> float:
        mu, sigma = fit_normal(np.array(list(self.flagged.values())), "gaussian")
        return mu + sigma * float(norm.ppf((1 + self.confidence_bad) / 2))

    def check(self, accuracies: dict[int, float]) -> list[Decision]:
        """Decide on one round's uploads {client: slice accuracy}; update the state."""
        index = {c: self.participations[c] + 1 for c in accuracies}
        decisions = []
        for c in sorted(accuracies):
            n, a = index[c], accuracies[c]
            cohort = [v for o, v in self.history[n].items() if o != c and o not in self.flagged]
            cohort += [accuracies[o] for o in accuracies if o != c and index[o] == n
                       and o not in self.history[n]]
            if len(cohort) < self.min_cohort:
                decisions.append(Decision(c, a, True, None, "untested"))
                continue
            bound = self.normal_bound(np.array(cohort))
            ok, mode = a >= bound, "normal"
            if ok and len(self.flagged) >= self.bad_nums:
                bad = self.bad_bound()
                ok, mode = a >= bad, "bad"
                bound = max(bound, bad)
            decisions.append(Decision(c, a, bool(ok), bound, mode))
        for d in decisions:
            self.participations[d.client] += 1
            if d.accepted:
                self.history[index[d.client]][d.client] = d.accuracy
            else:
                self.flagged[d.client] = d.accuracy
        return decisions

    def state_dict(self) -> dict:
        return {"participations": dict(self.participations),
                "history": {n: dict(h) for n, h in self.history.items()},
                "flagged": dict(self.flagged)}

    def load_state_dict(self, d: dict) -> None:
        self.participations = defaultdict(int, d["participations"])
        self.history = defaultdict(dict, {int(n): dict(h) for n, h in d["history"].items()})
        self.flagged = dict(d["flagged"])
