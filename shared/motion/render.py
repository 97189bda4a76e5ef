"""OpenCV rendering of people as shaded volumes, with backgrounds, props, occluders and noise.

Each limb is a capsule (a thick round-capped line) drawn twice: a shadowed body, then a thinner
lit core shifted towards the light, whose brightness is a Lambert term for a cylinder
(sqrt(1 - (axis . light)^2)); the head is a shaded ellipse. Limbs of all people are sorted by
camera depth and drawn far to near (painter's algorithm). Backgrounds are procedural texture
families drawn once per clip on a larger canvas; camera pan and zoom move it with one affine
warp per frame.
"""

from __future__ import annotations

import colorsys
import dataclasses

import cv2
import numpy as np

from shared.motion.camera import Camera, project, to_camera
from shared.motion.skeleton import JOINT_INDEX

__all__ = ["Appearance", "render", "make_background", "background_frames", "add_sensor_noise",
           "Occluder", "BACKGROUND_FAMILIES", "LIMBS", "self_occluded", "occluder_mask"]

_J = JOINT_INDEX
# (joint a, joint b, radius as a fraction of height, body part)
LIMBS: tuple[tuple[int, int, float, str], ...] = (
    (_J["pelvis"], _J["spine"], 0.085, "top"),
    (_J["spine"], _J["neck"], 0.08, "top"),
    (_J["left_hip"], _J["right_hip"], 0.055, "bottom"),
    (_J["left_shoulder"], _J["right_shoulder"], 0.045, "top"),
    (_J["neck"], _J["head"], 0.028, "skin"),
    (_J["left_shoulder"], _J["left_elbow"], 0.03, "top"),
    (_J["right_shoulder"], _J["right_elbow"], 0.03, "top"),
    (_J["left_elbow"], _J["left_wrist"], 0.024, "sleeve"),
    (_J["right_elbow"], _J["right_wrist"], 0.024, "sleeve"),
    (_J["left_hip"], _J["left_knee"], 0.045, "bottom"),
    (_J["right_hip"], _J["right_knee"], 0.045, "bottom"),
    (_J["left_knee"], _J["left_ankle"], 0.034, "bottom"),
    (_J["right_knee"], _J["right_ankle"], 0.034, "bottom"),
    (_J["left_ankle"], _J["left_toe"], 0.024, "shoes"),
    (_J["right_ankle"], _J["right_toe"], 0.024, "shoes"),
    (_J["left_wrist"], _J["left_wrist"], 0.026, "skin"),  # hands: spheres
    (_J["right_wrist"], _J["right_wrist"], 0.026, "skin"),
)
_HEAD = (_J["head"], 0.068)  # head sphere radius as a fraction of height
_LIMB_A = np.array([a for a, _, _, _ in LIMBS])
_LIMB_B = np.array([b for _, b, _, _ in LIMBS])
_LIMB_R = np.array([r for _, _, r, _ in LIMBS])
_LIMB_PART = [p for _, _, _, p in LIMBS]
_TORSO_JOINTS = [_J["pelvis"], _J["spine"], _J["neck"]]
_LIGHT = np.array([-0.4, -0.7, -0.55]) / np.linalg.norm([-0.4, -0.7, -0.55])  # camera coords
_SHIFT = 2  # sub-pixel drawing: coordinates in 1/4 pixel
_SC = 1 << _SHIFT


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


_SKIN = [(0.07, 0.35, 0.95), (0.07, 0.45, 0.8), (0.06, 0.55, 0.6), (0.05, 0.6, 0.4),
         (0.08, 0.3, 0.9)]


@dataclasses.dataclass
class Appearance:
    """Colours (RGB 0-255) of a person's parts and their height (m, scales limb radii)."""

    top: tuple[int, int, int] = (60, 90, 170)
    sleeve: tuple[int, int, int] = (60, 90, 170)
    bottom: tuple[int, int, int] = (40, 40, 50)
    shoes: tuple[int, int, int] = (30, 30, 30)
    skin: tuple[int, int, int] = (220, 180, 150)
    hair: tuple[int, int, int] = (50, 35, 25)
    height: float = 1.75
    girth: float = 1.0

    @classmethod
    def sample(cls, rng: np.random.Generator, hue=(0.0, 1.0), saturation=(0.25, 0.9),
               value=(0.3, 0.95), height: float = 1.75, girth: float = 1.0) -> Appearance:
        def col():
            return _hsv(rng.uniform(*hue), rng.uniform(*saturation), rng.uniform(*value))

        top = col()
        sleeve = top if rng.random() < 0.6 else _hsv(0, 0, 0.85) if rng.random() < 0.5 \
            else col()
        skin = _hsv(*_SKIN[int(rng.integers(len(_SKIN)))])
        return cls(top, sleeve if rng.random() < 0.8 else skin, col(),
                   _hsv(0, 0, rng.uniform(0.1, 0.9)), skin,
                   _hsv(rng.uniform(0.02, 0.1), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.8)),
                   height, girth)

    def colour(self, part: str) -> np.ndarray:
        return np.asarray(getattr(self, part), dtype=np.float64)


