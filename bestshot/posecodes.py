"""Posecodes: categorical, human-readable facts about a 3D pose, and the template text built
from them (our implementation of the PoseScript captioning idea that the BestShot paper uses to
make its Image-SMPLText pose captions; PoseScript's own code and templates are not used).

The pipeline has PoseScript's four stages:

1. **extraction** (`posecode_values`, `extract_posecodes`): five operators on (N, J, 3) joints,
   each value binned by thresholds into categories -- joint *angles* (elbows, knees, hips,
   degrees), *distances* between joint pairs (metres), *relative positions* along the body's own
   left/up/forward axes (metres), the angle of a limb to the *vertical axis* (degrees) and
   *height above the ground* (metres). With `rng`, every threshold gets its own uniform offset
   in [-offset, offset] (PoseScript's randomised binning); without it binning is exact.
2. **selection** (`select_posecodes`): drop categories that are the same in most poses of the
   corpus (uninformative), keep the rarest `max_codes`, optionally skip some at random.
3. **aggregation** (`aggregate`): a left and a right posecode of the same kind and category
   become one "both ..." phrase.
4. **conversion** (`describe`): deterministic template sentences, ordered by body part.

Coordinates: metres, y up. The body frame (left, up, forward) is taken from the hips, so a
pose reads the same whatever the direction the person faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.errors import DataError

__all__ = ["PosecodeSpec", "POSECODES", "IGNORED", "joint_index", "body_frame",
           "posecode_values", "categorise", "extract_posecodes", "category_frequencies",
           "select_posecodes", "aggregate", "describe", "pose_phrases", "posecode_match"]

IGNORED = -1  # category index of a value inside an "ignored" band

# The joint names this module reads (the `shared.motion` skeleton uses these names).
_NEEDED = ("pelvis", "spine", "neck", "head", "left_shoulder", "right_shoulder", "left_elbow",
           "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
           "right_knee", "left_ankle", "right_ankle")


@dataclass(frozen=True)
class PosecodeSpec:
    """One posecode: an operator on named joints, its thresholds and category names.

    kind: angle (degrees at joints[1]) | distance (m) | relx / rely / relz (m, joints[0] minus
    joints[1] along the body's left / up / forward axis) | vaxis (degrees between the limb
    joints[0]->joints[1] and the vertical) | ground (m above the ground of joints[0]).
    categories has len(thresholds) + 1 entries; "" marks an ignored band.
    subject: the words for the body part(s) ("left knee"; relative codes: "left hand|head").
    side: "left" / "right" for the codes that aggregate into "both ..."; "" otherwise.
    """

    kind: str
    joints: tuple[str, ...]
    thresholds: tuple[float, ...]
    categories: tuple[str, ...]
    offset: float  # max random offset of each threshold (randomised binning)
    subject: str
    side: str = ""

    @property
    def name(self) -> str:
        return f"{self.kind}:{'-'.join(self.joints)}"


_ANGLE = ((45.0, 75.0, 105.0, 135.0, 160.0),
          ("completely bent", "almost completely bent", "bent at a right angle",
           "partially bent", "slightly bent", "straight"), 5.0)
_DIST = ((0.20, 0.40, 0.80), ("close together", "shoulder width apart", "spread apart",
                              "wide apart"), 0.05)
_REL = (-0.15, -0.05, 0.05, 0.15)
_VAXIS = ((10.0, 80.0), ("vertical", "", "horizontal"), 5.0)


def _sides(kind, joints, th, cats, off, subject):
    return [PosecodeSpec(kind, tuple(j.format(s=s) for j in joints), th, cats, off,
                         subject.format(s=s), side=s) for s in ("left", "right")]


def _build_specs() -> tuple[PosecodeSpec, ...]:
    s: list[PosecodeSpec] = []
    # legs first, then arms, then torso (the order of the sentences)
    s += _sides("angle", ("{s}_hip", "{s}_knee", "{s}_ankle"), *_ANGLE, "{s} knee")
    s += _sides("angle", ("neck", "{s}_hip", "{s}_knee"), *_ANGLE, "{s} hip")
    s += _sides("ground", ("{s}_ankle",), (0.12, 0.25), ("on the ground", "", "off the ground"),
                0.03, "{s} foot")
    s += _sides("rely", ("{s}_knee", "{s}_hip"), _REL, ("below", "", "level with", "", "above"),
                0.05, "{s} knee|hips")
    s += _sides("vaxis", ("{s}_hip", "{s}_knee"), *_VAXIS, "{s} thigh")
    s.append(PosecodeSpec("distance", ("left_ankle", "right_ankle"), *_DIST, "feet"))
    s.append(PosecodeSpec("relz", ("left_ankle", "right_ankle"), _REL,
                          ("behind", "", "level with", "", "in front of"), 0.05,
                          "left foot|right foot"))
    s += _sides("angle", ("{s}_shoulder", "{s}_elbow", "{s}_wrist"), *_ANGLE, "{s} elbow")
    s += _sides("rely", ("{s}_wrist", "head"), _REL, ("below", "", "level with", "", "above"),
                0.05, "{s} hand|head")
    s += _sides("rely", ("{s}_wrist", "{s}_shoulder"), _REL,
                ("below", "", "level with", "", "above"), 0.05, "{s} hand|shoulders")
    s += _sides("relz", ("{s}_wrist", "pelvis"), (-0.15, 0.15, 0.35),
                ("behind", "", "in front of", "far in front of"), 0.05, "{s} hand|body")
    s += _sides("vaxis", ("{s}_shoulder", "{s}_elbow"), *_VAXIS, "{s} upper arm")
    s.append(PosecodeSpec("distance", ("left_wrist", "right_wrist"), *_DIST, "hands"))
    s.append(PosecodeSpec("relx", ("left_wrist", "right_wrist"), (-0.05,),
                          ("crossed", ""), 0.03, "arms"))
    s.append(PosecodeSpec("vaxis", ("pelvis", "neck"), (15.0, 35.0, 60.0),
                          ("upright", "", "leaning", "bent far over"), 5.0, "torso"))
    return tuple(s)


POSECODES: tuple[PosecodeSpec, ...] = _build_specs()


def joint_index(names: Sequence[str]) -> dict[str, int]:
    """{name: column} for the joints posecodes read; a missing one is a DataError."""
    idx = {n: i for i, n in enumerate(names)}
    missing = [n for n in _NEEDED if n not in idx]
    if missing:
        raise DataError(f"joint names: missing {missing} (posecodes need {list(_NEEDED)})")
    return idx


def _check_joints(joints: np.ndarray, names: Sequence[str]) -> np.ndarray:
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim == 2:
        j = j[None]
    if j.ndim != 3 or j.shape[-1] != 3 or j.shape[1] != len(names):
        raise DataError(f"joints: expected shape (N, {len(names)}, 3), got {tuple(j.shape)}")
    if not np.isfinite(j).all():
        raise DataError("joints: contains NaN or inf")
    return j


def body_frame(j: np.ndarray, idx: dict[str, int]) -> np.ndarray:
    """(N, 3, 3) rows = the body's left, up, forward unit axes (world coordinates).
    left = right_hip -> left_hip in the ground plane, up = +y, forward = left x up."""
    left = j[:, idx["left_hip"]] - j[:, idx["right_hip"]]
    left[:, 1] = 0.0
    n = np.linalg.norm(left, axis=1, keepdims=True)
    left = np.where(n > 1e-9, left / np.maximum(n, 1e-12), np.array([1.0, 0.0, 0.0]))
    up = np.broadcast_to(np.array([0.0, 1.0, 0.0]), left.shape)
    fwd = np.cross(left, up)
    return np.stack([left, up, fwd], axis=1)


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle at b (degrees) between b->a and b->c; arctan2 form (exact near 0 and 180)."""
    u, v = a - b, c - b
    cr = np.linalg.norm(np.cross(u, v), axis=-1)
    return np.degrees(np.arctan2(cr, (u * v).sum(-1)))


