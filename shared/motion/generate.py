"""Clips of people doing actions, with exact per-frame ground truth; datasets cached on disk.

A clip is a timeline of idle holds, actions and transitions for one main person (plus optional
distractor people), rendered from a (possibly panning/zooming) camera over a procedural
background. Everything is drawn from one `np.random.Generator` seeded by (cfg.seed, seed), so a
clip depends only on its config and seed.

Timeline (frames): idle (holds the first action's start pose) -> action -> transition (cosine
blend to the next action's start pose) -> action ... -> idle (holds the last end pose). Actions
and idle share the clip's fixed length: when the drawn durations do not fit they are all
scaled down together. During an action the phase runs 0 -> 1 through a monotone time warp
`u + skew u (1 - u)` (the phase jitter); `phase` and `action_index` are -1 elsewhere.

Ground truth per action segment: frames [start, end) (end exclusive), the apex frame (the frame
whose phase is nearest the action's apex phase) and the highlight window [highlight_start,
highlight_end) = apex +- round(highlight_seconds * fps) frames, clipped to the segment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np

from shared.config import NonNegFloat, PosFloat, PosInt, Prob, to_dict
from shared.errors import ConfigError, DataError
from shared.motion.actions import ACTIONS, ease
from shared.motion.camera import Camera, orbit_camera, project
from shared.motion.render import (
    BACKGROUND_FAMILIES,
    Appearance,
    Occluder,
    add_sensor_noise,
    background_frames,
    make_background,
    occluder_mask,
    render,
    self_occluded,
)
from shared.motion.skeleton import JOINT_INDEX, JOINTS, Body, clip_to_limits, forward_kinematics

__all__ = ["MotionConfig", "Clip", "generate_clip", "generate_dataset", "MotionDataset",
           "ACTION_NAMES", "MOTION_VERSION", "place_person"]

MOTION_VERSION = 2  # bump when generated clips change
ACTION_NAMES: tuple[str, ...] = tuple(ACTIONS)  # action_index indexes this tuple

Range2 = tuple[float, ...]


@dataclasses.dataclass
class MotionConfig:
    """What clips look like. Every range is (lo, hi), drawn uniformly per clip; the defaults are
    the training family. Out-of-family splits are configs: ranges outside these, other
    `background_families`, held-out `exclude_combinations` / explicit `combinations`."""

    image_size: PosInt = 96  # square frames, pixels
    fps: PosInt = 25
    clip_seconds: PosFloat = 4.0
    actions: list[str] = dataclasses.field(default_factory=lambda: list(ACTION_NAMES))
    segments: PosInt = 1  # actions per clip (1 = one action between idle holds)
    # explicit action sequences to draw from (if any), and sequences never drawn (held out)
    combinations: list[list[str]] = dataclasses.field(default_factory=list)
    exclude_combinations: list[list[str]] = dataclasses.field(default_factory=list)
    idle_seconds: Range2 = (0.3, 1.0)  # before the first action
    transition_seconds: Range2 = (0.3, 0.6)  # between actions
    tempo_jitter: Range2 = (0.85, 1.2)  # speed factor (>1 = faster)
    amplitude_jitter: Range2 = (0.9, 1.15)  # multiplies each action's amplitude
    phase_jitter: Range2 = (-0.15, 0.15)  # time-warp skew of the phase, |skew| < 1
    highlight_seconds: NonNegFloat = 0.12  # highlight window = apex +- this
    height_range: Range2 = (1.55, 1.95)  # metres
    proportion_range: Range2 = (0.9, 1.1)  # limb/torso/width factors
    camera_yaw_deg: Range2 = (-40.0, 40.0)  # 0 = frontal view
    camera_pitch_deg: Range2 = (0.0, 20.0)  # positive = looking down
    camera_distance: Range2 = (3.6, 5.0)  # metres from the body centre
    camera_fov_deg: Range2 = (45.0, 52.0)  # vertical field of view
    camera_pan_speed: Range2 = (0.0, 3.0)  # deg/s, random sign; (0, 0) = static
    camera_zoom_speed: Range2 = (0.0, 0.03)  # relative focal change per s, random sign
    person_offset: Range2 = (-0.2, 0.2)  # metres, x and z of the main person
    clothing_hue: Range2 = (0.0, 1.0)
    clothing_saturation: Range2 = (0.25, 0.9)
    clothing_value: Range2 = (0.3, 0.95)
    background: Literal["texture", "plain"] = "texture"
    background_families: list[int] = dataclasses.field(default_factory=lambda: [0, 1, 2])
    n_distractors: tuple[int, ...] = (0, 1)  # other people behind, doing other actions
    occluder_prob: Prob = 0.2
    noise_std: Range2 = (0.0, 4.0)  # sensor noise, 0-255 scale
    exposure: Range2 = (0.85, 1.15)  # brightness gain
    light_spread_deg: NonNegFloat = 35.0  # light direction jitter around the default
    blur_prob: Prob = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        def rng_(key, lo=None, hi=None, integer=False):
            v = getattr(self, key)
            if not isinstance(v, (tuple, list)) or len(v) != 2:
                raise ConfigError(f"'{key}': expected a (lo, hi) pair, got {v!r}")
            a, b = v
            kinds = (int,) if integer else (int, float)
            if any(isinstance(x, bool) or not isinstance(x, kinds) or not np.isfinite(x)
                   for x in v):
                raise ConfigError(f"'{key}': expected two {'integers' if integer else 'numbers'},"
                                  f" got {v!r}")
            if a > b:
                raise ConfigError(f"'{key}': lo {a} > hi {b}")
            if (lo is not None and a < lo) or (hi is not None and b > hi):
                raise ConfigError(f"'{key}': {v!r} must lie within [{lo}, {hi}]")
            setattr(self, key, (a, b))

        for key, lo, hi in [("idle_seconds", 0, None), ("transition_seconds", 0, None),
                            ("tempo_jitter", 0.1, 10), ("amplitude_jitter", 0, 3),
                            ("phase_jitter", -0.9, 0.9), ("height_range", 0.5, 3.0),
                            ("proportion_range", 0.5, 2.0), ("camera_yaw_deg", -360, 360),
                            ("camera_pitch_deg", -60, 80), ("camera_distance", 0.5, 100),
                            ("camera_fov_deg", 5, 150), ("camera_pan_speed", 0, 90),
                            ("camera_zoom_speed", 0, 0.5), ("person_offset", -5, 5),
                            ("clothing_hue", 0, 1), ("clothing_saturation", 0, 1),
                            ("clothing_value", 0, 1), ("noise_std", 0, 100),
                            ("exposure", 0.05, 5)]:
            rng_(key, lo, hi)
        rng_("n_distractors", 0, 8, integer=True)
        if self.image_size < 16:
            raise ConfigError(f"'image_size': {self.image_size} is below 16")
        if not self.actions:
            raise ConfigError("'actions': empty (list the action names, or leave the default)")
        for key in ("actions",):
            for a in self.actions:
                if a not in ACTIONS:
                    raise ConfigError(f"'{key}': unknown action {a!r} "
                                      f"(known: {', '.join(ACTION_NAMES)})")
        for key in ("combinations", "exclude_combinations"):
            for combo in getattr(self, key):
                for a in combo:
                    if a not in ACTIONS:
                        raise ConfigError(f"'{key}': unknown action {a!r}")
                if key == "combinations" and len(combo) != self.segments:
                    raise ConfigError(f"'{key}': {combo} has {len(combo)} actions, "
                                      f"segments is {self.segments}")
        for f in self.background_families:
            if not 0 <= f < BACKGROUND_FAMILIES:
                raise ConfigError(f"'background_families': {f} is outside "
                                  f"[0, {BACKGROUND_FAMILIES - 1}]")
        if not self.background_families:
            raise ConfigError("'background_families': empty")
        if self.highlight_seconds < 0:
            raise ConfigError("'highlight_seconds': must be >= 0")
        need = max(8, 5 * self.segments)
        if round(self.clip_seconds * self.fps) < need:
            raise ConfigError(f"'clip_seconds': {self.clip_seconds} s at {self.fps} fps is "
                              f"under {need} frames ({self.segments} segments)")

    @property
    def n_frames(self) -> int:
        return int(round(self.clip_seconds * self.fps))

    def hash(self) -> str:
        blob = json.dumps(to_dict(self), sort_keys=True)
        return hashlib.sha256(f"{blob}/{MOTION_VERSION}".encode()).hexdigest()[:16]


@dataclasses.dataclass
class Clip:
    """One generated clip and its exact ground truth (T frames, J joints).

    frames (T, H, W, 3) uint8 RGB; joints3d (T, J, 3) float32 world metres (y up, floor y = 0);
    joints2d (T, J, 2) float32 pixels (u right, v down) of the main person; visible (T, J) bool
    (inside the image, not behind an occluder nor behind the person's own limbs or head);
    angles (T, J, 3) local Euler XYZ; root (T, 3) pelvis position; action_index (T,) int into
    ACTION_NAMES, -1 on idle/transition frames;
    phase (T,) float in [0, 1], -1 outside actions; stage (T,) int into the current action's
    `stage_names`, -1 outside actions; segments: per action {action, start, end (exclusive),
    apex_frame, highlight_start, highlight_end (exclusive), params, stage_names}; camera
    (per-frame K, R, t); props: world positions (T, 3) of props ("ball"; NaN when absent) and
    static ones ("chair": (1, 3) seat centre); meta: config hash, seed, body, appearance."""

    frames: np.ndarray
    joints3d: np.ndarray
    joints2d: np.ndarray
    visible: np.ndarray
    angles: np.ndarray
    root: np.ndarray
    action_index: np.ndarray
    phase: np.ndarray
    stage: np.ndarray
    segments: list[dict]
    fps: int
    camera: Camera
    props: dict[str, np.ndarray]
    meta: dict

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def actions(self) -> list[str]:
        return [s["action"] for s in self.segments]

    def stage_name(self, t: int) -> str | None:
        """The stage name at frame t, None outside actions."""
        a = int(self.action_index[t])
        return None if a < 0 else ACTIONS[ACTION_NAMES[a]].stage_names[int(self.stage[t])]

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything as plain arrays (segments/meta as JSON bytes) for `np.savez`."""
        out = {k: getattr(self, k) for k in ("frames", "joints3d", "joints2d", "visible",
                                              "angles", "root", "action_index", "phase",
                                              "stage")}
        out.update({f"camera_{k}": v for k, v in self.camera.arrays().items()})
        out.update({f"prop_{k}": v for k, v in self.props.items()})
        info = {"segments": self.segments, "fps": self.fps, "meta": self.meta}
        out["info_json"] = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
        return out

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> Clip:
        """The inverse of `arrays`; DataError naming the field when one is missing or its
        shape disagrees with the frames."""
        need = ("frames", "joints3d", "joints2d", "visible", "angles", "root", "action_index",
                "phase", "stage", "info_json", "camera_K", "camera_R", "camera_t",
                "camera_size")
        for k in need:
            if k not in d:
                raise DataError(f"clip arrays: missing '{k}'")
        fr = np.asarray(d["frames"])
        if fr.ndim != 4 or fr.shape[-1] != 3 or fr.dtype != np.uint8:
            raise DataError(f"clip arrays: 'frames' must be (T, H, W, 3) uint8, got "
                            f"{fr.shape} {fr.dtype}")
        T, J = len(fr), len(JOINTS)
        shapes = {"joints3d": (T, J, 3), "joints2d": (T, J, 2), "visible": (T, J),
                  "angles": (T, J, 3), "root": (T, 3), "action_index": (T,), "phase": (T,),
                  "stage": (T,), "camera_K": (T, 3, 3), "camera_R": (T, 3, 3),
                  "camera_t": (T, 3), "camera_size": (2,)}
        for k, shp in shapes.items():
            if np.shape(d[k]) != shp:
                raise DataError(f"clip arrays: '{k}' has shape {np.shape(d[k])}, expected {shp}")
        try:
            info = json.loads(bytes(np.asarray(d["info_json"], dtype=np.uint8)).decode())
            segments, fps, meta = info["segments"], info["fps"], info["meta"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise DataError(f"clip arrays: 'info_json' unreadable ({e})") from None
        if not isinstance(segments, list) or not isinstance(meta, dict):
            raise DataError("clip arrays: 'info_json' has no segment list / meta mapping")
        cam = Camera.from_arrays({k[7:]: v for k, v in d.items() if k.startswith("camera_")})
        props = {k[5:]: v for k, v in d.items() if k.startswith("prop_")}
        return cls(*(np.asarray(d[k]) for k in ("frames", "joints3d", "joints2d", "visible",
                                                "angles", "root", "action_index", "phase",
                                                "stage")),
                   segments=segments, fps=int(fps), camera=cam, props=props, meta=meta)


# ---- timeline -------------------------------------------------------------------------

def _pick_actions(cfg: MotionConfig, rng: np.random.Generator) -> list[str]:
    if cfg.combinations:
        return list(cfg.combinations[int(rng.integers(len(cfg.combinations)))])
    banned = {tuple(c) for c in cfg.exclude_combinations}
    for _ in range(200):
        seq: list[str] = []
        for _ in range(cfg.segments):
            pool = [a for a in cfg.actions if not seq or a != seq[-1]] or list(cfg.actions)
            seq.append(pool[int(rng.integers(len(pool)))])
        if tuple(seq) not in banned:
            return seq
    raise ConfigError("'exclude_combinations': every combination of 'actions' is excluded")


def _timeline(cfg: MotionConfig, rng: np.random.Generator, names: list[str], T: int,
              N: int | None = None):
    """Frame spans: [('idle', s, e), ('action', s, e, name, params), ('transition', s, e), ...],
    planned for T frames; the final idle hold runs on to frame N (default T)."""
    fps = cfg.fps
    specs = [ACTIONS[n] for n in names]
    params = [s.sample_params(rng, cfg.amplitude_jitter) for s in specs]
    for p in params:
        p["skew"] = float(rng.uniform(*cfg.phase_jitter))
        p["tempo"] = float(rng.uniform(*cfg.tempo_jitter))
    durs = [rng.uniform(*s.duration) / p["tempo"] for s, p in zip(specs, params)]
    idle = rng.uniform(*cfg.idle_seconds)
    trans = [rng.uniform(*cfg.transition_seconds) for _ in names[1:]]
    need = idle + sum(durs) + sum(trans) + 0.2  # 0.2 s idle at least at the end
    scale = min(1.0, T / fps / need)
    frames = [max(4, int(round(d * scale * fps))) for d in durs]
    tframes = [max(1, int(round(d * scale * fps))) for d in trans]
    pre = int(round(idle * scale * fps))
    total = pre + sum(frames) + sum(tframes)
    if total > T:  # rounding up tiny segments: take it from the idle, then the longest parts
        pre = max(0, pre - (total - T))
        total = pre + sum(frames) + sum(tframes)
        while total > T:
            if max(frames) > 3 or not tframes or max(tframes) <= 1:
                k = int(np.argmax(frames))
                frames[k] -= 1
            else:
                tframes[int(np.argmax(tframes))] -= 1
            total -= 1
    spans = [("idle", 0, pre)]
    t = pre
    for i, (n, f) in enumerate(zip(names, frames)):
        spans.append(("action", t, t + f, n, params[i]))
        t += f
        if i < len(tframes):
            spans.append(("transition", t, t + tframes[i]))
            t += tframes[i]
    spans.append(("idle", t, T if N is None else max(N, T)))
    return spans


def _warp(u: np.ndarray, skew: float) -> np.ndarray:
    return u + skew * u * (1 - u)


def _compose(spans, T: int):
    """Angles (T, J, 3), body-frame root offsets (T, 3), action index, phase, stage, segments."""
    J = len(JOINTS)
    angles = np.zeros((T, J, 3))
    root = np.zeros((T, 3))
    action_index = np.full(T, -1, np.int64)
    phase = np.full(T, -1.0)
    stage = np.full(T, -1, np.int64)
    segments = []
    ends: list[tuple] = []  # (start pose, end pose) per action
    for sp in spans:
        if sp[0] != "action":
            continue
        _, s, e, name, params = sp
        spec = ACTIONS[name]
        n = e - s
        u = np.arange(n) / max(n - 1, 1)
        ph = _warp(u, params["skew"])
        a, r = spec.pose(ph, params)
        angles[s:e], root[s:e] = a, r
        action_index[s:e] = ACTION_NAMES.index(name)
        phase[s:e] = ph
        stage[s:e] = spec.stage_of(ph)
        apex = s + int(np.argmin(np.abs(ph - spec.apex_phase)))
        segments.append({"action": name, "start": int(s), "end": int(e), "apex_frame": apex,
                         "params": {k2: (float(v) if isinstance(v, float) else v)
                                    for k2, v in params.items()},
                         "stage_names": list(spec.stage_names)})
        ends.append(((a[0], r[0]), (a[-1], r[-1])))
    # idle holds and transitions
    ai = 0
    for sp in spans:
        kind, s, e = sp[:3]
        if kind == "action":
            ai += 1
            continue
        if e <= s:
            continue
        if kind == "idle":
            (pa, pr) = ends[0][0] if ai == 0 else ends[ai - 1][1]
            angles[s:e], root[s:e] = pa, pr
        else:  # transition: from the previous action's end to the next one's start
            (a0, r0), (a1, r1) = ends[ai - 1][1], ends[ai][0]
            w = ease((np.arange(e - s) + 1) / (e - s + 1))
            angles[s:e] = a0 + (a1 - a0) * w[:, None, None]
            root[s:e] = r0 + (r1 - r0) * w[:, None]
    return angles, root, action_index, phase, stage, segments


def _idle_sway(T: int, fps: int, action_index: np.ndarray, rng: np.random.Generator
               ) -> np.ndarray:
    """Small breathing/balance motion outside actions (T, J, 3), faded in and out."""
    sway = np.zeros((T, len(JOINTS), 3))
    t = np.arange(T)
    w = (action_index < 0).astype(np.float64)
    k = np.ones(7) / 7
    w = np.convolve(np.pad(w, 3, mode="edge"), k, mode="valid") * (action_index < 0)
    f1, f2 = rng.uniform(0.15, 0.35, 2)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    b = np.sin(2 * np.pi * f1 * t / fps + p1)
    c = np.sin(2 * np.pi * f2 * t / fps + p2)
    sway[:, JOINT_INDEX["spine"], 0] = 0.03 * b * w
    sway[:, JOINT_INDEX["neck"], 1] = 0.1 * c * w
    sway[:, JOINT_INDEX["left_shoulder"], 2] = 0.04 * b * w
    sway[:, JOINT_INDEX["right_shoulder"], 2] = -0.04 * b * w
    return sway


def place_person(angles: np.ndarray, root_offset: np.ndarray, body: Body, yaw: float,
                 position: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """World joints (T, J, 3) and pelvis positions (T, 3): forward kinematics in the body frame,
    grounded so the lowest foot point (toe or heel) is at height lift = root_offset[:, 1], then
    turned by `yaw` (rad, about +y) and moved to `position` (x, z) on the floor."""
    r0 = root_offset.copy()
    r0[:, 1] = 0.0
    X = forward_kinematics(angles, r0, body)
    ah = body.lengths()["ankle"]
    feet = np.concatenate([X[:, [JOINT_INDEX["left_toe"], JOINT_INDEX["right_toe"]], 1],
                           X[:, [JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]], 1] - ah],
                          axis=1)
    X[..., 1] += (root_offset[:, 1] - feet.min(1))[:, None]
    c, s = np.cos(yaw), np.sin(yaw)
    Ry = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    X = X @ Ry.T
    X[..., 0] += position[0]
    X[..., 2] += position[1]
    return X, X[:, JOINT_INDEX["pelvis"]].copy()


# ---- the clip --------------------------------------------------------------------------

def _person_motion(cfg, rng, names, T, N):
    """The timeline planned for T frames, simulated for N >= T (the end hold continues)."""
    spans = _timeline(cfg, rng, names, T, N)
    angles, root, ai, ph, st, segs = _compose(spans, N)
    angles = clip_to_limits(angles + _idle_sway(N, cfg.fps, ai, rng))
    return angles, root, ai, ph, st, segs


def _ball_track(joints: np.ndarray, segs: list[dict], fps: int, T: int) -> np.ndarray | None:
    """Ball in the throwing hand until release (apex frame), then ballistic with the hand's
    velocity at release, bouncing to rest on the floor."""
    throws = [s for s in segs if s["action"] == "throw"]
    if not throws:
        return None
    ball = np.full((T, 3), np.nan)
    r = 0.11
    for k, s in enumerate(throws):
        hand = JOINT_INDEX["right_wrist" if s["params"].get("side", 1) > 0 else "left_wrist"]
        elbow = JOINT_INDEX["right_elbow" if s["params"].get("side", 1) > 0 else "left_elbow"]
        d = joints[:, hand] - joints[:, elbow]
        held = joints[:, hand] + r * d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
        start = 0 if k == 0 else s["start"]
        a = s["apex_frame"]
        ball[start:a + 1] = held[start:a + 1]
        v = (held[min(a + 1, T - 1)] - held[max(a - 1, 0)]) / (2 / fps) * 1.5
        p = held[a].copy()
        for t in range(a + 1, T):
            v[1] -= 9.81 / fps
            p = p + v / fps
            if p[1] < r:
                p[1] = r
                v = np.array([v[0] * 0.6, -v[1] * 0.4, v[2] * 0.6])
            ball[t] = p
    return ball


def _chair(segs: list[dict], joints: np.ndarray, body: Body, yaw: float) -> Occluder | None:
    sits = [s for s in segs if s["action"] in ("sit_down", "stand_up")]
    if not sits:
        return None
    s = sits[0]
    t = s["end"] - 1 if s["action"] == "sit_down" else s["start"]
    hips = joints[t, [JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]]].mean(0)
    seat = max(0.2, hips[1] - 0.07 * body.height / 1.75)
    c, sn = np.cos(yaw), np.sin(yaw)
    back = np.array([-sn, 0.0, -c]) * 0.05
    return Occluder("box", (hips[0] + back[0], 0.0, hips[2] + back[2]), (0.45, seat, 0.45),
                    (110, 80, 55))


def _light(rng: np.random.Generator, spread_deg: float) -> np.ndarray:
    """The default light direction (camera coordinates) turned by up to `spread_deg` about the
    image axes."""
    ax, ay = np.radians(rng.uniform(-spread_deg, spread_deg, 2))
    base = np.array([-0.4, -0.7, -0.55])
    Rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    Ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    v = Ry @ Rx @ base
    return v / np.linalg.norm(v)


def _far_shift(camera: Camera, yaw: float, pitch: float, zoom: np.ndarray) -> np.ndarray:
    """(T,) horizontal image motion (px, at zoom 1) of a point at infinity in the unpanned
    viewing direction: how far a distant background moves as the camera pans."""
    view = -np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    far = camera.position + 1e6 * view
    u = project(far[:, None], camera)[:, 0, 0]
    return (u - camera.size[0] / 2) / zoom


def generate_clip(cfg: MotionConfig, seed: int, actions: list[str] | None = None,
                  tail_frames: int = 0) -> Clip:
    """One clip, deterministic in (cfg, seed) whatever the global RNG state. `actions` fixes the
    action sequence (else drawn from the config).

    `tail_frames` > 0 keeps simulating the scene for that many frames after the clip's
    `cfg.n_frames`: the timeline, camera path and every random draw are those of the plain clip
    (its frames are the first `cfg.n_frames`, bit for bit), and the continuation is rendered as
    the rest of the clip is: the person holds the last pose with the idle sway, distractors
    and the ball go on, the camera keeps panning and zooming, each frame gets fresh sensor
    noise. (Padding a clip by repeating its last frame instead makes exact copies: no noise,
    no camera motion.)

    Speed (measured, one core, default config, 96 px, 20 clips of 100 frames, on a shared and
    loaded 2-core machine): 410-540 frames/s for the whole clip (motion, background, rendering,
    noise), 1,180-1,410 frames/s for `render` alone (shared/motion/README.md has the command)."""
    if actions is not None:
        for a in actions:
            if a not in ACTIONS:
                raise ConfigError(f"'actions': unknown action {a!r} "
                                  f"(known: {', '.join(ACTION_NAMES)})")
        if not actions:
            raise ConfigError("'actions': empty")
    if isinstance(tail_frames, bool) or not isinstance(tail_frames, (int, np.integer)) \
            or tail_frames < 0:
        raise ConfigError(f"'tail_frames': expected an integer >= 0, got {tail_frames!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed) & 0xFFFFFFFF,
                                                        int(seed) & 0xFFFFFFFF]))
    T, S, fps = cfg.n_frames, cfg.image_size, cfg.fps
    N = T + int(tail_frames)  # frames simulated; the timeline and camera are planned for T
    names = list(actions) if actions is not None else _pick_actions(cfg, rng)

    body = Body.sample(rng, cfg.height_range, cfg.proportion_range)
    angles, root_off, ai, ph, st, segs = _person_motion(cfg, rng, names, T, N)
    pos = tuple(rng.uniform(*cfg.person_offset, size=2))
    joints, pelvis = place_person(angles, root_off, body, 0.0, pos)
    hl = int(round(cfg.highlight_seconds * fps))
    for s in segs:
        s["highlight_start"] = max(s["start"], s["apex_frame"] - hl)
        s["highlight_end"] = min(s["end"], s["apex_frame"] + hl + 1)

    # camera: orbit the body centre, pan about its own axis, zoom by focal length
    yaw = np.radians(rng.uniform(*cfg.camera_yaw_deg))
    pitch = np.radians(rng.uniform(*cfg.camera_pitch_deg))
    dist = rng.uniform(*cfg.camera_distance)
    fov = rng.uniform(*cfg.camera_fov_deg)
    pan_speed = np.radians(rng.uniform(*cfg.camera_pan_speed)) * rng.choice([-1, 1])
    zoom_speed = rng.uniform(*cfg.camera_zoom_speed) * rng.choice([-1, 1])
    tsec = (np.arange(N) - (T - 1) / 2) / fps
    pan = pan_speed * tsec
    zoom = 1 + zoom_speed * tsec
    target = np.array([pos[0], 0.55 * body.height, pos[1]])
    fov_t = 2 * np.degrees(np.arctan(np.tan(np.radians(fov) / 2) / zoom))
    camera = orbit_camera(np.broadcast_to(target, (N, 3)), yaw, pitch, dist, fov_t, (S, S), pan)

    # distractors: other people behind and to the side, doing other actions
    people = []
    n_dis = int(rng.integers(cfg.n_distractors[0], cfg.n_distractors[1] + 1))
    fwd = -np.array([np.sin(yaw), 0, np.cos(yaw)])  # camera looking direction (horizontal)
    side = np.array([fwd[2], 0, -fwd[0]])
    for _ in range(n_dis):
        others = [a for a in cfg.actions if a not in names] or list(cfg.actions)
        dcfg = dataclasses.replace(cfg, segments=1, combinations=[], exclude_combinations=[])
        dname = others[int(rng.integers(len(others)))]
        dbody = Body.sample(rng, (cfg.height_range[0] * 0.9, cfg.height_range[1]),
                            cfg.proportion_range)
        da, dr, *_ = _person_motion(dcfg, rng, [dname], T, N)
        p3 = np.array([pos[0], 0, pos[1]]) + fwd * rng.uniform(2.0, 5.0) \
            + side * rng.uniform(0.8, 2.2) * rng.choice([-1, 1])
        dj, _ = place_person(da, dr, dbody, rng.uniform(-np.pi, np.pi), (p3[0], p3[2]))
        app = Appearance.sample(rng, cfg.clothing_hue, cfg.clothing_saturation,
                                cfg.clothing_value, dbody.height, dbody.girth)
        people.append((dj, app))

    # props and occluders
    props: dict[str, np.ndarray] = {}
    ball = _ball_track(joints, segs, fps, N)
    if ball is not None:
        props["ball"] = ball
    chair = _chair(segs, joints, body, 0.0)
    if chair is not None:
        props["chair"] = np.array([[chair.position[0], chair.size[1], chair.position[2]]])
    occluders = []
    if rng.random() < cfg.occluder_prob:
        frac = rng.uniform(0.35, 0.6)
        cam0 = camera.position[T // 2]
        c = cam0 + frac * (target - cam0)
        lateral = side * rng.uniform(-0.6, 0.6)
        col = tuple(int(v) for v in rng.integers(40, 200, 3))
        if rng.random() < 0.5:
            occluders.append(Occluder("pole", (c[0] + lateral[0], 0.0, c[2] + lateral[2]),
                                      (rng.uniform(0.04, 0.1), 3.5), col))
        else:
            occluders.append(Occluder("box", (c[0] + lateral[0], 0.0, c[2] + lateral[2]),
                                      (rng.uniform(0.5, 1.0), rng.uniform(0.4, 0.9),
                                       rng.uniform(0.3, 0.6)), col))

    # background, rendering, sensor noise
    fam = int(cfg.background_families[int(rng.integers(len(cfg.background_families)))])
    f0 = 0.5 * S / np.tan(np.radians(fov) / 2)  # the focal length at zoom 1, pan 0
    horizon = S / 2 - f0 * np.tan(pitch)
    canvas = make_background(rng, fam, (S, S), horizon, plain=cfg.background == "plain")
    bg = background_frames(canvas, (S, S), -_far_shift(camera, yaw, pitch, zoom), zoom)
    app = Appearance.sample(rng, cfg.clothing_hue, cfg.clothing_saturation, cfg.clothing_value,
                            body.height, body.girth)
    light = _light(rng, cfg.light_spread_deg)
    frames = render(joints, camera, app, (S, S), background=bg, people=people, balls=ball,
                    boxes=[chair] if chair is not None else [], occluders=occluders, light=light)
    add_sensor_noise(frames, rng, rng.uniform(*cfg.noise_std), rng.random() < cfg.blur_prob,
                     rng.uniform(*cfg.exposure))

    joints2d = project(joints, camera)
    inside = np.all((joints2d >= 0) & (joints2d < S), axis=-1) & np.all(np.isfinite(joints2d), -1)
    visible = inside & ~self_occluded(joints, camera, body.height, body.girth)
    if occluders:
        for t in range(N):
            m = occluder_mask(occluders, camera, t)
            ij = np.clip(np.floor(joints2d[t]).astype(int), 0, S - 1)
            visible[t] &= ~m[ij[:, 1], ij[:, 0]]
    meta = {"config_hash": cfg.hash(), "seed": int(seed), "config_seed": int(cfg.seed),
            "version": MOTION_VERSION, "body": dataclasses.asdict(body),
            "appearance": {k: v for k, v in dataclasses.asdict(app).items()},
            "background_family": fam, "plain_background": cfg.background == "plain",
            "camera": {"yaw_deg": float(np.degrees(yaw)), "pitch_deg": float(np.degrees(pitch)),
                       "distance": float(dist), "fov_deg": float(fov),
                       "pan_deg_per_s": float(np.degrees(pan_speed)),
                       "zoom_per_s": float(zoom_speed)},
            "n_distractors": n_dis, "occluders": [o.kind for o in occluders]}
    meta = json.loads(json.dumps(meta))  # plain JSON types, as a cached clip reads back
    return Clip(frames, joints.astype(np.float32), np.nan_to_num(joints2d, nan=-1.0)
                .astype(np.float32), visible, angles.astype(np.float32),
                pelvis.astype(np.float32), ai, ph, st, segs, fps, camera, props, meta)


# ---- datasets --------------------------------------------------------------------------

class MotionDataset:
    """`n` clips of a config, loaded lazily (`len`, `[i]`, iteration). Cached clips live as one
    `.npz` each in a `shared.cache` directory keyed by (config, n, seed, MOTION_VERSION); without
    a cache each access generates the clip again (deterministically)."""

    def __init__(self, cfg: MotionConfig, n: int, seed: int, root: Path | None = None):
        self.cfg, self.n, self.seed, self.root = cfg, n, seed, root

    def __len__(self) -> int:
        return self.n

    def clip_seed(self, i: int) -> int:
        return int(np.random.SeedSequence([int(self.seed) & 0xFFFFFFFF, i]).generate_state(1)[0])

    def __getitem__(self, i: int) -> Clip:
        if not -self.n <= i < self.n:
            raise IndexError(i)
        i %= self.n
        if self.root is not None:
            path = self.root / f"clip_{i:06d}.npz"
            try:
                with np.load(path, allow_pickle=False) as z:
                    return Clip.from_arrays({k: z[k] for k in z.files})
            except Exception:  # noqa: BLE001 - a missing or corrupt entry is regenerated
                pass
        return generate_clip(self.cfg, self.clip_seed(i))

    def __iter__(self):
        for i in range(self.n):
            yield self[i]


def generate_dataset(cfg: MotionConfig, n: int, seed: int, *, cache: bool = True
                     ) -> MotionDataset:
    """`n` clips (a lazy `MotionDataset`); with `cache`, generated once (with a progress bar)
    into `shared.cache`, keyed by the config, n, seed and MOTION_VERSION."""
    if n < 1:
        raise ConfigError(f"'n': {n} clips; need at least 1")
    ds = MotionDataset(cfg, n, seed)
    if not cache:
        return ds
    from shared.cache import cached_dir
    from shared.log import progress

    def build(tmp: Path) -> None:
        for i in progress(range(n), desc="motion clips", unit="clip"):
            with open(tmp / f"clip_{i:06d}.npz", "wb") as f:
                np.savez(f, **ds[i].arrays())

    ds.root = cached_dir("motion", {"config": to_dict(cfg), "n": n, "seed": seed}, build,
                         version=MOTION_VERSION)
    return ds
