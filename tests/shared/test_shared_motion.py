"""shared.motion: forward kinematics against a slow chain of rotation matrices, joint limits,
the apex of every action as an extremum of the motion it names, time-order pairs, projection
against a closed form and OpenCV, exact per-frame ground truth, determinism, config errors and
out-of-family configs."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from shared.config import from_dict, load_config
from shared.errors import ConfigError
from shared.motion import (
    ACTION_NAMES,
    ACTIONS,
    JOINT_INDEX,
    JOINT_LIMITS,
    JOINTS,
    PARENTS,
    Appearance,
    Body,
    MotionConfig,
    clip_to_limits,
    forward_kinematics,
    generate_clip,
    generate_dataset,
    mirror_pose,
    orbit_camera,
    place_person,
    project,
    render,
)

J = JOINT_INDEX
SMALL = dict(image_size=32, fps=20, clip_seconds=3.0)


def small_cfg(**kw) -> MotionConfig:
    return MotionConfig(**{**SMALL, **kw})


# -- skeleton ------------------------------------------------------------------------------
def fk_reference(angles: np.ndarray, root: np.ndarray, body: Body) -> np.ndarray:
    """One frame at a time, one joint at a time: the product of 4x4 transforms from the root
    down the parent chain (scipy's intrinsic 'XYZ' Euler convention)."""
    off = body.offsets()
    out = np.zeros(angles.shape)
    for t in range(len(angles)):
        for j in range(len(JOINTS)):
            chain = []
            k = j
            while k >= 0:
                chain.append(k)
                k = PARENTS[k]
            M = np.eye(4)
            for k in reversed(chain):
                A = np.eye(4)
                A[:3, :3] = Rotation.from_euler("XYZ", angles[t, k]).as_matrix()
                A[:3, 3] = root[t] if PARENTS[k] < 0 else off[k]
                M = M @ A
            out[t, j] = M[:3, 3]
    return out


def test_skeleton_names_and_parents():
    need = ["pelvis", "spine", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
            "right_shoulder", "right_elbow", "right_wrist", "left_hip", "left_knee",
            "left_ankle", "right_hip", "right_knee", "right_ankle", "left_toe", "right_toe"]
    assert list(JOINTS[:len(need)]) == need and len(JOINTS) >= 17
    assert PARENTS[0] == -1 and all(0 <= p < j for j, p in enumerate(PARENTS) if j)
    assert JOINT_LIMITS.shape == (len(JOINTS), 3, 2)
    assert np.all(JOINT_LIMITS[..., 0] <= JOINT_LIMITS[..., 1])


def test_fk_matches_slow_reference():
    rng = np.random.default_rng(0)
    body = Body.sample(rng)
    angles = rng.uniform(-1.5, 1.5, (4, len(JOINTS), 3))
    root = rng.normal(size=(4, 3))
    np.testing.assert_allclose(forward_kinematics(angles, root, body),
                               fk_reference(angles, root, body), atol=1e-10)


def test_rest_pose_stands_on_the_floor_at_its_height():
    body = Body(height=1.8, leg=1.1, arm=0.9)
    X, _ = place_person(np.zeros((1, len(JOINTS), 3)), np.zeros((1, 3)), body, 0.0, (0, 0))
    head_top = X[0, J["head"], 1] + body.lengths()["head_radius"]
    assert head_top == pytest.approx(1.8) and X[0, J["left_toe"], 1] == pytest.approx(0)
    # facing +z: toes ahead of the ankles; the left side is +x
    assert X[0, J["left_toe"], 2] > X[0, J["left_ankle"], 2]
    assert X[0, J["left_shoulder"], 0] > 0 > X[0, J["right_shoulder"], 0]


def test_mirror_pose_reflects_the_body():
    rng = np.random.default_rng(1)
    a = clip_to_limits(rng.uniform(-1, 1, (3, len(JOINTS), 3)))
    r = rng.normal(size=(3, 3))
    body = Body()
    X = forward_kinematics(a, r, body)
    Xm = forward_kinematics(*mirror_pose(a, r), body)
    swap = [JOINTS.index(n.replace("left_", "R").replace("right_", "left_").replace("R",
                                                                                     "right_"))
            for n in JOINTS]
    np.testing.assert_allclose(Xm, X[:, swap] * [-1, 1, 1], atol=1e-10)


# -- clips: ground truth ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def clips():
    cfg = small_cfg(segments=2)
    return [generate_clip(cfg, s) for s in range(6)]


def test_bone_lengths_constant_and_limits_respected(clips):
    for c in clips:
        body = Body(**c.meta["body"])
        L = np.linalg.norm(body.offsets(), axis=1)
        for j, p in enumerate(PARENTS):
            if p >= 0:
                d = np.linalg.norm(c.joints3d[:, j] - c.joints3d[:, p], axis=1)
                np.testing.assert_allclose(d, L[j], atol=1e-4)
        assert np.all(c.angles >= JOINT_LIMITS[..., 0] - 1e-6)
        assert np.all(c.angles <= JOINT_LIMITS[..., 1] + 1e-6)
        # nothing sinks into the floor
        assert c.joints3d[..., 1].min() > -1e-4


def test_per_frame_labels_agree_with_segments(clips):
    for c in clips:
        T = len(c)
        assert c.frames.shape == (T, 32, 32, 3) and c.frames.dtype == np.uint8
        assert c.joints2d.shape == (T, len(JOINTS), 2) and c.visible.shape == (T, len(JOINTS))
        covered = np.zeros(T, bool)
        prev_end = 0
        hl = round(0.12 * c.fps)
        for s in c.segments:
            a, e = s["start"], s["end"]
            assert prev_end <= a < e <= T
            prev_end = e
            covered[a:e] = True
            assert np.all(c.action_index[a:e] == ACTION_NAMES.index(s["action"]))
            ph = c.phase[a:e]
            assert ph[0] == 0 and ph[-1] == 1 and np.all(np.diff(ph) > 0)
            apex = ACTIONS[s["action"]].apex_phase
            assert s["apex_frame"] == a + int(np.argmin(np.abs(ph - apex)))
            assert s["highlight_start"] == max(a, s["apex_frame"] - hl)
            assert s["highlight_end"] == min(e, s["apex_frame"] + hl + 1)
            assert np.array_equal(c.stage[a:e], ACTIONS[s["action"]].stage_of(ph))
        assert np.all(c.action_index[~covered] == -1) and np.all(c.phase[~covered] == -1)
        assert np.all(c.stage[~covered] == -1)
        # joints2d is the projection of joints3d
        np.testing.assert_allclose(c.joints2d, project(c.joints3d, c.camera), atol=1e-3)


def test_generation_is_deterministic_and_ignores_global_rng():
    cfg = small_cfg(n_distractors=(1, 1), occluder_prob=1.0)
    np.random.seed(1)
    random.seed(1)
    a = generate_clip(cfg, 7)
    np.random.seed(2)
    random.seed(2)
    np.random.normal(size=10)
    b = generate_clip(cfg, 7)
    c = generate_clip(cfg, 8)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.joints3d, b.joints3d)
    assert a.segments == b.segments
    assert not np.array_equal(a.frames, c.frames)
    other = generate_clip(small_cfg(n_distractors=(1, 1), occluder_prob=1.0, seed=1), 7)
    assert not np.array_equal(a.frames, other.frames)


