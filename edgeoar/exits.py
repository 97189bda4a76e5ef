"""Exit decisions: IIE fusion, modality consistency (MC) and the baseline exit policies.

IIE + MC (EdgeOAR sec. 3; the formulas are our reconstruction, the paper's are not public):

    H_m = -sum_c p_mc log p_mc                   entropy of modality m's softmax (nats)
    w_m = (1 / H_m) / sum_k (1 / H_k)            inverse-information-entropy weights
    p   = sum_m w_m p_m                          fused class distribution
    MC  = 1 - JS(p_rgb, p_motion) / log 2        in [0, 1]; 1 = identical distributions
    exit at t  iff  max_c p_c >= tau_conf  and  MC >= tau_mc      (tau_mc = 0: IIE alone)

Baselines on the same per-step outputs (the plain mean of the two modalities' softmaxes):
fixed-N frames, max-softmax >= tau, normalised entropy <= tau, the learned gate's
sigmoid >= tau (FrameExit), random exit (exit each frame with probability q, TLEE) and the full
clip. Every policy exits at the last frame at the latest. Thresholds are chosen on the
validation split (`select`) by an `OperatingRule`: by default the fewest frames whose accuracy
stays within `tolerance` of the full-clip model's; the other rules keep a margin from that edge
(spend a frame budget, take the centre of the feasible region, or hold the accuracy bar for a
lower confidence bound of the paired accuracy difference).

Arrays: per-step probabilities (N, T, K); a policy's condition (N, T) bool; exits (N,) int
(0-based frame index of the decision).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["entropy", "iie_fuse", "modality_consistency", "softmax", "step_scores",
           "first_exit", "POLICIES", "apply_policy", "summarise", "threshold_grid", "select",
           "curve", "auc", "mc_effect", "compare_policies", "ExitRule", "fit_temperature",
           "oracle_exits", "frame_floor", "OperatingRule", "RULES", "as_rule", "paired_drop_se",
           "choose_point"]

EPS = 1e-8


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) over the last axis."""
    p = np.clip(p, EPS, 1.0)
    return -(p * np.log(p)).sum(-1)


def iie_fuse(probs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-information-entropy fusion: probs M x (..., K) -> (fused (..., K), w (..., M))."""
    inv = np.stack([1.0 / np.maximum(entropy(p), EPS) for p in probs], -1)
    w = inv / inv.sum(-1, keepdims=True)
    fused = sum(w[..., m:m + 1] * p for m, p in enumerate(probs))
    return fused, w


def modality_consistency(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """1 - Jensen-Shannon divergence / log 2, over the last axis: 1 identical, 0 disjoint."""
    m = 0.5 * (p + q)
    p_, q_, m_ = (np.clip(a, EPS, 1.0) for a in (p, q, m))
    js = 0.5 * (p * (np.log(p_) - np.log(m_))).sum(-1) + \
        0.5 * (q * (np.log(q_) - np.log(m_))).sum(-1)
    return np.clip(1.0 - js / np.log(2.0), 0.0, 1.0)


def step_scores(rgb_logits: np.ndarray, mot_logits: np.ndarray, gate_logits: np.ndarray
                ) -> dict[str, np.ndarray]:
    """Every quantity a policy reads, from the model's per-step outputs (N, T, K) / (N, T)."""
    pr, pm = softmax(rgb_logits), softmax(mot_logits)
    fused, w = iie_fuse([pr, pm])
    k = pr.shape[-1]
    mean = 0.5 * (pr + pm)
    return {"p_rgb": pr, "p_mot": pm, "p_mean": mean, "p_iie": fused, "w_iie": w,
            "mc": modality_consistency(pr, pm), "agree": pr.argmax(-1) == pm.argmax(-1),
            "h_mean": entropy(mean) / np.log(k), "gate": 1.0 / (1.0 + np.exp(-gate_logits))}


def first_exit(cond: np.ndarray) -> np.ndarray:
    """(N, T) bool -> first True index per row; T - 1 where none (the clip ends)."""
    t = cond.shape[1]
    c = cond.copy()
    c[:, -1] = True
    return np.argmax(c, axis=1) if t else np.zeros(len(cond), int)


def fit_temperature(logits: np.ndarray, labels: np.ndarray,
                    grid: np.ndarray | None = None) -> np.ndarray:
    """Per-step temperature scaling fitted on a validation split: for each step t the T_t of
    `grid` (log-spaced 0.05..20) minimising the NLL of softmax(logits[:, t] / T_t).
    logits (N, T, K), labels (N,) -> temperatures (T,). Divide the logits by them before the
    softmax (`logits / temps[None, :, None]`); T_t = 1 leaves step t as it is."""
    if grid is None:
        grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))
    n = np.arange(len(labels))
    out = np.empty(logits.shape[1])
    for t in range(logits.shape[1]):
        nll = [-np.log(np.clip(softmax(logits[:, t] / g)[n, labels], 1e-12, 1.0)).mean()
               for g in grid]
        out[t] = grid[int(np.argmin(nll))]
    return out


