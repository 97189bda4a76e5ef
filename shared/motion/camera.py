"""Pinhole cameras with per-frame intrinsics and extrinsics (OpenCV convention: x right, y down,
z forward), an orbit/pan/zoom rig and projection."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Camera", "orbit_camera", "project", "to_camera"]


@dataclasses.dataclass
class Camera:
    """`K` (T, 3, 3) intrinsics; `R` (T, 3, 3), `t` (T, 3) world -> camera: x_cam = R x + t;
    `size` = (width, height) in pixels."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.K)

    @property
    def position(self) -> np.ndarray:
        """(T, 3) camera centres in world coordinates."""
        return -np.einsum("tji,tj->ti", self.R, self.t)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"K": self.K, "R": self.R, "t": self.t,
                "size": np.asarray(self.size, dtype=np.int64)}

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> Camera:
        w, h = (int(v) for v in d["size"])
        return cls(np.asarray(d["K"]), np.asarray(d["R"]), np.asarray(d["t"]), (w, h))


def _look_rotation(forward: np.ndarray) -> np.ndarray:
    """(T, 3) viewing directions -> (T, 3, 3) world->camera rotations with rows (right, down,
    forward); the image is upright (world y up projects to image up)."""
    f = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    up = np.array([0.0, 1.0, 0.0])
    r = np.cross(f, up)
    r /= np.linalg.norm(r, axis=-1, keepdims=True)
    d = np.cross(f, r)
    return np.stack([r, d, f], axis=-2)


def orbit_camera(target: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, distance: np.ndarray,
                 fov_deg: np.ndarray, size: tuple[int, int], pan: np.ndarray | float = 0.0
                 ) -> Camera:
    """A camera `distance` m from `target` (T, 3), at azimuth `yaw` (rad; 0 = in front of a
    person facing +z, positive towards +x) and elevation `pitch` (rad, positive = above, looking
    down); `pan` (rad) then turns it about the vertical axis through its own centre. `fov_deg` is
    the vertical field of view; all per-frame arrays (T,) or scalars."""
    target = np.asarray(target, dtype=np.float64)
    T = len(target)
    yaw, pitch, distance, fov, pan = (np.broadcast_to(np.asarray(v, dtype=np.float64), (T,))
                                      for v in (yaw, pitch, distance, fov_deg, pan))
    back = np.stack([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)], -1)
    centre = target + distance[:, None] * back
    fwd = -back
    c, s = np.cos(pan), np.sin(pan)
    fwd = np.stack([c * fwd[:, 0] + s * fwd[:, 2], fwd[:, 1], -s * fwd[:, 0] + c * fwd[:, 2]], -1)
    R = _look_rotation(fwd)
    t = -np.einsum("tij,tj->ti", R, centre)
    w, h = size
    f = 0.5 * h / np.tan(np.radians(fov) / 2)
    K = np.zeros((T, 3, 3))
    K[:, 0, 0] = f
    K[:, 1, 1] = f
    K[:, 0, 2] = 0.5 * w
    K[:, 1, 2] = 0.5 * h
    K[:, 2, 2] = 1.0
    return Camera(K, R, t, (int(w), int(h)))


def to_camera(points3d: np.ndarray, camera: Camera) -> np.ndarray:
    """(T, N, 3) world points -> (T, N, 3) camera coordinates."""
    return np.einsum("tij,tnj->tni", camera.R, points3d) + camera.t[:, None, :]


def project(points3d: np.ndarray, camera: Camera) -> np.ndarray:
    """(T, N, 3) world points -> (T, N, 2) pixel coordinates (u right, v down; pixel centres at
    integer + 0.5): u = fx X/Z + cx, v = fy Y/Z + cy in camera coordinates. Points behind the
    camera (Z <= 0) give NaN."""
    pc = to_camera(np.asarray(points3d, dtype=np.float64), camera)
    z = pc[..., 2]
    zs = np.where(z > 1e-6, z, np.nan)
    K = camera.K
    u = K[:, None, 0, 0] * pc[..., 0] / zs + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * pc[..., 1] / zs + K[:, None, 1, 2]
    return np.stack([u, v], axis=-1)
