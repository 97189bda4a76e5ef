"""Parametric actions: each a function of the action phase in [0, 1] with a defined apex.

Most actions are key poses interpolated with a cosine ease (zero velocity at every key), so
every interpolated angle moves monotonically between keys and stays inside the joint limits when
the keys do; an action's apex is a key, which makes the apex an exact extremum (lowest pelvis of
a squat, straightest arm of a punch, highest foot of a kick...). Cyclic actions (wave, arm
circles) are closed-form. `amplitude` scales every key's deviation from the neutral stance.

Asymmetric actions are authored for the right side; `side = -1` mirrors them exactly
(`skeleton.mirror_pose`). Time-order pairs are one motion played forwards and backwards:
`stand_up.pose(p) == sit_down.pose(1 - p)` and `arm_circle_ccw.pose(p) ==
arm_circle_cw.pose(1 - p)`, so they differ only in time order (not separable from the first
frames: `early_separable = False`).

"cw" arm circles are forward circles (the arm goes forward over the top), clockwise as seen
from the person's right side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from shared.motion.skeleton import JOINT_INDEX, JOINTS, clip_to_limits, mirror_pose

__all__ = ["ActionSpec", "ACTIONS", "NEUTRAL", "neutral_pose", "keyframes", "bump"]

J = len(JOINTS)
_NEUTRAL = {"left_shoulder": (0, 0, 0.12), "right_shoulder": (0, 0, -0.12),
            "left_elbow": (-0.15, 0, 0), "right_elbow": (-0.15, 0, 0)}


def _pose_array(d: dict[str, tuple[float, float, float]]) -> np.ndarray:
    a = np.zeros((J, 3))
    for name, v in {**_NEUTRAL, **d}.items():
        a[JOINT_INDEX[name]] = v
    return a


NEUTRAL: np.ndarray = _pose_array({})  # (J, 3) the relaxed standing pose


def neutral_pose(T: int) -> tuple[np.ndarray, np.ndarray]:
    """(angles (T, J, 3), root offset (T, 3)) of the relaxed standing pose."""
    return np.broadcast_to(NEUTRAL, (T, J, 3)).copy(), np.zeros((T, 3))


def ease(u: np.ndarray) -> np.ndarray:
    """Cosine ease 0 -> 1 on [0, 1] (clipped outside), zero slope at both ends."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0.0, 1.0))


def bump(p: np.ndarray, a: float, apex: float, b: float) -> np.ndarray:
    """0 outside (a, b), rising with a cosine ease to exactly 1 at `apex`, falling back."""
    up = ease((p - a) / (apex - a))
    down = 1 - ease((p - apex) / (b - apex))
    return np.where(p <= apex, up, down)