# -- actions -----------------------------------------------------------------------------------
def _side(c, s):
    return "right" if s["params"].get("side", 1) > 0 else "left"


APEX_SIGNALS = {
    "squat": lambda X, sd: -X[:, J["pelvis"], 1],
    "lunge": lambda X, sd: -X[:, J["pelvis"], 1],
    "jump": lambda X, sd: X[:, [J["left_ankle"], J["right_ankle"]], 1].mean(1),
    "reach_up": lambda X, sd: X[:, [J["left_wrist"], J["right_wrist"]], 1].max(1),
    "punch": lambda X, sd: np.linalg.norm(X[:, J[f"{sd}_wrist"]] - X[:, J[f"{sd}_shoulder"]],
                                          axis=1),
    "kick": lambda X, sd: X[:, J[f"{sd}_ankle"], 1],
    "bow": lambda X, sd: np.arccos(np.clip(
        (X[:, J["neck"], 1] - X[:, J["pelvis"], 1])
        / np.linalg.norm(X[:, J["neck"]] - X[:, J["pelvis"]], axis=1), -1, 1)),
    "jumping_jack": lambda X, sd: X[:, [J["left_wrist"], J["right_wrist"]], 1].mean(1),
    "wave": lambda X, sd: X[:, J[f"{sd}_wrist"], 1],
}