def posecode_values(joints: np.ndarray, names: Sequence[str],
                    specs: Sequence[PosecodeSpec] = POSECODES,
                    ground_y: float | None = 0.0) -> np.ndarray:
    """(N, J, 3) joints (or one (J, 3) pose) -> (N, len(specs)) raw values (degrees / metres).
    `ground_y=None`: heights are measured from each pose's lowest joint (no known ground)."""
    j = _check_joints(joints, names)
    idx = joint_index(names)
    frame = body_frame(j, idx)
    ground = j[:, :, 1].min(1) if ground_y is None else np.full(len(j), float(ground_y))
    out = np.empty((len(j), len(specs)))
    for k, s in enumerate(specs):
        p = [j[:, idx[n]] for n in s.joints]
        if s.kind == "angle":
            out[:, k] = _angle(*p)
        elif s.kind == "distance":
            out[:, k] = np.linalg.norm(p[0] - p[1], axis=1)
        elif s.kind in ("relx", "rely", "relz"):
            axis = {"relx": 0, "rely": 1, "relz": 2}[s.kind]
            out[:, k] = ((p[0] - p[1]) * frame[:, axis]).sum(1)
        elif s.kind == "vaxis":
            d = p[1] - p[0]
            cos = np.abs(d[:, 1]) / np.maximum(np.linalg.norm(d, axis=1), 1e-12)
            out[:, k] = np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))
        elif s.kind == "ground":
            out[:, k] = p[0][:, 1] - ground
        else:  # pragma: no cover - specs are module data
            raise ValueError(f"unknown posecode kind {s.kind!r}")
    return out


