"""Frame captions and queries: pose text (posecodes), action-stage text, visual-content text, a
noisy paraphrase corpus standing in for the paper's LLM-written frame descriptions (ShotGPT4o),
and furthest-point sampling over pose vectors (the paper balances Image-SMPLText this way).

A BestShot query names up to three things (paper sec. 3): the visual content, the fine-grained
action stage and the human pose. `compose` joins them with a template; the templates are split
into `TRAIN_TEMPLATES` (captions the model is trained on) and `HELDOUT_TEMPLATES` (phrasings
used only for out-of-distribution queries). All templates and word lists are ours.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["TRAIN_TEMPLATES", "HELDOUT_TEMPLATES", "STAGE_TEMPLATES", "action_phrase",
           "stage_phrase", "visual_text", "compose", "paraphrase", "furthest_point_sampling"]

# {visual}: who and where; {stage}: action and stage; {pose}: posecode sentence(s)
TRAIN_TEMPLATES = (
    "{visual}. {stage}. {pose}",
    "{stage}: {pose} {visual}.",
    "{visual}, {stage_l}. {pose}",
    "A frame of {visual_l}, {stage_l}. {pose}",
)
HELDOUT_TEMPLATES = (
    "Show me the moment {stage_l}, where {pose_l} The video shows {visual_l}.",
    "Which frame has {visual_l} and {stage_l}? In it, {pose_l}",
)
# the stage phrase; {action} is the action's gerund phrase, {stage} the stage name
STAGE_TEMPLATES = {
    "apex": "the {action} at its {stage}",
    "other": "the {action} during the {stage}",
    "idle": "the person standing between actions",
}
# paraphrase noise: synonym swaps (applied with probability p_swap each) and filler openings
_SYNONYMS = {
    "bent": ("flexed", "bent"), "straight": ("extended", "straight", "fully straight"),
    "completely": ("fully", "completely"), "hands": ("hands", "wrists"),
    "feet": ("feet", "both feet"), "above": ("above", "higher than"),
    "below": ("below", "lower than"), "close together": ("close together", "near each other"),
    "person": ("person", "figure", "individual"), "ground": ("ground", "floor"),
    "wide apart": ("wide apart", "far apart"), "torso": ("torso", "upper body"),
}
_OPENINGS = ("", "", "In this frame, ", "Here ", "We see ")


def action_phrase(action: str) -> str:
    """'jumping_jack' -> 'jumping jack' (the action's words)."""
    return action.replace("_", " ").strip()


def stage_phrase(action: str | None, stage: str | None, apex: bool = False) -> str:
    """'the squat at its bottom' / 'the squat during the descent' / idle text."""
    if not action:
        return STAGE_TEMPLATES["idle"]
    key = "apex" if apex else "other"
    return STAGE_TEMPLATES[key].format(action=action_phrase(action),
                                       stage=action_phrase(stage or "motion"))


def visual_text(meta: dict) -> str:
    """Visual content from a clip's metadata: clothing colours, build and background, e.g. 'a
    tall person in a red top and blue trousers in front of a brick wall'. Keys it reads (any
    may be missing): top_colour, bottom_colour, build, background."""
    who = "person"
    if meta.get("build"):
        who = f"{meta['build']} person"
    parts = []
    if meta.get("top_colour"):
        parts.append(f"a {meta['top_colour']} top")
    if meta.get("bottom_colour"):
        parts.append(f"{meta['bottom_colour']} trousers")
    text = f"a {who}" + (" in " + " and ".join(parts) if parts else "")
    if meta.get("background"):
        text += f" in front of {meta['background']}"
    return text


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s else s


def _upper_first(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def compose(visual: str, stage: str, pose: str, template: str) -> str:
    """One caption / query from its three parts and a template (the sentence case handled)."""
    text = template.format(visual=_upper_first(visual), visual_l=_lower_first(visual),
                           stage=_upper_first(stage), stage_l=_lower_first(stage),
                           pose=pose, pose_l=_lower_first(pose))
    return re.sub(r"\s+", " ", text).replace("..", ".").strip()


def paraphrase(text: str, rng: np.random.Generator, p_swap: float = 0.3,
               p_drop: float = 0.05) -> str:
    """A noisy rewrite of `text`: synonym swaps, an optional filler opening and a few dropped
    filler words ('the', 'a'), as an LLM-written caption varies from a template."""
    out = text
    for word, choices in _SYNONYMS.items():
        if word in out and rng.random() < p_swap:
            out = out.replace(word, choices[int(rng.integers(len(choices)))])
    words = out.split(" ")
    words = [w for w in words if not (w.lower() in ("the", "a") and rng.random() < p_drop)]
    out = " ".join(words)
    opening = _OPENINGS[int(rng.integers(len(_OPENINGS)))]
    return (opening + _lower_first(out)) if opening else out


def furthest_point_sampling(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of `k` rows of (N, D) `x` chosen greedily, each the furthest (Euclidean) from
    those already chosen; the first is drawn with `seed`. k >= N returns all rows."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    n = len(x)
    if k >= n:
        return np.arange(n)
    first = int(np.random.default_rng(seed).integers(n))
    chosen = [first]
    dist = np.linalg.norm(x - x[first], axis=1)
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return np.asarray(chosen)