@pytest.mark.parametrize("name", sorted(APEX_SIGNALS))
def test_apex_is_the_extremum_of_the_action(name):
    """Over several seeds (random body, tempo, amplitude, phase warp, side): the signal the apex
    names peaks at the apex frame +-1 within the action."""
    cfg = small_cfg(image_size=16)
    for seed in range(4):
        c = generate_clip(cfg, seed, [name])
        s = c.segments[0]
        sig = APEX_SIGNALS[name](c.joints3d[s["start"]:s["end"]], _side(c, s))
        assert abs(s["start"] + int(np.argmax(sig)) - s["apex_frame"]) <= 1, (name, seed)


def test_jump_leaves_the_ground_and_squat_does_not():
    cfg = small_cfg(image_size=16)
    jump = generate_clip(cfg, 0, ["jump"])
    squat = generate_clip(cfg, 0, ["squat"])
    feet = [J["left_toe"], J["right_toe"]]
    a = jump.segments[0]["apex_frame"]
    assert jump.joints3d[a, feet, 1].min() > 0.1
    assert squat.joints3d[:, feet, 1].min(1).max() < 0.05


def test_throw_releases_the_ball_at_the_apex():
    c = generate_clip(small_cfg(image_size=16), 3, ["throw"])
    s = c.segments[0]
    hand = J[f"{_side(c, s)}_wrist"]
    gap = np.linalg.norm(c.props["ball"] - c.joints3d[:, hand], axis=1)
    a = s["apex_frame"]
    assert gap[:a + 1].max() < 0.15  # in the hand up to the release
    assert gap[min(a + 6, len(c) - 1)] > 0.3  # then flying away


def test_time_order_pairs_are_time_reversals():
    p = (np.arange(40) + 0.5) / 40  # no sample on a stage boundary
    rng = np.random.default_rng(0)
    for fwd, back in [("sit_down", "stand_up"), ("arm_circle_cw", "arm_circle_ccw")]:
        q = ACTIONS[fwd].sample_params(rng)
        a1, r1 = ACTIONS[fwd].pose(p, q)
        a2, r2 = ACTIONS[back].pose(p[::-1], q)
        np.testing.assert_allclose(a1, a2, atol=1e-12)
        np.testing.assert_allclose(r1, r2, atol=1e-12)
        assert ACTIONS[back].apex_phase == pytest.approx(1 - ACTIONS[fwd].apex_phase)
        assert not ACTIONS[fwd].early_separable and not ACTIONS[back].early_separable
        # stages play backwards too: the same poses carry stages in one-to-one correspondence
        st1 = [ACTIONS[fwd].stage_names[i] for i in ACTIONS[fwd].stage_of(p)]
        st2 = [ACTIONS[back].stage_names[i] for i in ACTIONS[back].stage_of(p[::-1])]
        pairs = set(zip(st1, st2))
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    stand = [ACTIONS["stand_up"].stage_names[i] for i in ACTIONS["stand_up"].stage_of(p)]
    assert stand[0] == "seated" and "rising" in stand and stand[-1] == "standing"
    ccw = [ACTIONS["arm_circle_ccw"].stage_names[i] for i in ACTIONS["arm_circle_ccw"].stage_of(p)]
    assert ccw[0] == "raising" and ccw[-1] == "lowering"
    assert sum(not s.early_separable for s in ACTIONS.values()) == 4


def test_arm_circles_turn_in_opposite_directions():
    p = np.linspace(0.3, 0.65, 200)  # one period of the circle (2 cycles over phase 0.15-0.85)
    body = Body()
    turns = {}
    for name in ("arm_circle_cw", "arm_circle_ccw"):
        q = {"amplitude": 1.0, "cycles": 2.0}
        X, _ = place_person(*ACTIONS[name].pose(p, q), body, 0.0, (0, 0))
        for side in ("left", "right"):
            d = X[:, J[f"{side}_wrist"]] - X[:, J[f"{side}_shoulder"]]
            ang = np.unwrap(np.arctan2(d[:, 1], d[:, 2]))  # in the (forward, up) plane
            turns[name, side] = (ang[-1] - ang[0]) / (2 * np.pi)
    # "cw": forward circles, clockwise as seen from the person's right: the wrist's angle in
    # the (forward, up) plane decreases: one full turn per period
    for side in ("left", "right"):
        assert turns["arm_circle_cw", side] == pytest.approx(-1.0, abs=0.02)
        assert turns["arm_circle_ccw", side] == pytest.approx(1.0, abs=0.02)


