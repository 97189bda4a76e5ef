"""Synthetic human-motion video with exact ground truth: a 3D skeleton with joint limits and
forward kinematics, parametric actions with a defined apex, an OpenCV renderer (shaded limbs,
textured backgrounds, distractor people, occluders, camera pan/zoom, sensor noise) and seeded,
cached datasets.

    >>> from shared.motion import MotionConfig, generate_clip, ACTIONS
    >>> cfg = MotionConfig(image_size=32, fps=10, clip_seconds=2.0)
    >>> clip = generate_clip(cfg, seed=0, actions=["squat"])
    >>> clip.frames.shape, clip.joints2d.shape
    ((20, 32, 32, 3), (20, 18, 2))
    >>> seg = clip.segments[0]
    >>> seg["action"], seg["start"] <= seg["apex_frame"] < seg["end"]
    ('squat', True)
    >>> int(clip.joints3d[:, 0, 1].argmin()) == seg["apex_frame"]  # pelvis lowest at the apex
    True

Modules: `skeleton` (JOINTS, PARENTS, Body, forward_kinematics, JOINT_LIMITS), `actions`
(ACTIONS: ActionSpec per action), `camera` (Camera, project), `render` (render, Appearance,
backgrounds), `generate` (MotionConfig, Clip, generate_clip, generate_dataset).
"""

from shared.motion.actions import ACTIONS, NEUTRAL, ActionSpec, neutral_pose
from shared.motion.camera import Camera, orbit_camera, project
from shared.motion.generate import (
                                    ACTION_NAMES,
                                    MOTION_VERSION,
                                    Clip,
                                    MotionConfig,
                                    MotionDataset,
                                    generate_clip,
                                    generate_dataset,
                                    place_person,
)
from shared.motion.render import BACKGROUND_FAMILIES, Appearance, Occluder, make_background, render
from shared.motion.skeleton import (
                                    JOINT_INDEX,
                                    JOINT_LIMITS,
                                    JOINTS,
                                    PARENTS,
                                    Body,
                                    clip_to_limits,
                                    euler_to_matrix,
                                    forward_kinematics,
                                    mirror_pose,
)

__all__ = ["ACTIONS", "ACTION_NAMES", "ActionSpec", "Appearance", "BACKGROUND_FAMILIES", "Body",
           "Camera", "Clip", "JOINTS", "JOINT_INDEX", "JOINT_LIMITS", "MOTION_VERSION",
           "MotionConfig", "MotionDataset", "NEUTRAL", "Occluder", "PARENTS", "clip_to_limits",
           "euler_to_matrix", "forward_kinematics", "generate_clip", "generate_dataset",
           "make_background", "mirror_pose", "neutral_pose", "orbit_camera", "place_person",
           "project", "render"]
