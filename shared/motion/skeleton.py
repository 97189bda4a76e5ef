"""A 3D human skeleton: 18 joints, bone lengths from height and proportions, joint limits and
vectorised forward kinematics.

Coordinates are metres, y up; at yaw 0 the person faces +z, so their left is +x. Rotations are
Euler angles in radians, local to the parent, composed intrinsically X then Y then Z:
`R = Rx(a) @ Ry(b) @ Rz(c)` (scipy's `Rotation.from_euler("XYZ", ...)`). A joint's rotation turns
the bones to its children; the root (pelvis) rotation is the body's orientation.

Sign conventions in the rest pose (standing, arms hanging): a negative x angle swings a hanging
limb forward (shoulder and hip flexion, elbow flexion), a positive x angle at the knee bends it, a
positive x angle at the pelvis or spine leans the torso forward, +z at the left shoulder/hip
raises the limb sideways (abduction; -z on the right).
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["JOINTS", "PARENTS", "JOINT_INDEX", "JOINT_LIMITS", "Body", "euler_to_matrix",
           "forward_kinematics", "clip_to_limits", "mirror_pose", "LEFT_RIGHT"]

JOINTS: tuple[str, ...] = (
    "pelvis", "spine", "neck", "head",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_hip", "left_knee", "left_ankle",
    "right_hip", "right_knee", "right_ankle",
    "left_toe", "right_toe",
)
JOINT_INDEX: dict[str, int] = {n: i for i, n in enumerate(JOINTS)}
_P = JOINT_INDEX
PARENTS: tuple[int, ...] = (
    -1, _P["pelvis"], _P["spine"], _P["neck"],
    _P["neck"], _P["left_shoulder"], _P["left_elbow"],
    _P["neck"], _P["right_shoulder"], _P["right_elbow"],
    _P["pelvis"], _P["left_hip"], _P["left_knee"],
    _P["pelvis"], _P["right_hip"], _P["right_knee"],
    _P["left_ankle"], _P["right_ankle"],
)
# index of each joint's mirror image (left <-> right)
LEFT_RIGHT: tuple[int, ...] = tuple(
    _P[n.replace("left_", "right_")] if n.startswith("left_")
    else _P[n.replace("right_", "left_")] if n.startswith("right_") else i
    for i, n in enumerate(JOINTS))

_PI = np.pi
# (J, 3 axes, [min, max]) radians. Leaf joints (head, wrists, toes) move no bone: fixed at 0.
_LIMITS = {
    "pelvis": ((-0.8, 1.7), (-_PI, _PI), (-0.6, 0.6)),
    "spine": ((-0.6, 1.3), (-1.0, 1.0), (-0.6, 0.6)),
    "neck": ((-0.8, 0.9), (-1.2, 1.2), (-0.6, 0.6)),
    "head": ((0, 0), (0, 0), (0, 0)),
    "left_shoulder": ((-3.3, 1.3), (-1.7, 1.7), (-0.4, 3.2)),
    "left_elbow": ((-2.7, 0.0), (-1.6, 1.6), (0, 0)),
    "left_wrist": ((0, 0), (0, 0), (0, 0)),
    "left_hip": ((-2.4, 0.9), (-0.9, 0.9), (-0.4, 1.2)),
    "left_knee": ((0.0, 2.7), (0, 0), (0, 0)),
    "left_ankle": ((-0.6, 1.1), (-0.4, 0.4), (-0.3, 0.3)),
    "left_toe": ((0, 0), (0, 0), (0, 0)),
}


def _mirror_limits(lim):
    (x, y, z) = lim
    return (x, (-y[1], -y[0]), (-z[1], -z[0]))


JOINT_LIMITS: np.ndarray = np.array([
    _LIMITS[n] if n in _LIMITS else _mirror_limits(_LIMITS[n.replace("right_", "left_")])
    for n in JOINTS], dtype=np.float64)
JOINT_LIMITS.setflags(write=False)


@dataclasses.dataclass(frozen=True)
class Body:
    """A person's build: `height` (m, standing stature, head top to ground) and proportion
    factors (1 = average adult, after Drillis & Contini's segment ratios). Bone lengths are the
    ratios times the factors, rescaled so the stature is exactly `height`."""

    height: float = 1.75
    torso: float = 1.0  # pelvis -> neck length factor
    arm: float = 1.0  # upper arm + forearm
    leg: float = 1.0  # thigh + shin
    shoulder_width: float = 1.0
    hip_width: float = 1.0
    girth: float = 1.0  # limb thickness (rendering only)

    # segment lengths as fractions of stature (average adult)
    _R = dict(ankle=0.039, shin=0.246, thigh=0.245, lower_torso=0.14, upper_torso=0.15,
              head=0.11, head_radius=0.068, shoulder=0.11, shoulder_drop=0.02, upper_arm=0.186,
              forearm=0.146, hip=0.055, foot=0.12)

    @classmethod
    def sample(cls, rng: np.random.Generator, height_range: tuple[float, float] = (1.55, 1.95),
               proportion_range: tuple[float, float] = (0.9, 1.1)) -> Body:
        """A body with height ~ U(height_range) and each proportion factor ~ U(proportion_range)."""
        lo, hi = proportion_range
        f = rng.uniform(lo, hi, size=6)
        return cls(float(rng.uniform(*height_range)), *map(float, f))

    def lengths(self) -> dict[str, float]:
        """Named segment lengths (m)."""
        r = self._R
        raw = dict(r)
        for k in ("lower_torso", "upper_torso"):
            raw[k] = r[k] * self.torso
        for k in ("upper_arm", "forearm"):
            raw[k] = r[k] * self.arm
        for k in ("thigh", "shin"):
            raw[k] = r[k] * self.leg
        raw["shoulder"] = r["shoulder"] * self.shoulder_width
        raw["hip"] = r["hip"] * self.hip_width
        stature = (raw["ankle"] + raw["shin"] + raw["thigh"] + raw["lower_torso"]
                   + raw["upper_torso"] + raw["head"] + raw["head_radius"])
        s = self.height / stature
        return {k: v * s for k, v in raw.items()}

    def offsets(self) -> np.ndarray:
        """(J, 3) rest-pose offset of each joint from its parent, in the parent's frame."""
        L = self.lengths()
        o = np.zeros((len(JOINTS), 3))
        o[_P["spine"]] = (0, L["lower_torso"], 0)
        o[_P["neck"]] = (0, L["upper_torso"], 0)
        o[_P["head"]] = (0, L["head"], 0)
        for side, sx in (("left", 1.0), ("right", -1.0)):
            o[_P[f"{side}_shoulder"]] = (sx * L["shoulder"], -L["shoulder_drop"], 0)
            o[_P[f"{side}_elbow"]] = (0, -L["upper_arm"], 0)
            o[_P[f"{side}_wrist"]] = (0, -L["forearm"], 0)
            o[_P[f"{side}_hip"]] = (sx * L["hip"], 0, 0)
            o[_P[f"{side}_knee"]] = (0, -L["thigh"], 0)
            o[_P[f"{side}_ankle"]] = (0, -L["shin"], 0)
            o[_P[f"{side}_toe"]] = (0, -L["ankle"], L["foot"])
        return o

    def standing_root_height(self) -> float:
        """Pelvis height above the ground in the rest pose."""
        L = self.lengths()
        return L["ankle"] + L["shin"] + L["thigh"]


def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """(..., 3) Euler XYZ (intrinsic) -> (..., 3, 3) rotation matrices `Rx @ Ry @ Rz`."""
    a = np.asarray(angles, dtype=np.float64)
    cx, cy, cz = np.cos(a[..., 0]), np.cos(a[..., 1]), np.cos(a[..., 2])
    sx, sy, sz = np.sin(a[..., 0]), np.sin(a[..., 1]), np.sin(a[..., 2])
    R = np.empty(a.shape[:-1] + (3, 3))
    R[..., 0, 0] = cy * cz
    R[..., 0, 1] = -cy * sz
    R[..., 0, 2] = sy
    R[..., 1, 0] = cx * sz + sx * sy * cz
    R[..., 1, 1] = cx * cz - sx * sy * sz
    R[..., 1, 2] = -sx * cy
    R[..., 2, 0] = sx * sz - cx * sy * cz
    R[..., 2, 1] = sx * cz + cx * sy * sz
    R[..., 2, 2] = cx * cy
    return R


def forward_kinematics(angles: np.ndarray, root: np.ndarray, body: Body) -> np.ndarray:
    """Joint positions (T, J, 3) from local joint rotations `angles` (T, J, 3) and the pelvis
    position `root` (T, 3): p_j = p_parent + R_parent @ offset_j, R_j = R_parent @ Rloc_j.
    Vectorised over T (a loop over the 18 joints only)."""
    angles = np.asarray(angles, dtype=np.float64)
    root = np.asarray(root, dtype=np.float64)
    J = len(JOINTS)
    if angles.ndim != 3 or angles.shape[1:] != (J, 3):
        raise ValueError(f"angles must be (T, {J}, 3), got {angles.shape}")
    if root.shape != (angles.shape[0], 3):
        raise ValueError(f"root must be ({angles.shape[0]}, 3), got {root.shape}")
    local = euler_to_matrix(angles)  # (T, J, 3, 3)
    off = body.offsets()
    glob = np.empty_like(local)
    pos = np.empty(angles.shape)
    for j, p in enumerate(PARENTS):  # parents come before children
        if p < 0:
            glob[:, j] = local[:, j]
            pos[:, j] = root
        else:
            glob[:, j] = glob[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + glob[:, p] @ off[j]
    return pos


def clip_to_limits(angles: np.ndarray) -> np.ndarray:
    """`angles` (..., J, 3) clipped into JOINT_LIMITS (a copy)."""
    return np.clip(angles, JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1])


def mirror_pose(angles: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The left-right mirror image (reflection x -> -x) of a pose sequence: left and right joints
    swap, y and z rotations change sign, the root's x offset changes sign. Exact, since
    M Rx(a) Ry(b) Rz(c) M = Rx(a) Ry(-b) Rz(-c) for M = diag(-1, 1, 1)."""
    a = np.asarray(angles)[..., LEFT_RIGHT, :].copy()
    a[..., 1:] *= -1
    r = np.asarray(root).copy()
    r[..., 0] *= -1
    return a, r
