"""Radiometric one-bounce multipath estimate of an AMCW ToF frame, from the frame itself.

A ToF pixel p sees its surface lit directly, phasor a_p exp(i k r_p) with a_p = P rho_p cos_p /
r_p^2 (P the sensor's radiometric power: amplitude of an albedo-1 target at 1 m, normal
incidence), and indirectly through every other surface patch q the camera sees, which re-emits
rho_q / pi of the light it received (Lambertian). The indirect phasor is

    I_p = rho_p sum_q (rho_q / pi) P Omega_q cos_pq cos_qp / d_pq^2 exp(i k (r_q + d_pq + r_p) / 2)

(Fuchs, "Multipath interference compensation in time-of-flight camera images", ICPR 2010;
Jimenez et al., "Modeling and correction of multipath interference in time of flight cameras",
Image Vis. Comput. 2014). Everything it needs is in the frame: the surface points and normals
from the measured depth, each patch's albedo from its amplitude, rho_q = A_q r_q^2 / (P cos_q).
The measured phase is that of 1 + I_p / a_p, so the range error is angle(1 + I_p / a_p) / k.

This gives a scene's own multipath level, set by its geometry and albedos, which neither the
calibration nor a small image crop reveals. It is computed on a coarse grid (`n_recv` receiving
blocks, `n_patch` emitting patches) and interpolated: the indirect light varies slowly except at
depth edges. Occlusion between patches is not tested, and only diffuse one-bounce light is
modelled: a specular or multi-bounce room is beyond it.
"""

from __future__ import annotations

import cv2
import numpy as np

from mobifuse.simulator import C_LIGHT, camera_rays

__all__ = ["multipath_error", "compensate_multipath", "indirect_ratio", "MAX_CORRECTION"]

MAX_CORRECTION = 0.06  # the largest correction, as a fraction of the depth