def categorise(values: np.ndarray, spec: PosecodeSpec,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """(N,) values -> (N,) category indices (IGNORED for an ignored band). With `rng` each
    threshold is shifted by its own U(-offset, offset) per value (randomised binning)."""
    v = np.asarray(values, dtype=np.float64)
    th = np.asarray(spec.thresholds, dtype=np.float64)
    if rng is None:
        cat = np.searchsorted(th, v, side="right")
    else:
        shifted = th[None, :] + rng.uniform(-spec.offset, spec.offset, (v.size, th.size))
        shifted.sort(axis=1)
        cat = (v[:, None] >= shifted).sum(1)
    ignored = np.array([c == "" for c in spec.categories])
    return np.where(ignored[cat], IGNORED, cat).astype(np.int64)


def extract_posecodes(joints: np.ndarray, names: Sequence[str],
                      specs: Sequence[PosecodeSpec] = POSECODES,
                      rng: np.random.Generator | None = None,
                      ground_y: float | None = 0.0) -> np.ndarray:
    """(N, J, 3) joints -> (N, len(specs)) int64 category indices (IGNORED = -1)."""
    vals = posecode_values(joints, names, specs, ground_y)
    return np.stack([categorise(vals[:, k], s, rng) for k, s in enumerate(specs)], axis=1)


def category_frequencies(codes: np.ndarray, specs: Sequence[PosecodeSpec] = POSECODES
                         ) -> list[np.ndarray]:
    """Per spec, the share of poses in each category (ignored ones excluded from the count)."""
    codes = np.asarray(codes)
    out = []
    for k, s in enumerate(specs):
        counts = np.bincount(codes[:, k][codes[:, k] >= 0], minlength=len(s.categories))
        out.append(counts / max(len(codes), 1))
    return out


def select_posecodes(codes: np.ndarray, freqs: list[np.ndarray] | None = None,
                     max_codes: int = 6, common: float = 0.75, skip_prob: float = 0.0,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """(N, K) codes -> (N, K) bool mask of the codes to describe: not ignored, not a category
    shared by more than `common` of the corpus (`freqs`), then the `max_codes` rarest; with
    `rng`, each remaining code is skipped with probability `skip_prob` (at least one stays)."""
    codes = np.asarray(codes)
    n, k = codes.shape
    keep = codes >= 0
    rarity = np.zeros((n, k))
    if freqs is not None:
        f = np.stack([np.where(codes[:, i] >= 0, freqs[i][np.maximum(codes[:, i], 0)], 1.0)
                      for i in range(k)], axis=1)
        keep &= f <= common
        rarity = f
    order = np.argsort(np.where(keep, rarity, np.inf), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(k)[None].repeat(n, 0), axis=1)
    keep &= ranks < max_codes
    if rng is not None and skip_prob > 0:
        drop = rng.random((n, k)) < skip_prob
        for i in range(n):
            d = keep[i] & drop[i]
            if d.sum() < keep[i].sum():
                keep[i] &= ~d
    return keep


def _subject(spec: PosecodeSpec, both: bool) -> str:
    """Subject words with 'the', plural for a 'both' phrase ('both knees', 'both hands')."""
    first = spec.subject.split("|")[0]
    if not both:
        return f"the {first}"
    word = first.split(" ", 1)[1]
    return "both " + {"foot": "feet", "hip": "hips"}.get(word, word + "s")


def _phrase(spec: PosecodeSpec, cat: int, both: bool) -> str:
    words = spec.categories[cat]
    subj = _subject(spec, both)
    verb = "are" if both else "is"
    if spec.kind == "distance":
        return f"the {spec.subject} are {words}"
    if spec.kind in ("relx", "rely", "relz"):
        if spec.subject == "arms":
            return f"the arms are {words}"
        other = spec.subject.split("|")[1]
        return f"{subj} {verb} {words} the {other}"
    if spec.kind == "vaxis" and spec.subject == "torso":
        return f"the torso is {words}"
    return f"{subj} {verb} {words}"


def aggregate(code_row: np.ndarray, mask_row: np.ndarray,
              specs: Sequence[PosecodeSpec] = POSECODES) -> list[tuple[int, int, bool]]:
    """One pose's selected codes -> [(spec index, category, both)]: a left and a right code of
    the same kind and joints with the same category merge into one 'both' item (kept at the
    left one's place); a side whose partner differs or is unselected stays on its own."""
    out, used = [], set()
    for k, s in enumerate(specs):
        if not mask_row[k] or k in used:
            continue
        both = False
        if s.side == "left":
            partner = _partner(k, specs)
            if partner is not None and mask_row[partner] and code_row[partner] == code_row[k]:
                both = True
                used.add(partner)
        out.append((k, int(code_row[k]), both))
    return out


def _partner(k: int, specs: Sequence[PosecodeSpec]) -> int | None:
    s = specs[k]
    want = tuple(j.replace("left_", "right_") for j in s.joints)
    for i, t in enumerate(specs):
        if t.kind == s.kind and t.side == "right" and t.joints == want:
            return i
    return None


def pose_phrases(code_row: np.ndarray, mask_row: np.ndarray,
                 specs: Sequence[PosecodeSpec] = POSECODES) -> list[str]:
    """The aggregated phrases of one pose, in body-part order."""
    return [_phrase(specs[k], c, both) for k, c, both in aggregate(code_row, mask_row, specs)]


def describe(code_row: np.ndarray, mask_row: np.ndarray | None = None,
             specs: Sequence[PosecodeSpec] = POSECODES) -> str:
    """Deterministic pose sentence: 'Both knees are bent at a right angle, ... and the hands
    are close together.' (an all-ignored pose: 'The person stands in a neutral pose.')"""
    code_row = np.asarray(code_row)
    mask = code_row >= 0 if mask_row is None else np.asarray(mask_row) & (code_row >= 0)
    ph = pose_phrases(code_row, mask, specs)
    if not ph:
        return "The person stands in a neutral pose."
    text = ph[0] if len(ph) == 1 else ", ".join(ph[:-1]) + " and " + ph[-1]
    return text[0].upper() + text[1:] + "."


def posecode_match(query_codes: np.ndarray, query_mask: np.ndarray,
                   frame_codes: np.ndarray) -> np.ndarray:
    """Oracle score: (K,) query codes + (K,) mask vs (T, K) ground-truth codes -> (T,) share of
    the query's selected codes each frame matches."""
    q = np.asarray(query_mask, bool)
    if not q.any():
        return np.zeros(len(frame_codes))
    return (np.asarray(frame_codes)[:, q] == np.asarray(query_codes)[q]).mean(1)