def keyframes(phase: np.ndarray, keys: list[tuple], amplitude: float = 1.0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate key poses. `keys`: [(phase, {joint: (x, y, z)}, (dx, dz)), ...] sorted by
    phase, joints not named take the neutral angles. Each key's deviation from neutral is scaled
    by `amplitude`, then clipped to the joint limits. Returns angles (T, J, 3), root (T, 3)
    with root[:, 1] = 0 (lift is added by the action)."""
    kp = np.array([k[0] for k in keys], dtype=np.float64)
    ka = np.stack([NEUTRAL + amplitude * (_pose_array(k[1]) - NEUTRAL) for k in keys])
    ka = clip_to_limits(ka)
    kr = np.array([[k[2][0], 0.0, k[2][1]] if len(k) > 2 else [0.0, 0.0, 0.0] for k in keys])
    kr = kr * amplitude
    p = np.asarray(phase, dtype=np.float64)
    i = np.clip(np.searchsorted(kp, p, side="right") - 1, 0, len(kp) - 2)
    u = (p - kp[i]) / (kp[i + 1] - kp[i])
    w = ease(u)
    angles = ka[i] * (1 - w)[:, None, None] + ka[i + 1] * w[:, None, None]
    root = kr[i] * (1 - w)[:, None] + kr[i + 1] * w[:, None]
    return angles, root


def _parabola(p: np.ndarray, a: float, apex: float, b: float) -> np.ndarray:
    """0 outside (a, b); a parabola through 0 at a and b with its top, 1, at apex (a = b - apex
    symmetric when apex is the midpoint)."""
    half = np.where(p <= apex, apex - a, b - apex)
    return np.clip(1 - ((p - apex) / half) ** 2, 0, None)


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """One parametric action.

    `pose(phase (T,), params) -> (angles (T, J, 3), root offset (T, 3))`: the root offset is
    (dx, lift, dz) in the body's frame; lift = height of the lowest foot point above the ground
    (0 unless airborne). `apex_phase`: where the apex is. `stage_starts`/`stage_ids`: the stage
    in force from each start phase on (indices into `stage_names`); for a time-reversed action
    they are read at 1 - phase, so the same pose carries the same (renamed) stage."""

    name: str
    duration: tuple[float, float]  # seconds at tempo 1
    fn: Callable[[np.ndarray, dict], tuple[np.ndarray, np.ndarray]]
    apex_phase: float
    early_separable: bool
    stage_names: tuple[str, ...]
    stage_starts: tuple[float, ...]
    stage_ids: tuple[int, ...]
    description: str  # a plain sentence: "a person squats down and stands back up"
    apex_description: str  # what happens at the apex
    amplitude_range: tuple[float, float] = (0.85, 1.0)
    sided: bool = False  # authored on the right; params["side"] = -1 mirrors it
    extra_params: tuple[tuple[str, float, float], ...] = ()  # (name, lo, hi) sampled uniformly
    props: tuple[str, ...] = ()  # objects rendered with it ("ball", "chair")
    time_reversed: bool = False  # stage_starts/stage_ids are read at 1 - phase

    def pose(self, phase: np.ndarray, params: dict | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        params = {**self.default_params(), **(params or {})}
        phase = np.clip(np.asarray(phase, dtype=np.float64), 0.0, 1.0)
        angles, root = self.fn(phase, params)
        if self.sided and params.get("side", 1) < 0:
            angles, root = mirror_pose(angles, root)
        return clip_to_limits(angles), root

    def default_params(self) -> dict:
        out = {"amplitude": 1.0, "side": 1}
        out.update({n: 0.5 * (lo + hi) for n, lo, hi in self.extra_params})
        return out

    def sample_params(self, rng: np.random.Generator,
                      amplitude_jitter: tuple[float, float] = (1.0, 1.0)) -> dict:
        """Amplitude = U(amplitude_range) x U(amplitude_jitter); side +-1 for sided actions;
        extra parameters uniform in their ranges."""
        amp = rng.uniform(*self.amplitude_range) * rng.uniform(*amplitude_jitter)
        out = {"amplitude": float(amp), "side": int(rng.choice([-1, 1])) if self.sided else 1}
        for n, lo, hi in self.extra_params:
            out[n] = float(rng.uniform(lo, hi))
        return out

    def stage_of(self, phase: np.ndarray) -> np.ndarray:
        """Stage index (into `stage_names`) per phase value; -1 where phase < 0 (no action)."""
        p = np.asarray(phase, dtype=np.float64)
        q = 1 - p if self.time_reversed else p
        k = np.clip(np.searchsorted(self.stage_starts, q, side="right") - 1, 0, None)
        return np.where(p < 0, -1, np.asarray(self.stage_ids)[k])


def _reverse(spec: ActionSpec, name: str, rename: dict[str, str], description: str,
             apex_description: str) -> ActionSpec:
    """The time reversal of `spec`: pose(p) = spec.pose(1 - p); stage(p) = spec's stage at
    1 - p, renamed by `rename` (descending -> rising)."""
    return dataclasses.replace(
        spec, name=name, fn=lambda p, q, f=spec.fn: f(1 - p, q), apex_phase=1 - spec.apex_phase,
        stage_names=tuple(rename.get(n, n) for n in spec.stage_names), time_reversed=True,
        description=description, apex_description=apex_description)


# ---- the actions ----------------------------------------------------------------------

def _squat(p, q):
    bottom = {"pelvis": (0.3, 0, 0), "spine": (0.45, 0, 0), "left_hip": (-1.9, 0, 0.1),
              "right_hip": (-1.9, 0, -0.1), "left_knee": (2.0, 0, 0), "right_knee": (2.0, 0, 0),
              "left_ankle": (-0.4, 0, 0), "right_ankle": (-0.4, 0, 0),
              "left_shoulder": (-1.4, 0, 0.1), "right_shoulder": (-1.4, 0, -0.1),
              "left_elbow": (-0.1, 0, 0), "right_elbow": (-0.1, 0, 0)}
    return keyframes(p, [(0, {}, (0, 0)), (0.12, {}, (0, 0)), (0.5, bottom, (0, -0.05)),
                         (0.88, {}, (0, 0)), (1, {}, (0, 0))], q["amplitude"])


def _jump(p, q):
    crouch = {"pelvis": (0.25, 0, 0), "spine": (0.35, 0, 0), "left_hip": (-1.5, 0, 0),
              "right_hip": (-1.5, 0, 0), "left_knee": (1.4, 0, 0), "right_knee": (1.4, 0, 0),
              "left_ankle": (-0.15, 0, 0), "right_ankle": (-0.15, 0, 0),
              "left_shoulder": (0.7, 0, 0.1), "right_shoulder": (0.7, 0, -0.1),
              "left_elbow": (-0.2, 0, 0), "right_elbow": (-0.2, 0, 0)}
    air = {"left_hip": (-0.1, 0, 0.05), "right_hip": (-0.1, 0, -0.05),
           "left_knee": (0.1, 0, 0), "right_knee": (0.1, 0, 0), "left_ankle": (0.5, 0, 0),
           "right_ankle": (0.5, 0, 0), "left_shoulder": (-1.8, 0, 0.2),
           "right_shoulder": (-1.8, 0, -0.2)}
    top = {"left_hip": (-0.15, 0, 0.05), "right_hip": (-0.15, 0, -0.05),
           "left_knee": (0.25, 0, 0), "right_knee": (0.25, 0, 0), "left_ankle": (0.7, 0, 0),
           "right_ankle": (0.7, 0, 0), "left_shoulder": (-2.6, 0, 0.25),
           "right_shoulder": (-2.6, 0, -0.25), "left_elbow": (-0.1, 0, 0),
           "right_elbow": (-0.1, 0, 0)}
    land = {"pelvis": (0.15, 0, 0), "spine": (0.25, 0, 0), "left_hip": (-1.05, 0, 0),
            "right_hip": (-1.05, 0, 0), "left_knee": (1.1, 0, 0), "right_knee": (1.1, 0, 0),
            "left_ankle": (-0.2, 0, 0), "right_ankle": (-0.2, 0, 0),
            "left_shoulder": (-0.8, 0, 0.15), "right_shoulder": (-0.8, 0, -0.15)}
    angles, root = keyframes(p, [(0, {}, (0, 0)), (0.08, {}, (0, 0)), (0.3, crouch, (0, 0)),
                                 (0.45, air, (0, 0)), (0.6, top, (0, 0)), (0.75, air, (0, 0)),
                                 (0.86, land, (0, 0)), (1, {}, (0, 0))], q["amplitude"])
    root[:, 1] = q["lift"] * q["amplitude"] * _parabola(p, 0.45, 0.6, 0.75)
    return angles, root


def _throw(p, q):
    wind = {"pelvis": (0, -0.25, 0), "spine": (0, -0.6, 0), "right_shoulder": (0.9, 0, -1.4),
            "right_elbow": (-1.7, 0, 0), "left_shoulder": (-1.0, 0, 0.3),
            "left_elbow": (-0.4, 0, 0), "right_knee": (0.3, 0, 0), "left_hip": (-0.4, 0, 0)}
    release = {"pelvis": (0.1, 0.2, 0), "spine": (0.3, 0.4, 0),
               "right_shoulder": (-2.4, 0, -0.3), "right_elbow": (-0.3, 0, 0),
               "left_shoulder": (0.3, 0, 0.3), "left_hip": (-0.3, 0, 0),
               "left_knee": (0.3, 0, 0)}
    follow = {"pelvis": (0.2, 0.3, 0), "spine": (0.5, 0.5, 0),
              "right_shoulder": (-1.2, 0, -0.2), "right_elbow": (-0.4, 0, 0),
              "left_shoulder": (0.4, 0, 0.2), "left_knee": (0.2, 0, 0)}
    return keyframes(p, [(0, {}, (0, 0)), (0.1, {}, (0, 0)), (0.4, wind, (0, -0.05)),
                         (0.6, release, (0, 0.1)), (0.78, follow, (0, 0.12)),
                         (1, {}, (0, 0.05))], q["amplitude"])


def _punch(p, q):
    guard = {"right_shoulder": (-0.5, 0, -0.2), "right_elbow": (-2.2, 0, 0),
             "left_shoulder": (-0.5, 0, 0.2), "left_elbow": (-2.2, 0, 0), "spine": (0.1, 0, 0),
             "left_knee": (0.15, 0, 0), "right_knee": (0.15, 0, 0),
             "left_hip": (-0.15, 0, 0), "right_hip": (-0.15, 0, 0)}
    hit = {**guard, "right_shoulder": (-1.55, 0, -0.1), "right_elbow": (0.0, 0, 0),
           "spine": (0.1, 0.35, 0)}
    return keyframes(p, [(0, {}, (0, 0)), (0.15, guard, (0, 0)), (0.45, hit, (0, 0.05)),
                         (0.72, guard, (0, 0)), (1, {}, (0, 0))], q["amplitude"])


def _wave(p, q):
    a = q["amplitude"]
    angles, root = keyframes(p, [(0, {}, (0, 0)), (0.05, {}, (0, 0)),
                                 (0.25, {"right_shoulder": (-0.2, 0, -2.4),
                                         "right_elbow": (-0.6, 0, 0)}, (0, 0)),
                                 (0.75, {"right_shoulder": (-0.2, 0, -2.4),
                                         "right_elbow": (-0.6, 0, 0)}, (0, 0)),
                                 (0.95, {}, (0, 0)), (1, {}, (0, 0))], a)
    env = ease((p - 0.2) / 0.1) * (1 - ease((p - 0.7) / 0.1))
    swing = np.cos(2 * np.pi * q["cycles"] / 0.5 * (p - 0.5))
    # a slight lift peaking mid-wave makes the middle swing the unique highest hand
    z = env * (0.3 * a * swing + 0.12 * bump(p, 0.25, 0.5, 0.75))
    angles[:, JOINT_INDEX["right_shoulder"], 2] -= z
    return angles, root


def _kick(p, q):
    chamber = {"right_hip": (-1.3, 0, 0), "right_knee": (1.9, 0, 0), "right_ankle": (0.3, 0, 0),
               "left_knee": (0.15, 0, 0), "spine": (-0.1, 0, 0),
               "left_shoulder": (-0.4, 0, 0.4), "right_shoulder": (-0.4, 0, -0.4),
               "left_elbow": (-1.5, 0, 0), "right_elbow": (-1.5, 0, 0)}
    ext = {**chamber, "right_hip": (-1.55, 0, 0), "right_knee": (0.15, 0, 0),
           "right_ankle": (0.5, 0, 0), "spine": (-0.3, 0, 0)}
    return keyframes(p, [(0, {}, (0, 0)), (0.1, {}, (0, 0)), (0.32, chamber, (0, 0)),
                         (0.5, ext, (0, 0)), (0.68, chamber, (0, 0)), (0.9, {}, (0, 0)),
                         (1, {}, (0, 0))], q["amplitude"])


def _sit_down(p, q):
    lower = {"pelvis": (0.5, 0, 0), "spine": (0.2, 0, 0), "left_hip": (-1.95, 0, 0.05),
             "right_hip": (-1.95, 0, -0.05), "left_knee": (1.5, 0, 0),
             "right_knee": (1.5, 0, 0), "left_ankle": (-0.05, 0, 0),
             "right_ankle": (-0.05, 0, 0), "left_shoulder": (-0.9, 0, 0.1),
             "right_shoulder": (-0.9, 0, -0.1)}
    seated = {"pelvis": (0.1, 0, 0), "spine": (0.05, 0, 0), "left_hip": (-1.65, 0, 0.05),
              "right_hip": (-1.65, 0, -0.05), "left_knee": (1.55, 0, 0),
              "right_knee": (1.55, 0, 0), "left_ankle": (0.1, 0, 0),
              "right_ankle": (0.1, 0, 0), "left_shoulder": (-0.3, 0, 0.1),
              "right_shoulder": (-0.3, 0, -0.1), "left_elbow": (-0.9, 0, 0),
              "right_elbow": (-0.9, 0, 0)}
    relaxed = {**seated, "spine": (-0.05, 0, 0), "neck": (0.05, 0, 0)}
    return keyframes(p, [(0, {}, (0, 0)), (0.1, {}, (0, 0)), (0.45, lower, (0, -0.15)),
                         (0.7, seated, (0, -0.25)), (1, relaxed, (0, -0.25))], q["amplitude"])


def _arm_circle_cw(p, q):
    a = q["amplitude"]
    raise_ = ease((p - 0.02) / 0.13) * (1 - ease((p - 0.85) / 0.13))
    circ = ease((p - 0.1) / 0.1) * (1 - ease((p - 0.8) / 0.1))
    # `cycles` full circles over the circling stage (0.15-0.85); top of the circle at p = 0.5
    theta = 2 * np.pi * q["cycles"] * (p - 0.5) / 0.7 + np.pi / 2
    angles, root = neutral_pose(len(p))
    r = 0.4 * a * circ
    li, ri = JOINT_INDEX["left_shoulder"], JOINT_INDEX["right_shoulder"]
    angles[:, li, 2] = 0.12 + (1.45 - 0.12) * raise_ + r * np.sin(theta)
    angles[:, li, 1] = r * np.cos(theta)
    angles[:, ri, 2] = -angles[:, li, 2]
    angles[:, ri, 1] = -angles[:, li, 1]
    elbows = [JOINT_INDEX["left_elbow"], JOINT_INDEX["right_elbow"]]
    angles[:, elbows, 0] = -0.15 * (1 - raise_)[:, None]
    return angles, root


def _bow(p, q):
    deep = {"pelvis": (0.9, 0, 0), "left_hip": (-0.9, 0, 0), "right_hip": (-0.9, 0, 0),
            "spine": (0.45, 0, 0), "neck": (0.2, 0, 0), "left_shoulder": (-0.6, 0, 0.05),
            "right_shoulder": (-0.6, 0, -0.05), "left_elbow": (-0.1, 0, 0),
            "right_elbow": (-0.1, 0, 0)}
    return keyframes(p, [(0, {}, (0, 0)), (0.15, {}, (0, 0)), (0.5, deep, (0, -0.03)),
                         (0.85, {}, (0, 0)), (1, {}, (0, 0))], q["amplitude"])


def _reach_up(p, q):
    top = {"left_shoulder": (-2.7, 0, 0.15), "right_shoulder": (-2.7, 0, -0.15),
           "left_elbow": (-0.05, 0, 0), "right_elbow": (-0.05, 0, 0), "neck": (-0.3, 0, 0),
           "left_ankle": (0.55, 0, 0), "right_ankle": (0.55, 0, 0)}
    return keyframes(p, [(0, {}, (0, 0)), (0.1, {}, (0, 0)), (0.5, top, (0, 0)),
                         (0.9, {}, (0, 0)), (1, {}, (0, 0))], q["amplitude"])


def _lunge(p, q):
    low = {"right_hip": (-1.3, 0, 0), "right_knee": (1.35, 0, 0), "right_ankle": (-0.05, 0, 0),
           "left_hip": (0.45, 0, 0), "left_knee": (1.0, 0, 0), "left_ankle": (-0.5, 0, 0),
           "spine": (0.05, 0, 0), "left_shoulder": (-0.1, 0, 0.35),
           "right_shoulder": (-0.1, 0, -0.35), "left_elbow": (-1.4, 0, 0),
           "right_elbow": (-1.4, 0, 0)}
    return keyframes(p, [(0, {}, (0, 0)), (0.1, {}, (0, 0)), (0.5, low, (0, 0.3)),
                         (0.9, {}, (0, 0)), (1, {}, (0, 0))], q["amplitude"])


def _jumping_jack(p, q):
    opened = {"left_shoulder": (0, 0, 2.8), "right_shoulder": (0, 0, -2.8),
              "left_elbow": (0, 0, 0), "right_elbow": (0, 0, 0), "left_hip": (0, 0, 0.4),
              "right_hip": (0, 0, -0.4), "left_ankle": (0.3, 0, 0), "right_ankle": (0.3, 0, 0)}
    angles, root = keyframes(p, [(0, {}, (0, 0)), (0.1, {}, (0, 0)), (0.5, opened, (0, 0)),
                                 (0.9, {}, (0, 0)), (1, {}, (0, 0))], q["amplitude"])
    root[:, 1] = q["lift"] * (_parabola(p, 0.15, 0.3, 0.45) + _parabola(p, 0.55, 0.7, 0.85))
    return angles, root


def _spec(name, duration, fn, apex, stages, starts, ids, desc, apex_desc, **kw) -> ActionSpec:
    return ActionSpec(name, duration, fn, apex, kw.pop("early_separable", True), tuple(stages),
                      tuple(starts), tuple(ids), desc, apex_desc, **kw)


_LIST = [
    _spec("squat", (1.6, 2.4), _squat, 0.5, ["standing", "descending", "bottom", "rising"],
          [0, 0.12, 0.42, 0.58, 0.88], [0, 1, 2, 3, 0],
          "a person squats down and stands back up", "the lowest point of the squat",
          amplitude_range=(0.7, 1.0)),
    _spec("jump", (1.4, 2.0), _jump, 0.6, ["standing", "crouching", "airborne", "landing"],
          [0, 0.08, 0.45, 0.75, 0.95], [0, 1, 2, 3, 0],
          "a person crouches and jumps straight up", "the top of the jump, feet off the ground",
          extra_params=(("lift", 0.15, 0.35),)),
    _spec("throw", (1.4, 2.0), _throw, 0.6,
          ["ready", "wind_up", "throwing", "release", "follow_through"],
          [0, 0.1, 0.4, 0.56, 0.64], [0, 1, 2, 3, 4],
          "a person throws a ball overhand", "the moment the ball leaves the hand",
          sided=True, props=("ball",)),
    _spec("punch", (0.9, 1.4), _punch, 0.45, ["guard", "extending", "extended", "retracting"],
          [0, 0.15, 0.4, 0.5, 0.85], [0, 1, 2, 3, 0],
          "a person throws a straight punch", "the arm fully extended", sided=True),
    _spec("wave", (1.8, 2.6), _wave, 0.5, ["raising", "waving", "lowering"],
          [0, 0.22, 0.75], [0, 1, 2], "a person waves a raised hand",
          "the hand at the top of the wave", sided=True,
          extra_params=(("cycles", 1.5, 2.5),)),
    _spec("kick", (1.2, 1.8), _kick, 0.5, ["standing", "chamber", "extended", "retracting"],
          [0, 0.1, 0.44, 0.56, 0.9], [0, 1, 2, 3, 0],
          "a person kicks forward with one leg", "the foot at its highest", sided=True),
    _spec("sit_down", (1.6, 2.4), _sit_down, 0.7, ["standing", "descending", "seated"],
          [0, 0.1, 0.7], [0, 1, 2], "a person sits down on a chair",
          "the moment of sitting down", early_separable=False, props=("chair",)),
    _spec("arm_circle_cw", (2.0, 3.0), _arm_circle_cw, 0.5, ["raising", "circling", "lowering"],
          [0, 0.15, 0.85], [0, 1, 2], "a person circles both arms forwards",
          "the arms at the top of a circle", early_separable=False,
          extra_params=(("cycles", 1.5, 2.5),)),
    _spec("bow", (1.4, 2.2), _bow, 0.5, ["upright", "bending", "deepest", "rising"],
          [0, 0.15, 0.42, 0.58, 0.85], [0, 1, 2, 3, 0],
          "a person bows forward from the hips", "the deepest point of the bow",
          amplitude_range=(0.7, 1.0)),
    _spec("reach_up", (1.4, 2.2), _reach_up, 0.5, ["raising", "top", "lowering"],
          [0, 0.42, 0.58], [0, 1, 2], "a person reaches up with both arms on tiptoe",
          "the hands at their highest"),
    _spec("lunge", (1.6, 2.4), _lunge, 0.5, ["standing", "lunging", "bottom", "rising"],
          [0, 0.1, 0.42, 0.58, 0.9], [0, 1, 2, 3, 0],
          "a person steps forward into a lunge", "the lowest point of the lunge", sided=True),
    _spec("jumping_jack", (1.0, 1.6), _jumping_jack, 0.5, ["closed", "opening", "open",
                                                           "closing"],
          [0, 0.1, 0.42, 0.58, 0.9], [0, 1, 2, 3, 0],
          "a person does a jumping jack", "arms overhead and legs apart",
          extra_params=(("lift", 0.05, 0.15),)),
]
_by_name = {s.name: s for s in _LIST}
_LIST.insert(7, _reverse(_by_name["sit_down"], "stand_up", {"descending": "rising"},
                         "a person stands up from a chair", "the moment of rising off the seat"))
_LIST.insert(9, _reverse(_by_name["arm_circle_cw"], "arm_circle_ccw",
                         {"raising": "lowering", "lowering": "raising"},
                         "a person circles both arms backwards",
                         "the arms at the top of a circle"))
ACTIONS: dict[str, ActionSpec] = {s.name: s for s in _LIST}
