"""A hand-built skeleton with known joint angles (the reference posecodes are checked against)."""

from __future__ import annotations

import numpy as np

NAMES = ["pelvis", "spine", "neck", "head", "left_shoulder", "right_shoulder", "left_elbow",
         "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
         "right_knee", "left_ankle", "right_ankle", "left_toe", "right_toe"]


def pose(knee_flex=(0.0, 0.0), elbow_flex=(0.0, 0.0), lift=0.0, yaw=0.0, arm_raise=(0.0, 0.0)):
    """(18, 3) joints of a person facing +z (left = +x) with the given knee / elbow flexion
    (degrees, shin / forearm rotated backward / forward), shoulder abduction `arm_raise`
    (degrees from hanging), lifted by `lift` metres, then turned by `yaw` degrees about y."""
    P = {}
    P["pelvis"] = np.array([0.0, 0.95, 0.0])
    P["spine"] = P["pelvis"] + [0, 0.25, 0]
    P["neck"] = P["pelvis"] + [0, 0.55, 0]
    P["head"] = P["neck"] + [0, 0.2, 0]
    for s, sx, kf, ef, ar in (("left", 1, knee_flex[0], elbow_flex[0], arm_raise[0]),
                              ("right", -1, knee_flex[1], elbow_flex[1], arm_raise[1])):
        hip = P["pelvis"] + [0.1 * sx, 0, 0]
        knee = hip + [0, -0.45, 0]
        f = np.radians(kf)
        ankle = knee + 0.45 * np.array([0, -np.cos(f), -np.sin(f)])
        P[f"{s}_hip"], P[f"{s}_knee"], P[f"{s}_ankle"] = hip, knee, ankle
        P[f"{s}_toe"] = ankle + [0, -0.05, 0.12]
        sh = P["neck"] + [0.18 * sx, -0.05, 0]
        a = np.radians(ar)
        elbow = sh + 0.3 * np.array([sx * np.sin(a), -np.cos(a), 0])
        upper = (elbow - sh) / 0.3
        g = np.radians(ef)  # forearm bends forward (+z) by ef degrees from the upper arm line
        wrist = elbow + 0.28 * (np.cos(g) * upper + np.sin(g) * np.array([0, 0, 1.0]))
        P[f"{s}_shoulder"], P[f"{s}_elbow"], P[f"{s}_wrist"] = sh, elbow, wrist
    j = np.stack([P[n] for n in NAMES]) + [0, lift, 0]
    # the ankles stand 0.05 m above the ground when lift = 0 (toes touch it)
    j[:, 1] -= 0.05
    c, s_ = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    rot = np.array([[c, 0, s_], [0, 1, 0], [-s_, 0, c]])
    return j @ rot.T
