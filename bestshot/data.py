"""BestShot data from the human-motion video generator (`shared.motion`): splits of rendered
clips with exact per-frame ground truth, their frame captions (training) and queries with
highlight windows (evaluation).

A split is a `VideoConfig`; the out-of-distribution split differs only by config: held-out
action combinations, camera and body ranges outside training, and queries phrased with
templates that training never sees (`bestshot.captions.HELDOUT_TEMPLATES`).

Queries per action segment (the benchmark items; BestShot's three query elements):
- *apex*: "the squat at its bottom" + the apex frame's pose text; window = the generator's
  highlight window, highlight frame = its apex frame;
- *stage*: another stage of the same action (the longest run other than the rest stance) + the
  pose text of its middle frame; window = the run, highlight frame = its middle;
- *pose*: the pose text of a random frame of the segment, no stage words; window = the run of
  frames around it whose true posecodes match every described posecode.
Each query also names the visual content (clothing, background), as BestShot's queries do.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

from bestshot.captions import (
    HELDOUT_TEMPLATES,
    TRAIN_TEMPLATES,
    compose,
    furthest_point_sampling,
    paraphrase,
    stage_phrase,
)
from bestshot.config import CaptionConfig, VideoConfig
from bestshot.contrastive import TrainData
from bestshot.posecodes import (
    category_frequencies,
    describe,
    extract_posecodes,
    select_posecodes,
)
from shared.cache import cached_arrays
from shared.config import to_dict
from shared.errors import DataError
from shared.log import get_logger, progress

__all__ = ["VideoSet", "generate_split", "motion_config", "clip_actions", "colour_name",
           "frame_codes", "caption_frames", "fps_mask", "make_queries", "BACKGROUNDS"]

log = get_logger("bestshot.data")
DATA_VERSION = 1
BACKGROUNDS = ("a cloudy sky", "a striped wall", "a blotchy wall", "a checkered wall",
               "a brick wall", "a plaid wall")


@dataclass
class VideoSet:
    """A generated split. frames (N, T, H, W, 3) uint8; joints (N, T, J, 3) metres; stage
    (N, T) stage index (-1 idle); action (N, T) index into `action_names` (-1 idle);
    segments (N, S, 6) int [action, start, end, apex, highlight_start, highlight_end] (-1 rows
    pad); visual (N,) visual-content text; names (J,) joint names."""

    frames: np.ndarray
    joints: np.ndarray
    stage: np.ndarray
    action: np.ndarray
    segments: np.ndarray
    visual: list[str]
    names: list[str]
    action_names: list[str]
    fps: float
    codes: np.ndarray = field(default=None)  # (N, T, K) exact posecodes, filled on demand

    def __len__(self) -> int:
        return len(self.frames)


def colour_name(rgb) -> str:
    """A basic colour word for an RGB (0-255) triple."""
    r, g, b = (float(c) / 255.0 for c in rgb[:3])
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    if v < 0.22:
        return "black"
    if s < 0.18:
        return "white" if v > 0.8 else "grey"
    hue = h * 360
    if (hue < 40 or hue >= 345) and v < 0.55 and s > 0.3:
        return "brown"
    for lim, name in ((15, "red"), (40, "orange"), (70, "yellow"), (160, "green"),
                      (200, "cyan"), (255, "blue"), (290, "purple"), (345, "pink"),
                      (361, "red")):
        if hue < lim:
            return name
    return "red"  # pragma: no cover


def clip_actions(vc: VideoConfig, index: int, pool: list[str]) -> list[str]:
    """The action sequence of clip `index` (seeded): `vc.segments` actions from `pool`,
    consecutive pairs respecting `vc.combos` against `vc.heldout_pairs`."""
    rng = np.random.default_rng([vc.seed, index, 7])
    held = {tuple(sorted(p.split("+"))) for p in vc.heldout_pairs}
    if vc.combos == "only_heldout":
        if not held:
            raise DataError("video.combos=only_heldout needs video.heldout_pairs")
        pairs = sorted(held)
        a, b = pairs[int(rng.integers(len(pairs)))]
        seq = [a, b] if rng.random() < 0.5 else [b, a]
        while len(seq) < vc.segments:
            seq.append(seq[-2])
        return seq[:vc.segments]
    for _ in range(1000):
        seq = [str(a) for a in rng.choice(pool, size=vc.segments)]
        ok = vc.combos == "any" or all(tuple(sorted(p)) not in held
                                       for p in zip(seq[:-1], seq[1:]))
        if ok:
            return seq
    raise DataError("video.heldout_pairs leave no allowed action sequence")


def motion_config(vc: VideoConfig):
    """The `shared.motion.MotionConfig` of split `vc` (the action sequence of each clip is fixed
    by `clip_actions`)."""
    from shared.motion import MotionConfig

    return MotionConfig(
        image_size=vc.image_size, fps=vc.fps, clip_seconds=vc.clip_seconds,
        segments=vc.segments, highlight_seconds=vc.highlight_seconds,
        camera_yaw_deg=tuple(vc.camera_yaw_range),
        camera_pitch_deg=tuple(vc.camera_pitch_range),
        camera_distance=tuple(vc.camera_distance_range),
        height_range=tuple(vc.height_range), proportion_range=tuple(vc.proportion_range),
        n_distractors=(0, vc.n_distractors), occluder_prob=vc.occluder_prob,
        background_families=list(vc.background_families), seed=vc.seed)


def _visual(meta: dict) -> str:
    """Visual-content text from a clip's metadata (clothing colours, build, background)."""
    from bestshot.captions import visual_text

    app = meta.get("appearance", {}) if isinstance(meta.get("appearance"), dict) else {}
    d = {}
    if "top" in app:
        d["top_colour"] = colour_name(app["top"])
    if "bottom" in app:
        d["bottom_colour"] = colour_name(app["bottom"])
    h = app.get("height", meta.get("height"))
    if h is not None:
        d["build"] = "tall" if h >= 1.8 else "short" if h < 1.62 else ""
    fam = meta.get("background_family", meta.get("background"))
    if isinstance(fam, (int, np.integer)) and 0 <= fam < len(BACKGROUNDS):
        d["background"] = BACKGROUNDS[int(fam)]
    return visual_text({k: v for k, v in d.items() if v})