def test_every_action_stays_within_limits_and_has_stages():
    assert len(ACTIONS) >= 12
    rng = np.random.default_rng(0)
    p = np.linspace(0, 1, 50)
    for spec in ACTIONS.values():
        a, r = spec.pose(p, spec.sample_params(rng, (0.5, 1.5)))
        assert np.array_equal(a, clip_to_limits(a)) and r.shape == (50, 3)
        assert 0 <= spec.apex_phase <= 1 and spec.duration[0] <= spec.duration[1]
        st = spec.stage_of(p)
        assert st.min() >= 0 and st.max() < len(spec.stage_names)
        assert spec.stage_of(np.array([-1.0]))[0] == -1


# -- camera ------------------------------------------------------------------------------------
def test_projection_closed_form_and_opencv():
    cam = orbit_camera(np.array([[0.0, 1.0, 0.0]]), 0.0, 0.0, 4.0, 60.0, (64, 48))
    f = 24 / np.tan(np.radians(30))
    pts = np.array([[[0.3, 1.5, 0.5], [-1.0, 0.2, -2.0]]])
    uv = project(pts, cam)[0]
    x, y, z = pts[0].T
    np.testing.assert_allclose(uv[:, 0], 32 + f * x / (4 - z))  # the person's left is image right
    np.testing.assert_allclose(uv[:, 1], 24 - f * (y - 1) / (4 - z))
    # any camera: OpenCV's projectPoints agrees
    rng = np.random.default_rng(0)
    cam = orbit_camera(rng.normal(size=(3, 3)), [0.3, -1, 2], [0.1, 0.4, -0.2], [3, 5, 8],
                       [40, 50, 70], (96, 96), pan=[0.0, 0.1, -0.2])
    P = rng.normal(size=(3, 5, 3)) * 0.5 + cam.position[:, None] * 0.0
    P += np.einsum("tji,j->ti", cam.R, [0, 0, 4])[:, None] + cam.position[:, None]
    uv = project(P, cam)
    for t in range(3):
        ref, _ = cv2.projectPoints(P[t], cv2.Rodrigues(cam.R[t])[0], cam.t[t], cam.K[t], None)
        np.testing.assert_allclose(uv[t], ref[:, 0], atol=1e-6)
    behind = project(np.array([[[0.0, 1.0, 10.0]]]), orbit_camera(
        np.array([[0.0, 1.0, 0.0]]), 0.0, 0.0, 4.0, 60.0, (64, 48)))
    assert np.all(np.isnan(behind))


def test_default_camera_keeps_the_person_in_the_image():
    cfg = MotionConfig(image_size=24, fps=10, background="plain",
                       n_distractors=(0, 0))
    for seed in range(12):
        c = generate_clip(cfg, seed)
        assert np.all(c.joints2d >= 0) and np.all(c.joints2d < 24), seed


def test_out_of_family_camera_changes_the_view():
    """Training yaw (+-40 deg) sees the person's left shoulder on the image right; yaw around
    180 deg (an out-of-family back view) sees it on the left."""
    def left_on_right(cfg):
        fr = []
        for seed in range(4):
            c = generate_clip(cfg, seed, ["squat"])
            fr.append(np.mean(c.joints2d[:, J["left_shoulder"], 0]
                              > c.joints2d[:, J["right_shoulder"], 0]))
        return np.mean(fr)

    base = dict(image_size=16, fps=10, clip_seconds=2.0, camera_pan_speed=(0.0, 0.0))
    assert left_on_right(MotionConfig(**base)) > 0.95
    assert left_on_right(MotionConfig(**base, camera_yaw_deg=(150.0, 210.0))) < 0.05
    # bodies outside the training range
    tall = generate_clip(MotionConfig(**base, height_range=(2.1, 2.2)), 0, ["squat"])
    assert tall.meta["body"]["height"] > 2.0