def _blocks(a: np.ndarray, s: int) -> np.ndarray:
    """Means over s x s blocks (edge-padded) of a (h, w, ...) array, flattened row-major."""
    h, w = a.shape[:2]
    H, W = -(-h // s), -(-w // s)
    pad = ((0, H * s - h), (0, W * s - w)) + ((0, 0),) * (a.ndim - 2)
    b = np.pad(a, pad, mode="edge").reshape(H, s, W, s, *a.shape[2:]).mean(axis=(1, 3))
    return b.reshape(H * W, *a.shape[2:])


def _surface(depth: np.ndarray, valid: np.ndarray, K: np.ndarray):
    """Filled depth, points (h, w, 3), unit normals facing the camera, ray norms, view cosines."""
    from scipy import ndimage

    h, w = depth.shape
    idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    z = cv2.medianBlur(depth[idx[0], idx[1]].astype(np.float32), 3).astype(np.float64)
    rays = camera_rays(K, w, h)[:, :, 0]
    X = z[..., None] * rays
    Xs = cv2.GaussianBlur(X, (0, 0), 1.5, borderType=cv2.BORDER_REPLICATE)
    n = np.cross(np.gradient(Xs, axis=1), np.gradient(Xs, axis=0))
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12
    n = np.where((np.einsum("hwk,hwk->hw", n, rays) > 0)[..., None], -n, n)
    rn = np.linalg.norm(rays, axis=-1)
    cos_v = np.clip(-np.einsum("hwk,hwk->hw", n, rays) / rn, 0.2, 1.0)
    return z, X, n, rn, cos_v


def indirect_ratio(p_x, p_n, p_r, p_cos, q_x, q_n, q_rho, q_r, omega: float, k: float
                   ) -> np.ndarray:
    """I_p / a_p (P,) complex: the one-bounce indirect phasor of each receiver p over its direct
    one (rho_p and P cancel). Receivers: points p_x (P, 3), unit normals p_n (P, 3), ranges p_r
    (P,), view cosines p_cos (P,); patches: points q_x (Q, 3), unit normals q_n, albedos q_rho
    (Q,), ranges q_r, solid angle omega; k the phase per metre of range. Patch-receiver
    distances are floored at 5 cm and pairs closer than 2 cm (a patch with itself) dropped."""
    v = q_x[None, :, :] - p_x[:, None, :]  # (P, Q, 3) receiver -> patch
    d = np.linalg.norm(v, axis=-1)
    dd = np.maximum(d, 0.05)
    cos_p = np.clip(np.einsum("pqk,pk->pq", v, p_n) / dd, 0.0, 1.0)
    cos_q = np.clip(-np.einsum("pqk,qk->pq", v, q_n) / dd, 0.0, 1.0)
    wgt = np.where(d > 0.02, (q_rho / np.pi)[None, :] * omega * cos_p * cos_q / dd**2, 0.0)
    rel = (wgt * np.exp(0.5j * k * (q_r[None, :] + d - p_r[:, None]))).sum(axis=1)
    return rel * p_r**2 / p_cos


def multipath_error(depth, valid, amplitude, K_tof, mod_freq_hz: float, tof_power: float,
                    n_recv: int = 1200, n_patch: int = 300) -> np.ndarray:
    """Estimated depth error (m, > 0 = reads far) of each ToF pixel from one-bounce diffuse
    multipath (module docstring), shape of `depth`. `valid` (h, w) bool: the measured pixels
    (the rest are filled from their neighbours for the geometry and emit nothing). `amplitude`
    None: every measured surface at IR albedo 0.5.
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool) & np.isfinite(depth) & (depth > 0)
    h, w = depth.shape
    if not valid.any():
        return np.zeros((h, w), dtype=np.float32)
    k = 4 * np.pi * mod_freq_hz / C_LIGHT  # phase per metre of range
    K = np.asarray(K_tof, dtype=np.float64)
    z, X, n, rn, cos_v = _surface(depth, valid, K)
    r = z * rn
    if amplitude is None:  # no radiometric evidence: every measured surface at albedo 0.5
        rho = np.where(valid, 0.5, 0.0)
    else:  # albedo; 0 where unmeasured
        amp = np.where(valid, np.asarray(amplitude, dtype=np.float64), 0.0)
        rho = np.clip(amp * r**2 / (tof_power * cos_v), 0.0, 1.0)

    sq = max(1, int(np.ceil(np.sqrt(h * w / n_patch))))
    q_x, q_n = _blocks(X, sq), _blocks(n, sq)
    q_n /= np.linalg.norm(q_n, axis=-1, keepdims=True) + 1e-12
    q_rho, q_r = _blocks(rho, sq), _blocks(r, sq)
    omega = sq * sq / (K[0, 0] * K[1, 1])  # a patch's solid angle
    sp = max(1, int(np.ceil(np.sqrt(h * w / n_recv))))
    p_x, p_n = _blocks(X, sp), _blocks(n, sp)
    p_n /= np.linalg.norm(p_n, axis=-1, keepdims=True) + 1e-12
    p_r, p_cos = _blocks(r, sp), _blocks(cos_v, sp)

    ratio = indirect_ratio(p_x, p_n, p_r, p_cos, q_x, q_n, q_rho, q_r, omega, k)
    err = (np.angle(1.0 + ratio) / k).reshape(-(-h // sp), -(-w // sp))
    up = cv2.resize(err.astype(np.float32), (err.shape[1] * sp, err.shape[0] * sp),
                    interpolation=cv2.INTER_LINEAR)[:h, :w]
    return (up / rn).astype(np.float32)


def compensate_multipath(depth, valid, amplitude, K_tof, mod_freq_hz: float, tof_power: float,
                         gain: float) -> np.ndarray:
    """The ToF depth minus `gain` x its estimated multipath error (`multipath_error`), the
    correction bounded by `MAX_CORRECTION` x the depth; unmeasured pixels unchanged."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool) & np.isfinite(depth) & (depth > 0)
    err = multipath_error(depth, valid, amplitude, K_tof, mod_freq_hz, tof_power)
    corr = np.clip(gain * err, -MAX_CORRECTION * depth, MAX_CORRECTION * depth)
    return np.where(valid, depth - corr, depth)