def _generate(vc: VideoConfig) -> dict[str, np.ndarray]:
    from shared.motion import ACTIONS, JOINTS, generate_clip

    names = list(ACTIONS)
    pool = list(vc.actions) or names
    unknown = [a for a in pool + [x for p in vc.heldout_pairs for x in p.split("+")]
               if a not in ACTIONS]
    if unknown:
        raise DataError(f"video.actions / heldout_pairs: unknown action '{unknown[0]}' "
                        f"(known: {', '.join(names)})")
    mc = motion_config(vc)
    out: dict[str, list] = {k: [] for k in ("frames", "joints", "stage", "action", "segments",
                                            "visual")}
    for i in progress(range(vc.n_videos), desc="generate"):
        clip = generate_clip(mc, i, actions=clip_actions(vc, i, pool))
        T = len(clip.frames)
        act = np.full(T, -1, np.int64)
        segs = np.full((vc.segments, 6), -1, np.int64)
        for k, s in enumerate(clip.segments[:vc.segments]):
            a = names.index(s["action"])
            act[s["start"]:s["end"]] = a
            # highlight_end is exclusive in shared.motion; ours is inclusive
            segs[k] = [a, s["start"], s["end"], s["apex_frame"], s["highlight_start"],
                       s["highlight_end"] - 1]
        out["frames"].append(np.asarray(clip.frames, np.uint8))
        out["joints"].append(np.asarray(clip.joints3d, np.float32))
        out["stage"].append(np.asarray(clip.stage, np.int64))
        out["action"].append(act)
        out["segments"].append(segs)
        out["visual"].append(_visual(dict(clip.meta)))
    arrays = {k: np.stack(v) for k, v in out.items() if k != "visual"}
    arrays["visual"] = np.asarray(out["visual"])
    arrays["names"] = np.asarray(JOINTS)
    arrays["action_names"] = np.asarray(names)
    arrays["fps"] = np.asarray(float(clip.fps))
    return arrays


def generate_split(vc: VideoConfig) -> VideoSet:
    """The split's clips, generated once and cached (`shared.cache`) under its config."""
    from shared.motion import MOTION_VERSION

    a = cached_arrays("bestshot-videos", to_dict(vc), lambda: _generate(vc),
                      version=f"{DATA_VERSION}-{MOTION_VERSION}")
    vs = VideoSet(a["frames"], a["joints"].astype(np.float64), a["stage"], a["action"],
                  a["segments"], [str(x) for x in a["visual"]], [str(x) for x in a["names"]],
                  [str(x) for x in a["action_names"]], float(a["fps"]))
    vs.codes = frame_codes(vs)
    return vs