def test_occluder_hides_joints():
    from shared.motion.render import self_occluded

    def own_view(c):  # inside the image and not behind the person's own body
        inside = np.all((c.joints2d >= 0) & (c.joints2d < 32), -1)
        return inside & ~self_occluded(c.joints3d, c.camera, c.meta["body"]["height"],
                                       c.meta["body"]["girth"])

    cfg = small_cfg(occluder_prob=1.0, n_distractors=(0, 0))
    extra = []
    for s in range(6):
        c = generate_clip(cfg, s)
        assert not (c.visible & ~own_view(c)).any()
        extra.append((own_view(c) & ~c.visible).mean())
    assert max(extra) > 0.05  # the occluder hides joints the body alone does not
    clean = generate_clip(small_cfg(occluder_prob=0.0, n_distractors=(0, 0)), 0)
    assert np.array_equal(clean.visible, own_view(clean))


# -- config ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,key", [
    (dict(camera_yaw_deg=(10.0, -10.0)), "camera_yaw_deg"),
    (dict(camera_distance=(0.0, 1.0)), "camera_distance"),
    (dict(height_range=(1.0,)), "height_range"),
    (dict(actions=["squat", "moonwalk"]), "actions"),
    (dict(background_families=[9]), "background_families"),
    (dict(n_distractors=(0, 1.5)), "n_distractors"),
    (dict(combinations=[["squat"]], segments=2), "combinations"),
])
def test_bad_config_one_line_error_naming_the_key(kw, key):
    with pytest.raises(ConfigError) as e:
        MotionConfig(**kw)
    assert key in str(e.value) and "\n" not in str(e.value)


