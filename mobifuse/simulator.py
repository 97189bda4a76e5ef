"""Seeded ToF + stereo scene simulator: analytic ray casting of rooms with objects.

MobiFuse (arXiv 2412.13848) trains and evaluates on its RealToF captures, which are not public;
this module renders the physics the paper's DEI modality is built on (standard
sensor models; the paper does not publish its own):

- **Scene** (`sample_scene`): a box-shaped room (floor, ceiling, three walls -> concave corners)
  with boxes, spheres and vertical cylinders at 0.3-4 m, seen by a pitched camera. Every surface
  has its own visible colour, a texture strength (none ... strong) and an IR albedo in
  0.05-0.9 drawn independently of the colour. A sunlit patch can raise the ambient IR locally.
- **RGB pair** (`render_rgb_pair`): a rectified pair (baseline ~1.5 cm) with Lambertian shading,
  illuminance-dependent Poisson shot noise, Gaussian read noise and 8-bit quantisation.
- **AMCW ToF** (`render_tof`): a lower-resolution sensor offset from the left camera. Each pixel
  sums `supersample**2` complex phasors `A e^{i 4 pi f r / c}` (edge mixing -> flying pixels),
  plus one-bounce multipath from scene patches weighted by
  `rho_q cos(theta_q) cos(theta_p) / d^2` with the path-length phase (-> bias in concave
  corners), a 4th-harmonic wiggling error, complex shot + read noise with ambient light, phase
  wrapping at `c / (2 f)` and dropouts where the amplitude is low.
- **Ground truth** (`render_ground_truth`): left-view depth, normals and region masks
  (textureless, dark-IR, depth edges, concave, high ambient) at the work resolution.

All rays are cast at once per primitive with array ops (no loop over pixels). Conventions:
OpenCV camera frames (x right, y down, z forward); intrinsics `K` with pixel centres at integer
coordinates; "depth" is the z coordinate in the camera frame; lengths in metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from mobifuse.config import SimConfig

C_LIGHT = 299_792_458.0
_EPS = 1e-6

__all__ = ["C_LIGHT", "Surface", "Scene", "intrinsics", "sample_scene", "cast_rays",
           "render_rgb_pair", "render_tof", "render_ground_truth", "simulate_scene",
           "unambiguous_range", "camera_rays", "rot_x", "rot_y", "rig_intrinsics", "work_shape",
           "sample_rig", "scale_scene"]


def unambiguous_range(mod_freq_hz: float) -> float:
    """Range at which the AMCW phase wraps: c / (2 f)."""
    return C_LIGHT / (2.0 * mod_freq_hz)


def rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def rot_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def intrinsics(width: int, height: int, focal: float, cx_offset: float = 0.0) -> np.ndarray:
    """3x3 pinhole matrix, principal point at the image centre + `cx_offset` px in x (pixel
    centres integer)."""
    return np.array([[focal, 0, (width - 1) / 2 + cx_offset], [0, focal, (height - 1) / 2],
                     [0, 0, 1.0]])


def rig_intrinsics(cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """(K_left, K_right) of the rectified pair: same focal length and row, the right principal
    point `doffs_px` to the right of the left one, so Z = f B / (d + doffs)."""
    K_left = intrinsics(cfg.width, cfg.height, cfg.focal_px, cfg.cx_offset_px)
    K_right = K_left.copy()
    K_right[0, 2] += cfg.doffs_px
    return K_left, K_right


def work_shape(height: int, width: int, s: int) -> tuple[int, int]:
    """The work grid of an image subsampled by `s` (pixel (i, j) <-> full pixel (s i, s j))."""
    return -(-height // s), -(-width // s)


@dataclass
class Surface:
    """One primitive of the scene and its material.

    kind: 'plane' (params: normal n (3,) facing the camera, offset c with n.x = c),
    'sphere' (centre (3,), radius), 'box' (centre (3,), half sizes (3,), yaw deg),
    'cylinder' (centre (3,), radius, half height; vertical axis).
    """

    kind: str
    params: dict
    color: np.ndarray  # (3,) visible albedo in [0, 1]
    texture: float  # texture strength (0 = none)
    tex_freq: float  # base texture frequency (cycles / m)
    tex_seed: int  # texture hash seed
    ir_albedo: float  # IR reflectivity in [0.05, 0.9], independent of `color`
    room: bool = False  # part of the room shell (walls, floor, ceiling)


@dataclass
class Scene:
    """A room, its objects, the camera pose (world from left camera) and the lighting."""

    surfaces: list[Surface]
    cam_rot: np.ndarray  # (3, 3) world-from-camera rotation
    cam_pos: np.ndarray  # (3,) left camera centre in the world
    lux: float  # illuminance, scales RGB photon counts
    ambient: float  # ambient IR (electrons at IR albedo 1)
    light_dir: np.ndarray  # (3,) unit vector towards the room light
    sun_center: np.ndarray | None = None  # (3,) centre of the sunlit patch, or None
    sun_radius: float = 0.0
    factors: dict = field(default_factory=dict)  # scene-level factors (for sweeps)


# ----------------------------------------------------------------------------- geometry


def _hit_plane(o, d, n, c):
    den = d @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (c - o @ n) / den
    t = np.where((np.abs(den) > _EPS) & (t > _EPS), t, np.inf)
    nrm = np.broadcast_to(n, d.shape)
    return t, nrm


def _hit_sphere(o, d, center, radius):
    oc = o - center
    a = np.einsum("ij,ij->i", d, d)
    b = 2 * d @ oc
    c = oc @ oc - radius**2
    disc = b * b - 4 * a * c
    sq = np.sqrt(np.maximum(disc, 0))
    t = (-b - sq) / (2 * a)
    t = np.where((disc > 0) & (t > _EPS), t, np.inf)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    return t, (p - center) / radius


def _hit_box(o, d, center, half, yaw):
    r = rot_y(yaw)
    ol = (o - center) @ r  # world -> local: R^T x
    dl = d @ r
    dl = np.where(np.abs(dl) < _EPS, _EPS, dl)
    t1 = (-half - ol) / dl
    t2 = (half - ol) / dl
    tnear = np.minimum(t1, t2)
    tmin = tnear.max(axis=1)
    tmax = np.maximum(t1, t2).min(axis=1)
    t = np.where((tmax >= tmin) & (tmin > _EPS), tmin, np.inf)
    axis = tnear.argmax(axis=1)
    nl = np.zeros_like(d)
    rows = np.arange(len(d))
    nl[rows, axis] = -np.sign(dl[rows, axis])
    return t, nl @ r.T


def _hit_cylinder(o, d, center, radius, half_h):
    ox, oz = o[0] - center[0], o[2] - center[2]
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (ox * d[:, 0] + oz * d[:, 2])
    c = ox**2 + oz**2 - radius**2
    disc = b * b - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    ys = o[1] + ts * d[:, 1]
    side_ok = (disc > 0) & (ts > _EPS) & (np.abs(ys - center[1]) <= half_h)
    t_side = np.where(side_ok, ts, np.inf)
    best, nrm = t_side, np.zeros_like(d)
    ps = o + np.where(np.isfinite(t_side), t_side, 0)[:, None] * d
    nrm[:] = np.stack([ps[:, 0] - center[0], np.zeros(len(d)), ps[:, 2] - center[2]], 1) / radius
    for sign in (-1.0, 1.0):  # two caps
        ycap = center[1] + sign * half_h
        with np.errstate(divide="ignore", invalid="ignore"):
            tc = (ycap - o[1]) / d[:, 1]
        pc = o + np.where(np.isfinite(tc), tc, 0)[:, None] * d
        inside = (pc[:, 0] - center[0]) ** 2 + (pc[:, 2] - center[2]) ** 2 <= radius**2
        tc = np.where(inside & (tc > _EPS), tc, np.inf)
        closer = tc < best
        best = np.where(closer, tc, best)
        nrm[closer] = np.array([0.0, sign, 0.0])
    return best, nrm


def _intersect(surf: Surface, o: np.ndarray, d: np.ndarray):
    p = surf.params
    if surf.kind == "plane":
        return _hit_plane(o, d, p["n"], p["c"])
    if surf.kind == "sphere":
        return _hit_sphere(o, d, p["center"], p["radius"])
    if surf.kind == "box":
        return _hit_box(o, d, p["center"], p["half"], p["yaw"])
    if surf.kind == "cylinder":
        return _hit_cylinder(o, d, p["center"], p["radius"], p["half_h"])
    raise ValueError(f"unknown surface kind {surf.kind!r}")


def cast_rays(scene: Scene, origin: np.ndarray, dirs: np.ndarray) -> dict:
    """Nearest hit of every ray. origin (3,), dirs (N, 3) (any length) in the world frame.

    Returns t (N,) so that hit = origin + t * dirs, normal (N, 3) facing the ray, surface id (N,).
    """
    t_best = np.full(len(dirs), np.inf)
    n_best = np.zeros_like(dirs)
    sid = np.full(len(dirs), -1, dtype=np.int64)
    for i, surf in enumerate(scene.surfaces):  # loop over primitives; rays are vectorised
        t, n = _intersect(surf, origin, dirs)
        closer = t < t_best
        t_best = np.where(closer, t, t_best)
        n_best[closer] = n[closer]
        sid[closer] = i
    # normals face the viewer (room planes are given facing inwards already)
    flip = np.einsum("ij,ij->i", n_best, dirs) > 0
    n_best[flip] *= -1
    n_best /= np.maximum(np.linalg.norm(n_best, axis=1, keepdims=True), _EPS)
    return {"t": t_best, "normal": n_best, "sid": sid}


def camera_rays(K: np.ndarray, width: int, height: int, sub: int = 1) -> np.ndarray:
    """Ray directions (height, width, sub*sub, 3) with z = 1 in the camera frame.

    `sub` > 1 gives a regular sub-pixel grid (supersampling) inside every pixel.
    """
    off = (np.arange(sub) + 0.5) / sub - 0.5
    su, sv = np.meshgrid(off, off)
    u = np.arange(width)[None, :, None] + su.reshape(1, 1, -1)
    v = np.arange(height)[:, None, None] + sv.reshape(1, 1, -1)
    u, v = np.broadcast_arrays(u, v)
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=-1)


# ----------------------------------------------------------------------------- scene sampling


def _material(rng, cfg: SimConfig, overrides: dict, room: bool = False) -> dict:
    tex = float(overrides.get("texture", rng.choice(cfg.texture_levels)))
    ir = float(overrides.get("ir_albedo", rng.uniform(0.05, 0.9)))
    return {"color": rng.uniform(0.15, 0.9, 3), "texture": tex,
            "tex_freq": float(rng.uniform(6, 14) if room else rng.uniform(10, 25)),
            "tex_seed": int(rng.integers(1, 2**30)), "ir_albedo": ir, "room": room}


def sample_scene(rng: np.random.Generator, cfg: SimConfig, overrides: dict | None = None) -> Scene:
    """Draw a random room with objects. `overrides` fixes scene factors for sweeps:
    'ambient' (electrons), 'ir_albedo' (all surfaces), 'texture' (all surfaces),
    'distance' (object centre depth, m), 'lux'.
    """
    ov = dict(overrides or {})
    cam_h = rng.uniform(0.7, 1.3)  # camera height above the floor
    pitch = rng.uniform(12, 28)  # looking down
    cam_rot = rot_y(rng.uniform(-15, 15)) @ rot_x(-pitch)
    cam_pos = np.zeros(3)
    depth_back = rng.uniform(*cfg.room_depth)
    half_w = rng.uniform(1.3, 2.4)
    xoff = rng.uniform(-0.4, 0.4)
    ceil = rng.uniform(1.0, 1.6)
    planes = [  # (inward normal n, offset c) with n . x = c on the plane
        (np.array([0.0, -1.0, 0.0]), -cam_h),  # floor (y = cam_h, y points down)
        (np.array([0.0, 1.0, 0.0]), -ceil),  # ceiling (y = -ceil)
        (np.array([0.0, 0.0, -1.0]), -depth_back),  # back wall
        (np.array([1.0, 0.0, 0.0]), xoff - half_w),  # left wall
        (np.array([-1.0, 0.0, 0.0]), -(xoff + half_w)),  # right wall
        (np.array([0.0, 0.0, 1.0]), -1.0),  # wall behind (closes the room)
    ]
    surfaces = [Surface("plane", {"n": n, "c": c}, **_material(rng, cfg, ov, room=True))
                for n, c in planes]
    k_cam = rig_intrinsics(cfg)[0]
    n_obj = int(rng.integers(cfg.n_objects[0], cfg.n_objects[1] + 1))
    for _ in range(n_obj):
        z = float(ov.get("distance", rng.uniform(*cfg.object_depth)))
        z = z + (rng.uniform(-0.2, 0.2) if "distance" in ov else 0.0)
        z = max(z, 0.3 / cfg.scene_scale)  # >= 0.3 m once the scene is scaled
        u = rng.uniform(0.1, 0.9) * cfg.width
        v = rng.uniform(0.15, 0.85) * cfg.height
        p_cam = z * np.array([(u - k_cam[0, 2]) / k_cam[0, 0],
                              (v - k_cam[1, 2]) / k_cam[1, 1], 1.0])
        center = cam_rot @ p_cam + cam_pos
        size = rng.uniform(0.12, 0.35) * float(np.clip(z / 1.5, 0.35, 1.2))
        size = min(size, 0.6 * (z - 0.1))  # never swallow the camera
        if rng.uniform() < 0.5 and center[1] + size < cam_h:  # rest on the floor
            center[1] = cam_h - size
        center[1] = min(center[1], cam_h - size)
        kind = rng.choice(["box", "sphere", "cylinder"])
        if kind == "box":
            params = {"center": center, "half": size * rng.uniform(0.6, 1.0, 3),
                      "yaw": float(rng.uniform(0, 90))}
            params["center"][1] = min(center[1], cam_h - params["half"][1])
        elif kind == "sphere":
            params = {"center": center, "radius": size}
        else:
            params = {"center": center, "radius": size * rng.uniform(0.4, 0.8), "half_h": size}
        surfaces.append(Surface(str(kind), params, **_material(rng, cfg, ov)))
    ambient = float(ov.get("ambient", rng.uniform(*cfg.ambient_range)))
    lux = float(ov.get("lux", np.exp(rng.uniform(*np.log(cfg.lux_range)))))
    light = np.array([rng.uniform(-0.5, 0.5), -1.0, rng.uniform(-0.8, 0.2)])
    sun_c, sun_r = None, 0.0
    if rng.uniform() < cfg.sun_prob:  # a sunlit patch on the floor or back wall
        sun_c = np.array([rng.uniform(-1, 1), cam_h, rng.uniform(1.0, depth_back)])
        if rng.uniform() < 0.5:
            sun_c = np.array([rng.uniform(-1, 1), rng.uniform(-0.5, cam_h), depth_back])
        sun_r = float(rng.uniform(0.3, 0.8))
    scene = Scene(surfaces, cam_rot, cam_pos, lux, ambient, light / np.linalg.norm(light),
                  sun_c, sun_r, factors={"ambient": ambient, "lux": lux})
    return scale_scene(scene, cfg.scene_scale)


def scale_scene(scene: Scene, s: float) -> Scene:
    """Every length about the camera x `s` (depths scale by s; textures keep their look)."""
    if s == 1.0:
        return scene
    for surf in scene.surfaces:
        p = surf.params
        for key in ("c", "radius", "half_h"):
            if key in p:
                p[key] = p[key] * s
        for key in ("center", "half"):
            if key in p:
                p[key] = np.asarray(p[key]) * s
        surf.tex_freq = surf.tex_freq / s
    scene.cam_pos = scene.cam_pos * s
    if scene.sun_center is not None:
        scene.sun_center = scene.sun_center * s
        scene.sun_radius *= s
    return scene


def sample_rig(rng: np.random.Generator, fam, base: SimConfig) -> SimConfig:
    """One camera rig drawn from a `RigFamily`'s ranges, as a concrete SimConfig (the rest of
    `base` kept): baseline, focal length, width (height 3/4 of it), principal-point offsets,
    scene scale (depths), ToF resolution ratio and modulation frequency."""
    import dataclasses

    u = lambda r: float(rng.uniform(r[0], r[1]))  # noqa: E731
    logu = lambda r: float(np.exp(rng.uniform(np.log(r[0]), np.log(r[1]))))  # noqa: E731
    width = int(rng.integers(fam.width[0] // 2, fam.width[1] // 2 + 1)) * 2 + int(rng.integers(2))
    height = int(round(width * 0.75))
    focal, baseline = logu(fam.focal_px), logu(fam.baseline_m)
    ratio = int(rng.integers(fam.tof_ratio[0], fam.tof_ratio[1] + 1))
    # the scene's near depth (~0.45 x scale) should fit a 224-px disparity search where the
    # family allows it; otherwise the search is clipped (and warns), as on a real rig
    s_lo = min(max(fam.scene_scale[0], focal * baseline / (224 * 0.45)), fam.scene_scale[1])
    scale = u((s_lo, fam.scene_scale[1]))
    # a ToF is built for its range: the unambiguous range c / 2f covers the room (~6 x scale
    # m to the far corners), as a dual-frequency phone ToF's unwrapped range would
    mod = min(logu(fam.mod_freq_hz), C_LIGHT / (2 * 6.0 * scale))
    return dataclasses.replace(
        base, width=width, height=height, focal_px=focal, baseline_m=baseline,
        cx_offset_px=u(fam.cx_offset_px), doffs_px=u(fam.doffs_px), scene_scale=scale,
        tof_width=-(-width // ratio), tof_height=-(-height // ratio), tof_focal_px=focal / ratio,
        mod_freq_hz=mod)


# ----------------------------------------------------------------------------- appearance


def _hash01(ix, iy, iz, seed):
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791) ^ seed
    h = (h ^ (h >> 13)) * 0x5BD1E995
    h = h ^ (h >> 15)
    return (h & 0xFFFF).astype(np.float64) / 65535.0


def _texture(points: np.ndarray, freq: float, seed: int) -> np.ndarray:
    """Solid blocky value noise in [-1, 1] (four octaves, down to mm-scale detail so that
    high-resolution rigs see texture too), identical seen from any camera."""
    out = np.zeros(len(points))
    for octave, (scale, w) in enumerate(((1.0, 0.4), (2.7, 0.25), (7.3, 0.2), (19.7, 0.15))):
        q = np.floor(points * freq * scale).astype(np.int64)
        out += w * _hash01(q[:, 0], q[:, 1], q[:, 2], seed + octave * 7919)
    return 2 * out - 1


def _surface_table(scene: Scene) -> dict:
    return {
        "color": np.array([s.color for s in scene.surfaces]),
        "texture": np.array([s.texture for s in scene.surfaces]),
        "ir": np.array([s.ir_albedo for s in scene.surfaces]),
    }


def _albedo(scene: Scene, points: np.ndarray, sid: np.ndarray) -> np.ndarray:
    """Visible albedo (N, 3) with each surface's texture modulating its colour."""
    tab = _surface_table(scene)
    tex = np.zeros(len(points))
    for i, s in enumerate(scene.surfaces):  # per primitive, vectorised over its pixels
        m = sid == i
        if m.any() and s.texture > 0:
            tex[m] = s.texture * _texture(points[m], s.tex_freq, s.tex_seed)
    return np.clip(tab["color"][sid] * (1 + tex[:, None]), 0, 1)