def frame_codes(vs: VideoSet, rng: np.random.Generator | None = None) -> np.ndarray:
    """(N, T, K) posecodes of every frame's true skeleton (exact binning without `rng`)."""
    n, t = vs.joints.shape[:2]
    flat = vs.joints.reshape(n * t, *vs.joints.shape[2:])
    return extract_posecodes(flat, vs.names, rng=rng).reshape(n, t, -1)


def _stage_text(vs: VideoSet, v: int, t: int) -> str:
    from shared.motion import ACTIONS

    a = int(vs.action[v, t])
    if a < 0 or vs.stage[v, t] < 0:
        return stage_phrase(None, None)
    name = vs.action_names[a]
    spec = ACTIONS[name]
    st = int(vs.stage[v, t])
    apex = st == int(spec.stage_of(np.array([spec.apex_phase]))[0])
    return stage_phrase(name, spec.stage_names[st], apex=apex)


def caption_frames(vs: VideoSet, cc: CaptionConfig, mode: str, seed: int,
                   freqs: list[np.ndarray] | None = None, pixels: np.ndarray | None = None
                   ) -> tuple[TrainData, list[np.ndarray]]:
    """Frame captions of a training split -> (TrainData without text embeddings filled in,
    the posecode category frequencies used for selection). `mode`: base (visual text only),
    stage (+ action-stage text) or shotvl (+ pose text). Caption 0 of a frame is the clean
    template text (its key); captions 1.. are noisy paraphrases (randomised thresholds, skipped
    posecodes, other training templates, synonyms); in the fine-tuning modes a share
    `visual_only_prob` of the noisy ones name only the visual content."""
    n, t, k = vs.codes.shape
    freqs = freqs if freqs is not None else category_frequencies(vs.codes.reshape(n * t, k))
    rng = np.random.default_rng([seed, 11])
    clean_mask = select_posecodes(vs.codes.reshape(n * t, k), freqs, cc.max_codes, cc.common)
    noisy_codes = frame_codes(vs, rng if cc.randomise_thresholds else None).reshape(n * t, k)
    texts: dict[str, int] = {}
    ids = np.zeros((n, t, cc.paraphrases), np.int64)
    keys = np.zeros((n, t), np.int64)
    caption_keys: list[int] = []
    visual_only: list[bool] = []

    def add(text: str, key: int | None, vis: bool) -> int:
        if text not in texts:
            texts[text] = len(texts)
            caption_keys.append(texts[text] if key is None else key)
            visual_only.append(vis)
        return texts[text]

    for v in range(n):
        vis = vs.visual[v]
        for f in range(t):
            i = v * t + f
            stage = _stage_text(vs, v, f)
            if mode == "base":
                clean = vis[:1].upper() + vis[1:] + "."
            elif mode == "stage":
                clean = compose(vis, stage, "", TRAIN_TEMPLATES[0])
            else:
                clean = compose(vis, stage, describe(vs.codes[v, f], clean_mask[i]),
                                TRAIN_TEMPLATES[0])
            cid = add(clean, None, mode == "base")
            key = caption_keys[cid]
            keys[v, f] = key
            ids[v, f, 0] = cid
            for p in range(1, cc.paraphrases):
                if mode == "base" or rng.random() < cc.visual_only_prob:
                    text = paraphrase(vis[:1].upper() + vis[1:] + ".", rng)
                    ids[v, f, p] = add(text, -1 - v, True)  # key: the video (see below)
                    continue
                tpl = TRAIN_TEMPLATES[int(rng.integers(len(TRAIN_TEMPLATES)))]
                if mode == "stage":
                    text = compose(vis, stage, "", tpl)
                else:
                    m = select_posecodes(noisy_codes[i:i + 1], freqs, cc.max_codes, cc.common,
                                         cc.skip_prob, rng)[0]
                    text = compose(vis, stage, describe(noisy_codes[i], m), tpl)
                ids[v, f, p] = add(paraphrase(text, rng), key, False)
    order = sorted(texts, key=texts.get)
    vis_only = np.asarray(visual_only, bool)
    data = TrainData(pixels=pixels if pixels is not None else np.zeros((n, t, 1, 1, 1)),
                     caption_ids=ids, keys=keys, text_emb=np.zeros((len(order), 0)),
                     texts=order, visual_only=vis_only,
                     caption_keys=np.asarray(caption_keys, np.int64))
    return data, freqs