def test_config_from_yaml_and_overrides(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("image_size: 48\ncamera_yaw_deg: [120, 180]\nbackground_families: [3, 4, 5]\n")
    cfg = load_config(p, MotionConfig, ["segments=2"])
    assert cfg.image_size == 48 and cfg.camera_yaw_deg == (120, 180) and cfg.segments == 2
    with pytest.raises(ConfigError, match="camera_pitch_deg"):
        load_config(p, MotionConfig, ["camera_pitch_deg=[30, 10]"])
    with pytest.raises(ConfigError, match="unknown key 'camera_yawn'"):
        from_dict(MotionConfig, {"camera_yawn": [0, 1]})
    with pytest.raises(ConfigError, match="'background'"):
        from_dict(MotionConfig, {"background": "stars"})


def test_held_out_combinations():
    cfg = small_cfg(image_size=16, segments=2, actions=["squat", "jump"],
                    exclude_combinations=[["squat", "jump"]])
    for s in range(5):
        assert generate_clip(cfg, s).actions == ["jump", "squat"]
    only = small_cfg(image_size=16, segments=2, combinations=[["bow", "wave"]])
    assert generate_clip(only, 0).actions == ["bow", "wave"]
    with pytest.raises(ConfigError, match="exclude_combinations"):
        generate_clip(small_cfg(segments=2, actions=["squat", "jump"],
                                exclude_combinations=[["squat", "jump"], ["jump", "squat"]]), 0)


# -- rendering and datasets -----------------------------------------------------------------------
def test_render_on_its_own():
    body = Body()
    p = np.linspace(0, 1, 5)
    X, _ = place_person(*ACTIONS["wave"].pose(p), body, 0.0, (0, 0))
    cam = orbit_camera(np.tile([0.0, 1.0, 0.0], (5, 1)), 0.3, 0.1, 4.0, 50.0, (40, 40))
    frames = render(X, cam, Appearance(), 40)
    assert frames.shape == (5, 40, 40, 3) and frames.dtype == np.uint8
    empty = render(X + [0, 0, -100], cam, Appearance(), 40)  # person far away: background only
    uv = project(X, cam)[2]
    u, v = np.round(uv[J["spine"]]).astype(int)
    assert not np.array_equal(frames[2, v, u], empty[2, v, u])  # the person covers the torso


def test_dataset_is_cached_and_equals_single_clips():
    cfg = small_cfg(image_size=16, clip_seconds=2.0)
    ds = generate_dataset(cfg, 3, seed=5)
    assert len(ds) == 3 and ds.root is not None
    for i in range(3):
        a, b = ds[i], generate_clip(cfg, ds.clip_seed(i))
        assert np.array_equal(a.frames, b.frames) and a.segments == b.segments
        assert np.array_equal(a.camera.K, b.camera.K) and a.meta == b.meta
    again = generate_dataset(cfg, 3, seed=5)
    assert again.root == ds.root
    (ds.root / "clip_000001.npz").write_bytes(b"corrupt")  # a damaged entry is regenerated
    assert np.array_equal(again[1].frames, generate_clip(cfg, ds.clip_seed(1)).frames)
    lazy = generate_dataset(cfg, 3, seed=5, cache=False)
    assert np.array_equal(lazy[2].joints3d, ds[2].joints3d)
    with pytest.raises(IndexError):
        ds[3]


def test_module_docstring_example_runs():
    import doctest

    import shared.motion

    for attr in shared.motion.__all__:
        assert getattr(shared.motion, attr) is not None
    result = doctest.testmod(shared.motion, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0


def test_background_moves_with_the_panning_camera():
    """Phase correlation of the wall between frames 0 and 6 agrees in sign and size with the
    image motion of a distant point in the viewing direction."""
    cfg = MotionConfig(image_size=64, fps=10, clip_seconds=2.0, camera_pan_speed=(5.0, 5.0),
                       camera_zoom_speed=(0.0, 0.0), noise_std=(0.0, 0.0), blur_prob=0.0,
                       n_distractors=(0, 0), occluder_prob=0.0, background_families=[4],
                       camera_pitch_deg=(0.0, 0.0), camera_distance=(6.0, 6.0))
    signs = set()
    for seed in (0, 1, 8, 10):  # seeds 8 and 10 pan the other way
        c = generate_clip(cfg, seed, ["bow"])
        top = c.frames[:, :16].astype(np.float32).mean(-1)  # wall above the person
        win = cv2.createHanningWindow(top[0].shape[::-1], cv2.CV_32F)
        (dx, _), _ = cv2.phaseCorrelate(top[0], top[6], win)
        yaw = np.radians(c.meta["camera"]["yaw_deg"])
        view = -np.array([np.sin(yaw), 0.0, np.cos(yaw)])
        u = project((c.camera.position + 1e6 * view)[:, None], c.camera)[:, 0, 0]
        assert abs(u[6] - u[0]) > 2 and dx == pytest.approx(u[6] - u[0], abs=1.0)
        signs.add(np.sign(dx))
    assert signs == {-1.0, 1.0}  # both pan directions occur


def test_clip_arrays_round_trip_and_bad_arrays():
    from shared.errors import DataError
    from shared.motion import Clip

    c = generate_clip(small_cfg(image_size=16, clip_seconds=1.0), 0, ["throw"])
    d = c.arrays()
    back = Clip.from_arrays(d)
    assert np.array_equal(back.frames, c.frames) and back.segments == c.segments
    np.testing.assert_array_equal(back.props["ball"], c.props["ball"])
    for bad, field in [({**d, "phase": d["phase"][:-1]}, "phase"),
                       ({k: v for k, v in d.items() if k != "camera_K"}, "camera_K"),
                       ({**d, "info_json": np.frombuffer(b"{oops", np.uint8)}, "info_json"),
                       ({**d, "frames": d["frames"].astype(np.float32)}, "frames")]:
        with pytest.raises(DataError, match=field):
            Clip.from_arrays(bad)


def test_self_occlusion_hides_the_far_side_in_a_side_view():
    """Seen from the person's left (yaw 90 deg) the right arm and leg are behind the body;
    seen from the front nothing is."""
    base = dict(image_size=32, fps=10, clip_seconds=2.0, camera_pan_speed=(0.0, 0.0),
                occluder_prob=0.0, idle_seconds=(0.5, 0.5))
    front = generate_clip(MotionConfig(**base, camera_yaw_deg=(0.0, 0.0)), 0, ["squat"])
    side = generate_clip(MotionConfig(**base, camera_yaw_deg=(90.0, 90.0)), 0, ["squat"])
    assert front.visible[0].all()
    far = [J["right_shoulder"], J["right_elbow"], J["right_hip"], J["right_knee"],
           J["right_ankle"]]
    near = [J["left_shoulder"], J["left_elbow"], J["left_knee"], J["left_ankle"]]
    assert not side.visible[0, far].any() and side.visible[0, near].all()