def _ambient_at(scene: Scene, points: np.ndarray) -> np.ndarray:
    amb = np.full(len(points), scene.ambient)
    if scene.sun_center is not None:
        sun = np.linalg.norm(points - scene.sun_center, axis=1) < scene.sun_radius
        amb[sun] *= scene.factors.get("sun_gain", 6.0)
    return amb


def _sunlit(scene: Scene, points: np.ndarray) -> np.ndarray:
    if scene.sun_center is None:
        return np.zeros(len(points), dtype=bool)
    return np.linalg.norm(points - scene.sun_center, axis=1) < scene.sun_radius


def render_rgb_pair(scene: Scene, cfg: SimConfig, rng: np.random.Generator,
                    noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Rectified left/right uint8 images (H, W, 3); the right camera sits at +baseline on x,
    its principal point `doffs_px` to the right of the left one's."""
    images, electrons = [], []
    for cx, K in zip((0.0, cfg.baseline_m), rig_intrinsics(cfg)):
        rays = camera_rays(K, cfg.width, cfg.height)[:, :, 0].reshape(-1, 3)
        dirs = rays @ scene.cam_rot.T
        origin = scene.cam_pos + scene.cam_rot @ np.array([cx, 0.0, 0.0])
        hit = cast_rays(scene, origin, dirs)
        pts = origin + hit["t"][:, None] * dirs
        shade = 0.35 + 0.65 * np.clip(hit["normal"] @ scene.light_dir, 0, 1)
        radiance = _albedo(scene, pts, hit["sid"]) * shade[:, None]
        e = radiance * scene.lux * cfg.photons_per_lux
        if noise:
            e = rng.poisson(e).astype(np.float64) + rng.normal(0, cfg.rgb_read_noise, e.shape)
        electrons.append(e)
    # partial auto-exposure: bright scenes map to ~mid grey, dim ones stay darker (and noisier)
    gain = 110.0 / max(float(np.mean(electrons[0])), 1e-3) * (scene.lux / 400.0) ** 0.3
    for e in electrons:
        images.append(np.clip(np.round(e * gain), 0, 255).astype(np.uint8)
                      .reshape(cfg.height, cfg.width, 3))
    return images[0], images[1]


# ----------------------------------------------------------------------------- ToF


def tof_pose(scene: Scene, cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of the ToF camera in the *left camera* frame: x_left = R x_tof + t."""
    return rot_y(cfg.tof_yaw_deg), np.asarray(cfg.tof_offset_m, dtype=np.float64)


def render_tof(scene: Scene, cfg: SimConfig, rng: np.random.Generator,
               noise: bool = True) -> dict:
    """AMCW ToF frame (tof_height, tof_width): depth (z in the ToF frame, m), amplitude and
    ambient offset (electrons), valid mask; plus noise-free diagnostics (`true_depth` of the
    centre sub-ray, `subray_spread` = max - min sub-ray range) used by tests.
    """
    S, th, tw = cfg.supersample, cfg.tof_height, cfg.tof_width
    Kt = intrinsics(tw, th, cfg.tof_focal_px)
    r_lt, t_lt = tof_pose(scene, cfg)
    rot = scene.cam_rot @ r_lt
    origin = scene.cam_pos + scene.cam_rot @ t_lt
    sub = camera_rays(Kt, tw, th, S).reshape(-1, 3)  # (th*tw*S*S, 3), z = 1
    dirs = sub @ rot.T
    hit = cast_rays(scene, origin, dirs)
    norm = np.linalg.norm(dirs, axis=1)
    rng_m = hit["t"] * norm  # range along the ray
    pts = origin + hit["t"][:, None] * dirs
    cos = np.clip(-np.einsum("ij,ij->i", hit["normal"], dirs) / norm, 0, 1)
    ir = _surface_table(scene)["ir"][hit["sid"]]
    k = 4 * np.pi * cfg.mod_freq_hz / C_LIGHT  # phase per metre of range (round trip)
    a_dir = cfg.tof_power * ir * cos / np.maximum(rng_m, 0.05) ** 2
    phasor = (a_dir * np.exp(1j * k * rng_m)).reshape(th * tw, S * S).mean(axis=1)
    ambient = (_ambient_at(scene, pts) * ir).reshape(th * tw, S * S).mean(axis=1) + cfg.tof_dark

    centre = (S * S) // 2
    c_idx = np.arange(th * tw) * S * S + centre
    p_pts, p_n, p_r, p_ir = pts[c_idx], hit["normal"][c_idx], rng_m[c_idx], ir[c_idx]
    if cfg.multipath_gain > 0:
        phasor = phasor + cfg.multipath_gain * _multipath(
            p_pts, p_n, p_r, p_ir, th, tw, cfg, k)
    # wiggling: a 4th-harmonic cyclic phase error of amplitude k * wiggle_m
    phase0 = np.angle(phasor)
    phasor = phasor * np.exp(1j * k * cfg.wiggle_m * np.sin(4 * phase0))
    amp_true = np.abs(phasor)
    sigma = np.sqrt((amp_true + ambient) / 2 + cfg.tof_read_noise**2)
    if noise:  # complex shot + read noise; ambient photons add shot noise but no signal
        phasor = phasor + sigma * (rng.standard_normal(len(phasor))
                                   + 1j * rng.standard_normal(len(phasor)))
    phase = np.mod(np.angle(phasor), 2 * np.pi)  # wraps at c / (2 f)
    ranges = phase / k
    centre_dir = camera_rays(Kt, tw, th)[:, :, 0].reshape(-1, 3)
    depth = ranges / np.linalg.norm(centre_dir, axis=1)
    amp = np.abs(phasor)
    valid = (amp >= cfg.dropout_amplitude) & (amp >= cfg.min_snr * sigma)
    spread = rng_m.reshape(th * tw, S * S)
    shape = (th, tw)
    return {
        "depth": np.where(valid, depth, 0.0).reshape(shape).astype(np.float32),
        "amplitude": amp.reshape(shape).astype(np.float32),
        "ambient": ambient.reshape(shape).astype(np.float32),
        "valid": valid.reshape(shape),
        "true_depth": (p_r / np.linalg.norm(centre_dir, axis=1)).reshape(shape).astype(np.float32),
        "subray_spread": (spread.max(1) - spread.min(1)).reshape(shape).astype(np.float32),
    }


def _multipath(p_pts, p_n, p_r, p_ir, th, tw, cfg: SimConfig, k: float) -> np.ndarray:
    """One-bounce indirect phasor per ToF pixel (th*tw,) from patches on a coarse pixel grid.

    A patch q seen by a ToF pixel of solid angle Omega receives P * Omega (the r^2 and cos
    factors cancel), re-emits rho_q / pi of it, and pixel p's surface receives
    rho_q / pi * P * Omega * cos_q * cos_p / d^2, reflected with rho_p. Path: r_q + d + r_p.
    Visibility between p and q is not tested (an approximation, see README).
    """
    s = max(cfg.mpi_stride, int(np.ceil(np.sqrt(th * tw / 300))))  # at most ~300 patches
    grid = np.arange(th * tw).reshape(th, tw)[s // 2::s, s // 2::s].ravel()
    q_pts, q_n, q_r, q_ir = p_pts[grid], p_n[grid], p_r[grid], p_ir[grid]
    omega = (s / cfg.tof_focal_px) ** 2
    chunk = 4096  # pixels per block of the (P, Q) terms: bounded memory at any resolution
    if len(p_pts) > chunk:
        return np.concatenate([_mp_block(p_pts[i:i + chunk], p_n[i:i + chunk],
                                         p_r[i:i + chunk], p_ir[i:i + chunk],
                                         q_pts, q_n, q_r, q_ir, omega, cfg, k)
                               for i in range(0, len(p_pts), chunk)])
    return _mp_block(p_pts, p_n, p_r, p_ir, q_pts, q_n, q_r, q_ir, omega, cfg, k)


def _mp_block(p_pts, p_n, p_r, p_ir, q_pts, q_n, q_r, q_ir, omega, cfg, k):
    # all (P, Q) terms through matrix products: v = q - p, so v.n_p, v.n_q and |v|^2 expand
    dot_p = p_n @ q_pts.T - np.einsum("pk,pk->p", p_pts, p_n)[:, None]
    dot_q = np.einsum("qk,qk->q", q_pts, q_n)[None, :] - p_pts @ q_n.T
    d2 = ((p_pts**2).sum(1)[:, None] + (q_pts**2).sum(1)[None, :] - 2 * p_pts @ q_pts.T)
    d = np.sqrt(np.maximum(d2, 0))
    dd = np.maximum(d, 0.05)
    cos_p = np.clip(dot_p / dd, 0, 1)
    cos_q = np.clip(-dot_q / dd, 0, 1)
    w = (q_ir / np.pi)[None, :] * cfg.tof_power * omega * cos_p * cos_q / dd**2
    w = np.where(d > 0.02, w, 0.0)
    path = q_r[None, :] + d + p_r[:, None]  # emitter -> q -> p -> sensor, vs 2 r_p direct
    return p_ir * (w * np.exp(0.5j * k * path)).sum(axis=1)


# ----------------------------------------------------------------------------- ground truth


def render_ground_truth(scene: Scene, cfg: SimConfig) -> dict:
    """Left-view GT at the work resolution (h, w): depth, normals (camera frame), masks."""
    f = cfg.focal_px / cfg.work_downsample
    h, w = work_shape(cfg.height, cfg.width, cfg.work_downsample)
    K = rig_intrinsics(cfg)[0] / cfg.work_downsample
    K[2, 2] = 1.0
    rays = camera_rays(K, w, h)[:, :, 0].reshape(-1, 3)
    dirs = rays @ scene.cam_rot.T
    hit = cast_rays(scene, scene.cam_pos, dirs)
    depth = hit["t"].reshape(h, w)  # rays have z = 1 in the camera frame, so t is depth
    pts = scene.cam_pos + hit["t"][:, None] * dirs
    tab = _surface_table(scene)
    normals = (hit["normal"] @ scene.cam_rot).reshape(h, w, 3)
    inv = ndimage.gaussian_filter(1.0 / depth, 1.5)
    lap = ndimage.laplace(inv) * f * depth  # inverse depth is linear on planes; > 0 at corners
    rel_jump = ndimage.maximum_filter(
        np.maximum(np.abs(np.diff(depth, axis=0, append=depth[-1:])),
                   np.abs(np.diff(depth, axis=1, append=depth[:, -1:]))) / depth, size=3)
    edges = rel_jump > 0.05
    concave = (lap > 0.02) & ~ndimage.binary_dilation(edges, iterations=2)
    return {
        "depth": depth.astype(np.float32),
        "normals": normals.astype(np.float32),
        "mask_textureless": (tab["texture"][hit["sid"]] < 0.03).reshape(h, w),
        "mask_dark_ir": (tab["ir"][hit["sid"]] < 0.15).reshape(h, w),
        "mask_edges": edges,
        "mask_concave": concave,
        "mask_high_ambient": (_sunlit(scene, pts).reshape(h, w)
                              | (scene.ambient > 0.5 * cfg.ambient_range[1])),
    }


MASKS = ("textureless", "dark_ir", "edges", "concave", "high_ambient")


def simulate_scene(seed: int, cfg: SimConfig, overrides: dict | None = None) -> dict:
    """One seeded scene: RGB pair, raw ToF frame and work-resolution ground truth (arrays)."""
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, cfg, overrides)
    scene.factors["sun_gain"] = cfg.sun_gain
    left, right = render_rgb_pair(scene, cfg, rng)
    tof = render_tof(scene, cfg, rng)
    gt = render_ground_truth(scene, cfg)
    out = {"left": left, "right": right, **{f"tof_{k}": v for k, v in tof.items()}, **gt}
    out["factors"] = np.array([scene.ambient, scene.lux], dtype=np.float32)
    return out