def fps_mask(vs: VideoSet, k: int, seed: int) -> np.ndarray:
    """(N, T) bool: the `k` frames furthest-point sampling keeps over pelvis-relative poses."""
    n, t = vs.joints.shape[:2]
    rel = vs.joints - vs.joints[:, :, :1]
    keep = np.zeros(n * t, bool)
    keep[furthest_point_sampling(rel.reshape(n * t, -1), k, seed)] = True
    return keep.reshape(n, t)


def make_queries(vs: VideoSet, freqs: list[np.ndarray], cc: CaptionConfig, heldout: bool,
                 seed: int) -> list[dict]:
    """Benchmark items of a split: per action segment an apex, a stage and a pose query, as dicts
    {video, kind, text, window (start, end) inclusive, apex, codes (K,), mask (K,)}.
    `heldout`: phrased with HELDOUT_TEMPLATES and the generator's own apex wording."""
    from shared.motion import ACTIONS

    rng = np.random.default_rng([seed, 13])
    items = []
    templates = HELDOUT_TEMPLATES if heldout else TRAIN_TEMPLATES
    for v in range(len(vs)):
        for a, s, e, apex, hs, he in vs.segments[v]:
            if a < 0:
                continue
            name = vs.action_names[a]
            spec = ACTIONS[name]
            apex_stage = int(vs.stage[v, apex])
            stage_words = (spec.apex_description if heldout else
                           stage_phrase(name, spec.stage_names[apex_stage], apex=True))
            items.append(_item(vs, v, "apex", int(apex), (int(hs), int(he)), stage_words,
                               freqs, cc, templates, rng))
            run = _longest_run(vs.stage[v, s:e], exclude={apex_stage, 0})
            if run is None:
                continue
            st, lo, hi = run
            mid = int(s + (lo + hi) // 2)
            items.append(_item(vs, v, "stage", mid, (int(s + lo), int(s + hi)), stage_phrase(
                name, spec.stage_names[st]), freqs, cc, templates, rng))
            pose = _pose_item(vs, v, int(s), int(e), freqs, cc, templates, rng)
            if pose is not None:
                items.append(pose)
    return items


def _longest_run(stages: np.ndarray, exclude: set[int]) -> tuple[int, int, int] | None:
    """(stage, first, last) of the longest run of one stage not in `exclude` (>= 2 frames)."""
    best = None
    i = 0
    while i < len(stages):
        j = i
        while j + 1 < len(stages) and stages[j + 1] == stages[i]:
            j += 1
        if stages[i] >= 0 and int(stages[i]) not in exclude and j > i and (
                best is None or j - i > best[2] - best[1]):
            best = (int(stages[i]), i, j)
        i = j + 1
    return best


def _pose_item(vs, v, s, e, freqs, cc, templates, rng) -> dict | None:
    """A pose query (visual content + pose text, no action stage) for a random frame of the
    segment [s, e); window = the run of frames around it whose true posecodes match every
    selected code of the query. None when the frame has no selected code."""
    from bestshot.posecodes import posecode_match

    f = int(rng.integers(s, e))
    codes = vs.codes[v, f]
    mask = select_posecodes(codes[None], freqs, cc.max_codes, cc.common)[0]
    if not mask.any():
        return None
    full = posecode_match(codes, mask, vs.codes[v]) == 1.0
    lo, hi = f, f
    while lo > 0 and full[lo - 1]:
        lo -= 1
    while hi + 1 < len(full) and full[hi + 1]:
        hi += 1
    tpl = templates[int(rng.integers(len(templates)))]
    text = compose(vs.visual[v], "the person", describe(codes, mask), tpl)
    return {"video": v, "kind": "pose", "text": text, "window": (lo, hi), "apex": f,
            "codes": codes, "mask": mask}


def _item(vs, v, kind, frame, window, stage_words, freqs, cc, templates, rng) -> dict:
    codes = vs.codes[v, frame]
    mask = select_posecodes(codes[None], freqs, cc.max_codes, cc.common)[0]
    tpl = templates[int(rng.integers(len(templates)))]
    text = compose(vs.visual[v], stage_words, describe(codes, mask), tpl)
    return {"video": v, "kind": kind, "text": text, "window": window, "apex": frame,
            "codes": codes, "mask": mask}