def oracle_exits(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The best any exit rule on these outputs can do: each clip exits at the first step from
    which its prediction is right and stays right to the end (clips never right for good exit
    at the last step). probs (N, T, K) -> exit index (N,)."""
    ok = probs.argmax(-1) == labels[:, None]
    stay = np.flip(np.cumprod(np.flip(ok, 1), 1), 1).astype(bool)
    return np.where(stay.any(1), stay.argmax(1), ok.shape[1] - 1)


def frame_floor(probs: np.ndarray, labels: np.ndarray, acc: float) -> float:
    """The fewest mean frames ANY exit assignment on these outputs needs for accuracy >= acc:
    a clip is right only if it exits at a step where its prediction is right, at the earliest
    its first right step; so the cheapest ceil(acc N) clips by first right step are made
    right and every other clip exits at frame 1. A strict floor (`oracle_exits`, which waits
    until a clip stays right, is not one). probs (N, T, K) -> mean frames."""
    ok = probs.argmax(-1) == labels[:, None]
    n = len(labels)
    need = int(np.ceil(acc * n - 1e-9))
    first = np.where(ok.any(1), ok.argmax(1) + 1, np.inf)
    cheap = np.sort(first)[:need]
    if need and not np.isfinite(cheap[-1]):
        return float("nan")  # fewer than `need` clips are ever right
    return float((cheap.sum() + (n - need)) / n)


def _random_cond(s: dict, q: float, seed: int = 0) -> np.ndarray:
    n, t = s["gate"].shape
    return np.random.default_rng(seed).random((n, t)) < q


# name -> (condition(scores, param) -> (N, T) bool, probabilities the prediction is read from)
POLICIES: dict[str, tuple[Callable, str]] = {
    "fixed_n": (lambda s, n: np.broadcast_to(np.arange(s["gate"].shape[1]) >= int(n) - 1,
                                             s["gate"].shape), "p_mean"),
    "max_softmax": (lambda s, tau: s["p_mean"].max(-1) >= tau, "p_mean"),
    "entropy": (lambda s, tau: s["h_mean"] <= tau, "p_mean"),
    "gate": (lambda s, tau: s["gate"] >= tau, "p_mean"),
    "random": (lambda s, q: _random_cond(s, q), "p_mean"),
    "iie": (lambda s, tau: s["p_iie"].max(-1) >= tau, "p_iie"),
    "iie_mc": (lambda s, th: (s["p_iie"].max(-1) >= th[0]) & (s["mc"] >= th[1]), "p_iie"),
    "full_clip": (lambda s, _: np.zeros(s["gate"].shape, bool), "p_iie"),
}


def apply_policy(name: str, s: dict, param) -> tuple[np.ndarray, np.ndarray]:
    """-> (exit index (N,), predicted class at the exit (N,))."""
    cond_fn, source = POLICIES[name]
    ex = first_exit(np.asarray(cond_fn(s, param)))
    pred = s[source][np.arange(len(ex)), ex].argmax(-1)
    return ex, pred


def summarise(ex: np.ndarray, pred: np.ndarray, labels: np.ndarray, steps: int) -> dict:
    """Accuracy, mean frames seen, their fraction of the clip and the wrong-early-exit rate
    (exits before the last frame with a wrong label, over all clips)."""
    frames = ex + 1
    wrong = pred != labels
    return {"acc": float(np.mean(~wrong)), "frames": float(frames.mean()),
            "frac": float(frames.mean() / steps),
            "wrong_early": float(np.mean(wrong & (ex < steps - 1)))}


def threshold_grid(name: str, steps: int, n: int, mc_grid: list[float]) -> list:
    """The parameters a policy is swept over."""
    if name == "fixed_n":
        return list(range(1, steps + 1))
    if name == "full_clip":
        return [None]
    base = np.unique(np.concatenate([np.linspace(0, 1, n), 1 - np.logspace(-1, -4, 10)]))
    if name == "entropy":
        base = np.unique(np.concatenate([np.linspace(0, 1, n), np.logspace(-4, -1, 10)]))
    if name == "random":
        base = np.unique(np.concatenate([np.linspace(0.01, 1, n), [0.0]]))
    if name == "iie_mc":
        return [(float(a), float(b)) for a in base for b in mc_grid]
    return [float(a) for a in base]


RULES = ("fewest_frames", "budget", "centre", "lower_bound")


@dataclass(frozen=True)
class OperatingRule:
    """How `select` picks a policy's parameter on the validation split (the operating point).

    Every rule reads, per candidate parameter, the validation accuracy `acc`, the mean frame
    fraction `frac` and the standard error `se` of the paired per-clip accuracy difference to
    the full clip (`paired_drop_se`); `ref` is the full clip's accuracy. A point is
    *accurate* when acc >= ref - tolerance.
    * fewest_frames: the accurate point with the fewest frames (ties: higher accuracy); it sits
      on the edge of the accuracy bar;
    * budget: the most accurate accurate point with frac <= `budget` (ties: fewer frames):
      spends the frame budget on accuracy margin;
    * centre: among the accurate points with frac <= `budget`, the one maximising
      min(a / a_max, f / f_max), a = acc - (ref - tolerance) and f = budget - frac the two
      slacks, each divided by its largest value over those points (the centre of the
      feasible region; ties: fewer frames);
    * lower_bound: the fewest frames whose one-sided lower confidence bound of the accuracy
      difference, (acc - ref) - z se, is >= -tolerance (ties: higher accuracy).
    budget / centre with no point inside the budget fall back to fewest_frames; every rule
    with no qualifying point takes the most accurate one (ties: fewer frames)."""

    kind: str = "fewest_frames"
    tolerance: float = 0.02
    budget: float = 0.34
    z: float = 1.645

    def __post_init__(self):
        if self.kind not in RULES:
            raise ValueError(f"unknown operating rule {self.kind!r} (known: {', '.join(RULES)})")


def paired_drop_se(correct: np.ndarray, correct_ref: np.ndarray) -> float:
    """Standard error of the mean of d_i = correct_i - correct_ref_i (per-clip 0/1
    correctness of a policy and of the full clip on the same clips): sd(d, ddof=1) / sqrt(n);
    0 for fewer than two clips."""
    d = np.asarray(correct, np.float64) - np.asarray(correct_ref, np.float64)
    return float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0


def choose_point(rows: list[tuple], ref_acc: float, rule: OperatingRule) -> tuple:
    """`rule` over candidate rows (param, summary with 'acc' and 'frac', se) -> the row."""
    eps = 1e-12
    bar = ref_acc - rule.tolerance
    most_accurate = max(rows, key=lambda r: (r[1]["acc"], -r[1]["frac"]))
    if rule.kind == "lower_bound":
        ok = [r for r in rows if r[1]["acc"] - rule.z * r[2] >= bar - eps]
        return min(ok, key=lambda r: (r[1]["frac"], -r[1]["acc"])) if ok else most_accurate
    ok = [r for r in rows if r[1]["acc"] >= bar - eps]
    if not ok:
        return most_accurate
    fewest = min(ok, key=lambda r: (r[1]["frac"], -r[1]["acc"]))
    inside = [r for r in ok if r[1]["frac"] <= rule.budget + eps]
    if rule.kind == "fewest_frames" or not inside:
        return fewest
    if rule.kind == "budget":
        return max(inside, key=lambda r: (r[1]["acc"], -r[1]["frac"]))
    a = np.array([r[1]["acc"] - bar for r in inside])
    f = np.array([rule.budget - r[1]["frac"] for r in inside])
    score = np.minimum(a / a.max() if a.max() > eps else np.ones_like(a),
                       f / f.max() if f.max() > eps else np.ones_like(f))
    return max(zip(score, inside), key=lambda x: (x[0], -x[1][1]["frac"]))[1]


def as_rule(rule: float | OperatingRule) -> OperatingRule:
    """A bare tolerance is the fewest_frames rule at that tolerance."""
    return rule if isinstance(rule, OperatingRule) else OperatingRule(tolerance=float(rule))


def select(name: str, s: dict, labels: np.ndarray, grid: list, ref_acc: float,
           rule: float | OperatingRule):
    """The parameter `rule` chooses on these (validation) scores; a float is the tolerance of
    the default rule (the fewest mean frames whose accuracy >= ref_acc - tolerance, ties:
    higher accuracy; none qualifies -> the most accurate). -> (param, its summary)."""
    rule = as_rule(rule)
    steps = s["gate"].shape[1]
    ok_ref = apply_policy("full_clip", s, None)[1] == labels
    rows = []
    for p in grid:
        ex, pred = apply_policy(name, s, p)
        se = paired_drop_se(pred == labels, ok_ref) if rule.kind == "lower_bound" else 0.0
        rows.append((p, summarise(ex, pred, labels, steps), se))
    param, summary, _ = choose_point(rows, ref_acc, rule)
    return param, summary


def curve(name: str, s: dict, labels: np.ndarray, grid: list) -> np.ndarray:
    """(n, 3) [frame fraction, accuracy, wrong-early rate] over the grid, sorted by fraction."""
    steps = s["gate"].shape[1]
    pts = [(m["frac"], m["acc"], m["wrong_early"]) for m in
           (summarise(*apply_policy(name, s, p), labels, steps) for p in grid)]
    return np.array(sorted(pts))


def mc_effect(val: dict, val_labels: np.ndarray, test: dict, labels: np.ndarray,
              conf_grid: int, mc_grid: list[float], rule: float | OperatingRule = 0.01) -> dict:
    """What MC adds to IIE: IIE's confidence threshold (chosen on validation) with the MC gate
    switched on, tau_mc > 0 chosen on validation for the best accuracy (ties: fewer frames),
    vs IIE alone, on the test set. -> thresholds, wrong-early rates, accuracies, frame
    fractions and the relative cut of wrong early exits. Equal frames: IIE alone with the
    smallest tau_conf whose validation frames reach IIE + MC's ("*_eq" keys; `cut_eq` is MC's
    cut of wrong early exits against it): does MC pick better moments, or only wait longer?"""
    steps = val["gate"].shape[1]
    ref = summarise(*apply_policy("full_clip", val, None), val_labels, steps)["acc"]
    tau, _ = select("iie", val, val_labels, threshold_grid("iie", steps, conf_grid, mc_grid),
                    ref, rule)
    cands = [(tau, m) for m in mc_grid if m > 0] or [(tau, 0.0)]
    vals = [(p, summarise(*apply_policy("iie_mc", val, p), val_labels, steps)) for p in cands]
    param = max(vals, key=lambda r: (r[1]["acc"], -r[1]["frames"]))[0]
    off = summarise(*apply_policy("iie", test, tau), labels, steps)
    on = summarise(*apply_policy("iie_mc", test, param), labels, steps)
    on_val = summarise(*apply_policy("iie_mc", val, param), val_labels, steps)
    iie_rows = [(g, summarise(*apply_policy("iie", val, g), val_labels, steps))
                for g in threshold_grid("iie", steps, conf_grid, mc_grid)]
    reach = [r for r in iie_rows if r[1]["frames"] >= on_val["frames"] - 1e-9]
    tau_eq = min(reach, key=lambda r: (r[1]["frames"], r[0]))[0] if reach else 1.0
    eq = summarise(*apply_policy("iie", test, tau_eq), labels, steps)
    return {"param": param, "tau_eq": tau_eq, "wrong_early_eq": eq["wrong_early"],
            "acc_eq": eq["acc"], "frac_eq": eq["frac"],
            "cut_eq": 1 - on["wrong_early"] / eq["wrong_early"] if eq["wrong_early"] > 0
            else float("nan"),
            "wrong_early_iie": off["wrong_early"],
            "wrong_early_mc": on["wrong_early"], "acc_iie": off["acc"], "acc_mc": on["acc"],
            "frac_iie": off["frac"], "frac_mc": on["frac"],
            "cut": 1 - on["wrong_early"] / off["wrong_early"] if off["wrong_early"] > 0
            else float("nan")}


def auc(points: np.ndarray, steps: int) -> float:
    """Area under the accuracy-vs-frames curve over frame fractions [1/T, 1], normalised to
    [0, 1]: at budget b the accuracy is the best of the points with fraction <= b (a step
    function: an operating point is usable for every larger budget)."""
    lo = 1.0 / steps
    b = np.linspace(lo, 1.0, 200)
    best = np.array([points[points[:, 0] <= x + 1e-9, 1].max(initial=0.0) for x in b])  # acc
    return float(np.trapezoid(best, b) / (1.0 - lo))


class ExitRule:
    """The IIE + MC rule for one stream, frame by frame: `update(rgb_logits, mot_logits)`
    (K,) each -> (label, confidence, exited). Once exited, the decision is kept."""

    def __init__(self, tau_conf: float, tau_mc: float, max_frames: int | None = None):
        self.tau_conf, self.tau_mc, self.max_frames = tau_conf, tau_mc, max_frames
        self.t, self.decision = 0, None

    def update(self, rgb_logits: np.ndarray, mot_logits: np.ndarray
               ) -> tuple[int, float, bool]:
        if self.decision is not None:
            return (*self.decision, True)
        self.t += 1
        pr, pm = softmax(np.asarray(rgb_logits, np.float64)), softmax(
            np.asarray(mot_logits, np.float64))
        p, _ = iie_fuse([pr, pm])
        label, conf = int(p.argmax()), float(p.max())
        ok = conf >= self.tau_conf and float(modality_consistency(pr, pm)) >= self.tau_mc
        if ok or (self.max_frames is not None and self.t >= self.max_frames):
            self.decision = (label, conf)
            return label, conf, True
        return label, conf, False


BASELINES = ("fixed_n", "max_softmax", "entropy", "gate", "random", "iie", "iie_mc",
             "full_clip")


def compare_policies(val: dict, val_labels: np.ndarray, tests: dict[str, tuple[dict, np.ndarray]],
                     rule: float | OperatingRule, conf_grid: int, mc_grid: list[float],
                     policies: tuple[str, ...] = BASELINES) -> dict:
    """Choose every policy's threshold on the validation scores, apply it to each test set.

    val: `step_scores` of the validation split; tests: {name: (scores, labels)}; rule: the
    `OperatingRule` (a float: the fewest-frames rule at that tolerance). The reference
    accuracy is the full-clip model's on validation. The accuracy-vs-frames curve of a policy
    sweeps its parameter (for IIE + MC: tau_conf, with tau_mc fixed at its chosen value).
    -> {policy: {"param", "val": summary, test name: summary + exits + preds + curve + auc}}."""
    steps = val["gate"].shape[1]
    ref = summarise(*apply_policy("full_clip", val, None), val_labels, steps)["acc"]
    out = {}
    for name in policies:
        grid = threshold_grid(name, steps, conf_grid, mc_grid)
        param, vsum = select(name, val, val_labels, grid, ref, rule)
        sweep = grid
        if name == "iie_mc":
            sweep = [(a, param[1]) for a in sorted({g[0] for g in grid})]
        res = {"param": param, "val": vsum}
        for tname, (s, labels) in tests.items():
            ex, pred = apply_policy(name, s, param)
            pts = curve(name, s, labels, sweep)
            res[tname] = {**summarise(ex, pred, labels, steps), "exits": ex, "pred": pred,
                          "curve": pts, "auc": auc(pts, steps)}
        out[name] = res
    return out