@dataclasses.dataclass
class Occluder:
    """A static object between camera and person: `kind` 'pole' (a vertical cylinder standing at
    `position`, `size` = (radius, height)) or 'box' (centre-bottom at `position`, `size` =
    (width, height, depth))."""

    kind: str
    position: tuple[float, float, float]
    size: tuple[float, ...]
    colour: tuple[int, int, int] = (120, 110, 100)

    def corners(self) -> np.ndarray:
        x, y, z = self.position
        if self.kind == "pole":
            r, h = self.size[:2]
            return np.array([[x, y, z], [x, y + h, z]])
        w, h, d = self.size[:3]
        xs, ys, zs = (x - w / 2, x + w / 2), (y, y + h), (z - d / 2, z + d / 2)
        return np.array([[a, b, c] for a in xs for b in ys for c in zs])


# ---- backgrounds ----------------------------------------------------------------------

def _noise(rng, h, w, cell):
    g = rng.random((max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def _tint(base, amount, colour_a, colour_b):
    a = np.asarray(colour_a, np.float32)
    b = np.asarray(colour_b, np.float32)
    return np.clip(a + (b - a) * base[..., None] * amount, 0, 255)


def _palette(rng, n=2, sat=(0.2, 0.7), val=(0.35, 0.9)):
    return [_hsv(rng.random(), rng.uniform(*sat), rng.uniform(*val)) for _ in range(n)]


def _wall(rng, family, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c1, c2 = _palette(rng)
    if family == 0:  # sky gradient with soft clouds
        sky = _hsv(rng.uniform(0.52, 0.65), rng.uniform(0.2, 0.6), rng.uniform(0.7, 1.0))
        grad = yy / max(h - 1, 1)
        base = _tint(grad, 0.5, sky, (255, 255, 255))
        cloud = np.clip(_noise(rng, h, w, max(4, w // 8)) - 0.5, 0, 1)[..., None] * 1.5
        return np.clip(base * (1 - cloud) + 250 * cloud, 0, 255)
    if family == 1:  # wallpaper stripes
        period = rng.uniform(6, 20) * w / 96
        s = (np.sin(2 * np.pi * xx / period) > rng.uniform(-0.5, 0.5)).astype(np.float32)
        return _tint(s, 1.0, c1, c2)
    if family == 2:  # soft blobs
        return _tint(_noise(rng, h, w, max(4, w // 10)), 1.0, c1, c2)
    if family == 3:  # checkerboard
        cell = rng.uniform(6, 16) * w / 96
        s = ((xx // cell + yy // cell) % 2).astype(np.float32)
        return _tint(s, 1.0, c1, c2)
    if family == 4:  # bricks
        bh = rng.uniform(4, 8) * w / 96
        bw = bh * rng.uniform(2, 3)
        row = yy // bh
        off = (row % 2) * bw / 2
        mortar = ((yy % bh) < 1.0) | (((xx + off) % bw) < 1.0)
        jitter = _noise(rng, h, w, 3) * 0.3
        return _tint(np.where(mortar, 1.0, jitter).astype(np.float32), 1.0, c1, (225, 225, 220))
    # family 5: plaid of sinusoids
    p1, p2 = rng.uniform(8, 24, 2) * w / 96
    s = 0.25 * (2 + np.sin(2 * np.pi * xx / p1) + np.sin(2 * np.pi * yy / p2))
    return _tint(s.astype(np.float32), 1.0, c1, c2)


def _floor(rng, family, h, w, horizon):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = np.maximum(yy - horizon, 1.0)  # rows below the horizon: nearer = larger
    c1, c2 = _palette(rng, sat=(0.1, 0.6), val=(0.25, 0.75))
    if family in (0, 5):  # grass / speckle
        n = _noise(rng, h, w, 2) * 0.6 + _noise(rng, h, w, 12) * 0.4
        if family == 0:
            c1 = _hsv(rng.uniform(0.2, 0.35), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.6))
            c2 = _hsv(rng.uniform(0.1, 0.2), rng.uniform(0.3, 0.6), rng.uniform(0.4, 0.7))
        return _tint(n, 1.0, c1, c2)
    if family in (1, 3):  # perspective tiles
        cell = rng.uniform(0.4, 0.8)
        fx = (xx - w / 2) / depth * cell
        fz = 40.0 / depth * cell
        s = ((np.floor(fx) + np.floor(fz)) % 2).astype(np.float32)
        return _tint(s, rng.uniform(0.3, 1.0), c1, c2)
    if family == 4:  # concrete
        return _tint(_noise(rng, h, w, 3) * 0.5 + 0.25, 1.0, c1, c2)
    # family 2: planks receding to the horizon
    fx = (xx - w / 2) / depth * rng.uniform(1.0, 3.0)
    s = (0.5 + 0.5 * np.sin(2 * np.pi * fx)).astype(np.float32) * 0.5 + _noise(rng, h, w, 4) * 0.3
    return _tint(s, 1.0, c1, c2)


BACKGROUND_FAMILIES = 6


def make_background(rng: np.random.Generator, family: int, size: tuple[int, int],
                    horizon: float, plain: bool = False, margin: float = 0.5) -> np.ndarray:
    """A background canvas (H', W', 3) uint8 larger than `size` = (w, h) by `margin` on every
    side (room for pan and zoom): wall/sky above the image row `horizon`, floor below.
    `family` in [0, BACKGROUND_FAMILIES) picks the texture family; `plain` gives two flat
    colours."""
    w, h = size
    mw, mh = int(round(w * margin)), int(round(h * margin))
    W, H = w + 2 * mw, h + 2 * mh
    hz = float(np.clip(horizon + mh, 0, H))
    if plain:
        wall = np.empty((H, W, 3), np.float32)
        wall[:] = _palette(rng, 1, sat=(0.0, 0.3), val=(0.5, 0.95))[0]
        floor = np.empty((H, W, 3), np.float32)
        floor[:] = _palette(rng, 1, sat=(0.0, 0.3), val=(0.25, 0.6))[0]
    else:
        wall = _wall(rng, family % BACKGROUND_FAMILIES, H, W)
        floor = _floor(rng, family % BACKGROUND_FAMILIES, H, W, hz)
    rows = np.arange(H, dtype=np.float32)[:, None, None]
    alpha = np.clip(rows - hz + 0.5, 0, 1)  # anti-aliased horizon
    img = wall * (1 - alpha) + floor * alpha
    return np.clip(img, 0, 255).astype(np.uint8)


def background_frames(canvas: np.ndarray, size: tuple[int, int], shift_x: np.ndarray,
                      zoom: np.ndarray) -> np.ndarray:
    """(T, h, w, 3): the canvas centre, shifted left by `shift_x` px (T,) and scaled by `zoom`
    (T,) about the image centre. A static camera is one crop, reused."""
    w, h = size
    H, W = canvas.shape[:2]
    T = len(shift_x)
    out = np.empty((T, h, w, 3), np.uint8)
    if np.allclose(shift_x, shift_x[0]) and np.allclose(zoom, 1.0):
        M = np.array([[1.0, 0, -(W - w) / 2 + shift_x[0]], [0, 1.0, -(H - h) / 2]])
        out[:] = cv2.warpAffine(canvas, M, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
        return out
    for i in range(T):
        z = zoom[i]
        # dst = z * (src - canvas centre) + image centre - shift
        M = np.array([[z, 0, w / 2 - z * W / 2 - shift_x[i]], [0, z, h / 2 - z * H / 2]])
        out[i] = cv2.warpAffine(canvas, M, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
    return out


# ---- people, props, occluders -----------------------------------------------------------

def _capsule(img, p, q, r, colour, light_uv, lambert):
    """A shaded capsule from p to q (pixels, float) of radius r (pixels)."""
    c = np.asarray(colour, dtype=np.float64)
    dark = tuple(float(v) for v in np.clip(c * 0.55, 0, 255))
    lit = tuple(float(v) for v in np.clip(c * (0.6 + 0.55 * lambert), 0, 255))
    th = max(1, int(round(2 * r)))
    pi = (int(round(p[0] * _SC)), int(round(p[1] * _SC)))
    qi = (int(round(q[0] * _SC)), int(round(q[1] * _SC)))
    cv2.line(img, pi, qi, dark, th, cv2.LINE_AA, _SHIFT)
    if r >= 1.0:
        off = light_uv * r * 0.35
        pi2 = (int(round((p[0] + off[0]) * _SC)), int(round((p[1] + off[1]) * _SC)))
        qi2 = (int(round((q[0] + off[0]) * _SC)), int(round((q[1] + off[1]) * _SC)))
        cv2.line(img, pi2, qi2, lit, max(1, int(round(1.2 * r))), cv2.LINE_AA, _SHIFT)


def _sphere(img, p, r, colour, light_uv):
    c = np.asarray(colour, dtype=np.float64)
    ci = (int(round(p[0] * _SC)), int(round(p[1] * _SC)))
    cv2.circle(img, ci, max(1, int(round(r * _SC))), tuple(float(v) for v in c * 0.6), -1,
               cv2.LINE_AA, _SHIFT)
    if r >= 1.0:
        off = light_uv * r * 0.3
        lc = (int(round((p[0] + off[0]) * _SC)), int(round((p[1] + off[1]) * _SC)))
        cv2.circle(img, lc, max(1, int(round(r * 0.55 * _SC))),
                   tuple(float(v) for v in np.clip(c * 1.1, 0, 255)), -1, cv2.LINE_AA, _SHIFT)


def _ints(a: np.ndarray) -> list:
    """Pixel coordinates -> nested lists of ints in 1/_SC pixel units (cv2's `shift`)."""
    return np.round(np.nan_to_num(a) * _SC).astype(np.int64).tolist()


def _person_items(joints3d: np.ndarray, camera: Camera, app: Appearance, light: np.ndarray
                  ) -> list[list[tuple]]:
    """Per frame, the drawing items (depth, kind, args) of one person, with every coordinate,
    radius and shade computed for all frames at once (the per-frame loop only draws)."""
    pc = to_camera(joints3d, camera)  # (T, J, 3)
    z = pc[..., 2]
    uv = project(joints3d, camera)  # (T, J, 2)
    f = camera.K[:, 0, 0]
    H = app.height * app.girth
    a, b = _LIMB_A, _LIMB_B
    d = pc[:, b] - pc[:, a]  # (T, L, 3)
    n = np.linalg.norm(d, axis=-1)
    light_uv = light[:2] / max(float(np.linalg.norm(light[:2])), 1e-9)
    cosl = (d @ light) / np.maximum(n, 1e-9)
    lam = np.where(n > 1e-9, np.sqrt(np.clip(1 - cosl ** 2, 0, 1)), 1.0)  # cylinder Lambert
    zmid = 0.5 * (z[:, a] + z[:, b])
    r = f[:, None] * _LIMB_R * H / np.maximum(zmid, 1e-3)  # (T, L) pixels
    base = np.stack([app.colour(p) for p in _LIMB_PART])  # (L, 3)
    dark = np.clip(base * 0.55, 0, 255).tolist()
    lit = np.clip(base[None] * (0.6 + 0.55 * lam[..., None]), 0, 255).tolist()
    off = light_uv * r[..., None] * 0.35
    P, Q = _ints(uv[:, a]), _ints(uv[:, b])
    P2, Q2 = _ints(uv[:, a] + off), _ints(uv[:, b] + off)
    th = np.maximum(1, np.round(2 * r)).astype(np.int64).tolist()
    th2 = np.maximum(1, np.round(1.2 * r)).astype(np.int64).tolist()
    core = (r >= 1.0).tolist()
    # head: skin sphere, hair away from the face, the face (lit skin) when it turns to the camera
    hj, hr = _HEAD
    rh = f * hr * H / np.maximum(z[:, hj], 1e-3)  # (T,)
    sh = pc[:, _J["left_shoulder"]] - pc[:, _J["right_shoulder"]]
    up = pc[:, hj] - pc[:, _J["neck"]]
    face = np.cross(sh, up)  # the person's forward direction, camera coordinates
    face /= np.maximum(np.linalg.norm(face, axis=-1, keepdims=True), 1e-9)
    toward = np.clip(-face[:, 2], 0, 1)  # 1 = facing the camera
    vert = np.array([0.0, 1.0])
    hair_c = uv[:, hj] - (face[:, :2] * 0.35 + vert * 0.15) * rh[:, None]
    face_c = uv[:, hj] + (face[:, :2] * 0.3 + vert * 0.1) * rh[:, None]
    skin = app.colour("skin")
    head = list(zip(_ints(uv[:, hj]), _ints(rh), _ints(hair_c), _ints(0.85 * rh),
                    _ints(face_c), _ints(rh * (0.45 + 0.35 * toward)), (toward > 0.15).tolist()))
    head_cols = (tuple(np.clip(skin * 0.6, 0, 255)), tuple(app.colour("hair")),
                 tuple(np.clip(skin * 1.05, 0, 255)))
    valid = (np.all(z > 0.05, axis=1) & np.all(np.isfinite(uv), axis=(1, 2))).tolist()
    zl, zh = zmid.tolist(), (z[:, hj] - 0.5 * hr * H).tolist()
    out = []
    for t in range(len(joints3d)):
        if not valid[t]:
            out.append([])
            continue
        items = [(zl[t][k], 0, (P[t][k], Q[t][k], th[t][k], dark[k], P2[t][k], Q2[t][k],
                                th2[t][k], lit[t][k], core[t][k])) for k in range(len(LIMBS))]
        items.append((zh[t], 1, head[t] + head_cols))
        out.append(items)
    return out


def _draw_items(img, items, light_uv):
    aa = cv2.LINE_AA
    for _, kind, g in sorted(items, key=lambda it: -it[0]):
        if kind == 0:  # capsule: shadowed body, then the lit core
            p, q, th, dark, p2, q2, th2, lit, core = g
            cv2.line(img, p, q, dark, th, aa, _SHIFT)
            if core:
                cv2.line(img, p2, q2, lit, th2, aa, _SHIFT)
        elif kind == 1:  # head
            c, r, hc, hr, fc, fr, show_face, base, hair, lit = g
            cv2.circle(img, c, max(r, 1), base, -1, aa, _SHIFT)
            cv2.circle(img, hc, max(hr, 1), hair, -1, aa, _SHIFT)
            if show_face:
                cv2.circle(img, fc, max(fr, 1), lit, -1, aa, _SHIFT)
        else:  # a ball
            p, r = g
            _sphere(img, p, r, (200.0, 60.0, 40.0), light_uv)


def render(joints3d: np.ndarray, camera: Camera, appearance: Appearance,
           size: tuple[int, int] | int | None = None, *, background: np.ndarray | None = None,
           people: list[tuple[np.ndarray, Appearance]] = (), balls: np.ndarray | None = None,
           ball_radius: float = 0.11, boxes: list[Occluder] = (),
           occluders: list[Occluder] = (), shadows: bool = True,
           light: np.ndarray | None = None) -> np.ndarray:
    """Frames (T, h, w, 3) uint8 RGB of the person `joints3d` (T, J, 3) seen by `camera`.

    `background`: (h, w, 3) or (T, h, w, 3) uint8 (default: grey wall over a darker floor);
    `people`: other persons [(joints3d, appearance)], drawn in the same depth order; `balls`
    (T, 3) world positions (NaN = none); `boxes`: props on the floor drawn behind the people
    (a chair); `occluders`: drawn last, in front of everything; `light`: the direction (camera
    coordinates) towards which light travels (default: from the upper left, behind the camera).

    Speed (measured on one core at 96 px, default clips with 0-1 distractors): 1,180-1,410
    frames/s (under 1 ms a frame); a whole `generate_clip` with motion, background and noise
    410-540 frames/s."""
    joints3d = np.asarray(joints3d, dtype=np.float64)
    T = len(joints3d)
    w, h = camera.size if size is None else (size, size) if isinstance(size, int) else size
    if (w, h) != tuple(camera.size):
        raise ValueError(f"size {(w, h)} differs from the camera's {camera.size}")
    if background is None:
        frames = np.empty((T, h, w, 3), np.uint8)
        frames[:] = 150
        frames[:, h // 2:] = 100
    elif background.ndim == 3:
        frames = np.broadcast_to(background, (T, h, w, 3)).copy()
    else:
        frames = background.copy()
    persons = [(joints3d, appearance)] + list(people)
    light = _LIGHT if light is None else np.asarray(light, np.float64) / np.linalg.norm(light)
    light_uv = light[:2] / max(float(np.linalg.norm(light[:2])), 1e-9)
    per_person = [_person_items(j, camera, a, light) for j, a in persons]
    ball_items: list = [[] for _ in range(T)]
    if balls is not None:
        buv = project(balls[:, None], camera)[:, 0]
        bz = to_camera(balls[:, None], camera)[:, 0, 2]
        for t in range(T):
            if np.all(np.isfinite(buv[t])) and bz[t] > 0.05:
                ball_items[t] = [(bz[t], 2, (buv[t], camera.K[t, 0, 0] * ball_radius / bz[t]))]
    shade = _shadow_polygons(persons, camera) if shadows else None
    box_uv = [project(np.broadcast_to(o.corners(), (T,) + o.corners().shape), camera)
              for o in boxes]
    occ_uv = [project(np.broadcast_to(o.corners(), (T,) + o.corners().shape), camera)
              for o in occluders]
    occ_pc = [to_camera(np.broadcast_to(o.corners(), (T,) + o.corners().shape), camera)
              for o in occluders]
    for t in range(T):
        img = frames[t]
        if shade is not None:
            for poly, strength in shade[t]:
                _darken(img, poly, strength)
        for o, uvb in zip(boxes, box_uv):
            _draw_solid(img, o, uvb[t], None, camera.K[t, 0, 0], light_uv)
        _draw_items(img, [it for pp in per_person for it in pp[t]] + ball_items[t], light_uv)
        for o, uvo, pco in zip(occluders, occ_uv, occ_pc):
            _draw_solid(img, o, uvo[t], pco[t], camera.K[t, 0, 0], light_uv)
    return frames


def _shadow_polygons(persons, camera) -> list[list[tuple[np.ndarray, float]]]:
    """Per frame, a floor ellipse (y = 0) under each person, projected, with its darkness
    (fainter while airborne)."""
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    T = len(camera)
    out: list[list] = [[] for _ in range(T)]
    for joints, app in persons:
        c = joints[:, [_J["left_ankle"], _J["right_ankle"]]].mean(1)  # (T, 3)
        r = 0.22 * app.height / 1.75
        pts = np.stack([c[:, None, 0] + r * np.cos(ang), np.zeros((T, len(ang))),
                        c[:, None, 2] + 0.7 * r * np.sin(ang)], -1)
        uv = project(pts, camera)
        lift = np.maximum(0.0, joints[:, :, 1].min(1))
        strength = 0.35 / (1 + 4 * lift)
        ok = np.all(np.isfinite(uv), axis=(1, 2))
        for t in np.flatnonzero(ok):
            out[t].append((uv[t], float(strength[t])))
    return out


def _darken(img, uv, strength):
    """Multiply the pixels inside polygon `uv` by (1 - strength), anti-aliased."""
    h, w = img.shape[:2]
    x0, y0 = np.floor(uv.min(0)).astype(int) - 1
    x1, y1 = np.ceil(uv.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, np.round((uv - [x0, y0]) * _SC).astype(np.int32), 255,
                       cv2.LINE_AA, _SHIFT)
    m = mask.astype(np.float32)[..., None] * (strength / 255)
    roi = img[y0:y1, x0:x1]
    roi[:] = (roi * (1 - m)).astype(np.uint8)


def _draw_solid(img, o: Occluder, uv, pc, f, light_uv):
    if not np.all(np.isfinite(uv)):
        return
    col = np.asarray(o.colour, dtype=np.float64)
    if o.kind == "pole":
        z = np.mean(pc[:, 2]) if pc is not None else 3.0
        _capsule(img, uv[0], uv[1], f * o.size[0] / max(z, 0.05), col, light_uv, 0.8)
        return
    # box: fill the hull darker, then the top face lighter
    hull = cv2.convexHull(np.round(uv * _SC).astype(np.int32))
    cv2.fillConvexPoly(img, hull, tuple(float(v) for v in col * 0.7), cv2.LINE_AA, _SHIFT)
    top = uv[[2, 3, 7, 6]]  # the corners at y + h, in order around the rectangle
    cv2.fillConvexPoly(img, np.round(top * _SC).astype(np.int32),
                       tuple(float(v) for v in np.clip(col * 1.05, 0, 255)), cv2.LINE_AA, _SHIFT)


def occluder_mask(occluders: list[Occluder], camera: Camera, t: int) -> np.ndarray:
    """(h, w) bool: pixels covered by the occluders at frame t."""
    w, h = camera.size
    mask = np.zeros((h, w), np.uint8)
    cam = Camera(camera.K[t:t + 1], camera.R[t:t + 1], camera.t[t:t + 1], camera.size)
    for o in occluders:
        uv = project(o.corners()[None], cam)[0]
        if not np.all(np.isfinite(uv)):
            continue
        if o.kind == "pole":
            z = float(np.mean(to_camera(o.corners()[None], cam)[0, :, 2]))
            th = max(1, int(round(2 * cam.K[0, 0, 0] * o.size[0] / max(z, 0.05))))
            cv2.line(mask, tuple(np.round(uv[0]).astype(int)), tuple(np.round(uv[1]).astype(int)),
                     1, th)
        else:
            cv2.fillConvexPoly(mask, cv2.convexHull(np.round(uv).astype(np.int32)), 1)
    return mask.astype(bool)


def self_occluded(joints3d: np.ndarray, camera: Camera, height: float, girth: float = 1.0
                  ) -> np.ndarray:
    """(T, J) bool: joints hidden behind the person's own limbs or head as `render` draws them:
    the joint's pixel lies inside a limb's (or the head's) image disc/capsule that is nearer the
    camera than the joint by more than that limb's radius. Limbs that end at the joint do not
    count; the trunk joints (pelvis, spine, neck) are never self-occluded."""
    pc = to_camera(joints3d, camera)  # (T, J, 3)
    uv = project(joints3d, camera)  # (T, J, 2)
    f = camera.K[:, 0, 0][:, None, None]
    H = height * girth
    a, b = _LIMB_A, _LIMB_B
    # shapes: (T, J joints, L limbs)
    pa, pb = uv[:, None, a], uv[:, None, b]  # (T, 1, L, 2)
    seg = pb - pa
    q = uv[:, :, None] - pa  # (T, J, L, 2)
    s = np.clip((q * seg).sum(-1) / np.maximum((seg ** 2).sum(-1), 1e-9), 0, 1)
    dist = np.linalg.norm(q - s[..., None] * seg, axis=-1)
    za, zb = pc[:, None, a, 2], pc[:, None, b, 2]
    zlimb = za + s * (zb - za)  # depth of the limb's axis at the closest point
    rw = _LIMB_R * H  # world radius (L,)
    r_px = f * rw / np.maximum(zlimb, 1e-3)
    zj = pc[:, :, None, 2]
    own = (a[None, :] == np.arange(pc.shape[1])[:, None]) | \
        (b[None, :] == np.arange(pc.shape[1])[:, None])  # (J, L)
    covered = (dist < 0.9 * r_px) & (zlimb + rw + 0.02 < zj) & ~own[None]
    hj, hr = _HEAD
    zh = pc[:, hj, 2][:, None]
    dh = np.linalg.norm(uv - uv[:, hj:hj + 1], axis=-1)
    head = (dh < 0.9 * f[:, :, 0] * hr * H / np.maximum(zh, 1e-3)) & (zh + hr * H + 0.02
                                                                    < pc[..., 2])
    head[:, hj] = False
    hidden = covered.any(-1) | head
    hidden[:, _TORSO_JOINTS] = False  # inside the trunk: its surface is what is seen
    return hidden


def add_sensor_noise(frames: np.ndarray, rng: np.random.Generator, std: float,
                     blur: bool, gain: float = 1.0) -> np.ndarray:
    """Exposure `gain`, optionally a 3x3 Gaussian blur, then Gaussian pixel noise of `std`
    (0-255 scale); in place, frame by frame (bounded memory)."""
    noise = np.empty(frames.shape[1:], np.float32)
    for i in range(len(frames)):
        f = frames[i]
        if blur:
            f = cv2.GaussianBlur(f, (3, 3), 0.8)
        if std > 0 or gain != 1.0:
            if std > 0:
                rng.standard_normal(out=noise, dtype=np.float32)
                noise *= std
            else:
                noise[:] = 0
            noise += f * np.float32(gain)
            np.clip(noise, 0, 255, out=noise)
            f = noise
        frames[i] = f
    return frames
