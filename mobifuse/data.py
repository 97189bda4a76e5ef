"""Datasets: cached simulated scenes and loaders for real formats.

Simulated: `build_dataset(seeds, sim, stereo, dei, overrides)` renders each seeded scene
(`mobifuse.simulator`), runs the fusion pipeline (`mobifuse.pipeline.prepare_frame`) and stacks
everything at the work resolution, cached with `shared.cache.cached_arrays` under a key derived
from the configs and seeds. Arrays (N = scenes, h x w work resolution):
  geom (N, 4, h, w): ToF depth, ToF valid, SGBM depth, SGBM valid;
  err (N, 1 + len(DEI_CHANNELS), h, w): grey image then the DEI channels;
  sigma_tof, sigma_st, gt, mask_* (N, h, w); left (N, H, W, 3) RGB; factors (N, 2);
  rig (N, 8): `RIG_FIELDS` of each scene's rig.
`build_frames(seeds, sim, stereo, dei, family)` does the same with every scene's camera rig drawn
from a `RigFamily` (`simulator.sample_rig`), so frames differ in size: a list of per-frame dicts.

Real formats:
- PFM (`read_pfm` / `write_pfm`): 'Pf' (1 channel) or 'PF' (3), scale sign = endianness,
  rows stored bottom-to-top;
- Middlebury 2014 `calib.txt` (`read_middlebury_calib`) and scene folders
  (`load_middlebury_scene`: im0.png, im1.png, disp0.pfm or disp0GT.pfm -> depth
  = f B / (d + doffs), and the `Calibration` `fuse()` needs; a ToF map from tof_depth.pfm, else
  simulated from the ground truth);
- a ToF + stereo capture folder (`load_capture`, layout in its docstring).
"""

from __future__ import annotations

import dataclasses
import re
import struct
from pathlib import Path

import cv2
import numpy as np

from mobifuse.calibration import Calibration, as_calibration
from mobifuse.config import DEIConfig, RigFamily, SimConfig, StereoConfig
from mobifuse.pipeline import prepare_frame
from mobifuse.simulator import MASKS, intrinsics, rig_intrinsics, sample_rig, simulate_scene
from shared.cache import cached_arrays
from shared.config import to_dict
from shared.errors import DataError
from shared.log import get_logger, progress
from shared.validate import bounded_dims, finite_array, finite_number, read_json_file, read_text

__all__ = ["sim_calibration", "build_dataset", "build_frames", "rig_for_seed", "read_pfm",
           "write_pfm", "read_middlebury_calib", "load_middlebury_scene", "load_capture",
           "simulate_tof_from_depth", "tof_intrinsics",
           "DATA_VERSION", "RIG_FIELDS"]

log = get_logger(__name__)
DATA_VERSION = 8
RIG_FIELDS = ("baseline_m", "focal_px", "width", "height", "doffs_px", "tof_ratio",
              "mod_freq_hz", "scene_scale")


def sim_calibration(cfg: SimConfig) -> Calibration:
    """The simulator rig as a `Calibration` (what a real capture would provide)."""
    from mobifuse.simulator import rot_y

    T = np.eye(4)
    T[:3, :3] = rot_y(cfg.tof_yaw_deg)
    T[:3, 3] = cfg.tof_offset_m
    K_left, K_right = rig_intrinsics(cfg)
    return Calibration(K_left=K_left, K_right=K_right,
                       K_tof=intrinsics(cfg.tof_width, cfg.tof_height, cfg.tof_focal_px),
                       T_left_tof=T, baseline_m=cfg.baseline_m, mod_freq_hz=cfg.mod_freq_hz,
                       tof_read_noise=cfg.tof_read_noise, tof_power=cfg.tof_power)


def rig_for_seed(seed: int, sim: SimConfig, family: RigFamily | None) -> SimConfig:
    """The scene's rig: `sim` itself, or one drawn from `family` by the scene's seed."""
    if family is None:
        return sim
    return sample_rig(np.random.default_rng([int(seed), 7]), family, sim)


def _one(seed: int, sim: SimConfig, stereo: StereoConfig, dei: DEIConfig,
         overrides: dict | None) -> dict:
    import warnings

    raw = simulate_scene(seed, sim, overrides)
    with warnings.catch_warnings():  # a clipped search is recorded per frame instead
        warnings.simplefilter("ignore", UserWarning)
        fr = prepare_frame(raw["left"], raw["right"], raw["tof_depth"], raw["tof_valid"],
                           sim_calibration(sim), raw["tof_amplitude"], raw["tof_ambient"],
                           sim.work_downsample, stereo, dei)
    geom = np.stack([fr["tof"], fr["tof_valid"], fr["st"], fr["st_valid"]]).astype(np.float32)
    err = np.concatenate([fr["gray"][None], fr["dei"]]).astype(np.float32)
    rig = [sim.baseline_m, sim.focal_px, sim.width, sim.height, sim.doffs_px,
           sim.width / sim.tof_width, sim.mod_freq_hz, sim.scene_scale]
    # the cache holds the sigmas before calibration (`calibrated` applies the factors on load)
    out = {"geom": geom, "err": err, "sigma_tof": fr["sigma_tof"] / dei.tof_scale,
           "sigma_st": fr["sigma_st"] / dei.st_scale, "tof_sparse": fr["tof_sparse"],
           "gt": raw["depth"], "left": raw["left"],
           "factors": raw["factors"], "rig": np.array(rig, dtype=np.float64),
           "search": np.array([fr["search"]["min_disp"], fr["search"]["num_disp"],
                               fr["search"]["clipped"]], dtype=np.int64)}
    for m in MASKS:
        out[f"mask_{m}"] = raw[f"mask_{m}"]
    return out


def dei_key(dei: DEIConfig) -> dict:
    """The DEI config minus its calibration factors (they change no cached array) and minus
    the stereo depth-reference fields, the multipath gain and the splatting's surface tolerance
    at their no-op values (older keys stay valid)."""
    d = {k: v for k, v in to_dict(dei).items() if k not in ("tof_scale", "st_scale")}
    if d["st_hole_scale"] == 1.0:
        del d["st_hole_scale"]
    for k in ("tof_mpi_gain", "tof_surface_tol"):
        if d[k] == 0:
            del d[k]
    if d["st_depth_ref"] == "own":
        for k in ("st_depth_ref", "st_ref_quantile", "st_ref_window"):
            del d[k]
    return d


def _calibrated(d: dict, dei: DEIConfig) -> dict:
    d["sigma_tof"] = d["sigma_tof"] * np.float32(dei.tof_scale)
    d["sigma_st"] = d["sigma_st"] * np.float32(dei.st_scale)
    return d


def build_frames(seeds: list[int], sim: SimConfig, stereo: StereoConfig, dei: DEIConfig,
                 family: RigFamily | None, desc: str = "scenes") -> list[dict]:
    """Per-frame dicts (as `build_dataset`'s arrays without the leading N) of scenes whose rigs
    are drawn from `family`; cached on disk by (configs, family, seeds)."""
    if not seeds:
        raise DataError(f"no {desc} to build (an empty seed list)")
    key = {"seeds": list(map(int, seeds)), "sim": to_dict(sim), "stereo": to_dict(stereo),
           "dei": dei_key(dei), "family": to_dict(family) if family else None}

    def generate() -> dict[str, np.ndarray]:
        flat = {}
        for i, s in enumerate(progress(seeds, desc=desc, leave=False)):
            for k, v in _one(s, rig_for_seed(s, sim, family), stereo, dei, None).items():
                flat[f"{i}/{k}"] = v
        return flat

    flat = cached_arrays("mobifuse-frames", key, generate, version=DATA_VERSION)
    frames: list[dict] = [{} for _ in seeds]
    for k, v in flat.items():
        i, name = k.split("/", 1)
        frames[int(i)][name] = v
    return [_calibrated(f, dei) for f in frames]


def build_dataset(seeds: list[int], sim: SimConfig, stereo: StereoConfig, dei: DEIConfig,
                  overrides: dict | None = None, desc: str = "scenes") -> dict[str, np.ndarray]:
    """Simulate + prepare every seeded scene; cached on disk by (configs, seeds, overrides)."""
    if not seeds:
        raise DataError(f"no {desc} to build (an empty seed list)")
    key = {"seeds": list(map(int, seeds)), "sim": to_dict(sim), "stereo": to_dict(stereo),
           "dei": dei_key(dei), "overrides": overrides or {}}

    def generate() -> dict[str, np.ndarray]:
        rows = [_one(s, sim, stereo, dei, overrides)
                for s in progress(seeds, desc=desc, leave=False)]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

    return _calibrated(cached_arrays("mobifuse-scenes", key, generate, version=DATA_VERSION), dei)


# ----------------------------------------------------------------------------- PFM


def read_pfm(path: str | Path) -> np.ndarray:
    """(H, W) or (H, W, 3) float32, top row first. Corrupt or truncated files raise DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    data = path.read_bytes()
    try:
        parts = data.split(b"\n", 3)
        kind, dims, scale = parts[0].strip(), parts[1].split(), float(parts[2].strip())
        if len(dims) != 2 or len(parts) < 4:
            raise ValueError(dims)
        w, h = int(dims[0]), int(dims[1])
    except (IndexError, ValueError):
        raise DataError(f"{path}: not a PFM file (bad header)") from None
    if kind not in (b"PF", b"Pf"):
        raise DataError(f"{path}: not a PFM file (magic {kind[:4]!r})")
    if not (np.isfinite(scale) and scale != 0):
        raise DataError(f"{path}: PFM scale must be a nonzero number (its sign is the byte "
                        f"order), got {scale}")
    ch = 3 if kind == b"PF" else 1
    dtype = "<f4" if scale < 0 else ">f4"
    body = parts[3]
    bounded_dims((w, h, ch), str(path), "PFM size", 4, len(body))
    need = w * h * ch * 4
    if len(body) < need:
        raise DataError(f"{path}: truncated PFM ({len(body)} of {need} data bytes)")
    arr = np.frombuffer(body[:need], dtype=dtype).reshape(h, w, ch) if ch == 3 else \
        np.frombuffer(body[:need], dtype=dtype).reshape(h, w)
    return np.flipud(arr).astype(np.float32)


def write_pfm(path: str | Path, arr: np.ndarray) -> None:
    """Write (H, W) or (H, W, 3) float32 as little-endian PFM (atomically)."""
    from shared.io import atomic_write_bytes

    a = np.asarray(arr, dtype="<f4")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise DataError(f"PFM needs (H, W) or (H, W, 3), got {a.shape}")
    kind = b"PF" if a.ndim == 3 else b"Pf"
    header = kind + b"\n" + f"{a.shape[1]} {a.shape[0]}\n".encode() + b"-1.0\n"
    atomic_write_bytes(path, header + np.flipud(a).tobytes())


# ----------------------------------------------------------------------------- Middlebury


def read_middlebury_calib(path: str | Path) -> dict:
    """Parse a Middlebury 2014 calib.txt: cam0/cam1 (3, 3), doffs, baseline (mm), width, ..."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"calibration file not found: {path}")
    out: dict = {}
    for ln, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        if "=" not in line:
            raise DataError(f"{path}:{ln}: expected key=value, got {line.strip()!r}")
        key, val = (s.strip() for s in line.split("=", 1))
        try:
            if val.startswith("["):
                rows = [r.split() for r in val.strip("[]").split(";")]
                out[key] = np.array(rows, dtype=np.float64)
            else:
                out[key] = float(val)
        except ValueError:
            raise DataError(f"{path}:{ln}: cannot parse value of '{key}'") from None
    for key in ("cam0", "cam1", "baseline", "doffs"):
        if key not in out:
            raise DataError(f"{path}: missing key '{key}'")
    for key in ("cam0", "cam1"):
        out[key] = finite_array(out[key], f"{path}: '{key}'", (3, 3))
        if not out[key][0, 0] > 0:
            raise DataError(f"{path}: '{key}' focal length must be positive")
    out["baseline"] = finite_number(out["baseline"], f"{path}: 'baseline'", positive=True)
    out["doffs"] = finite_number(out["doffs"], f"{path}: 'doffs'")
    return out


_PNG = b"\x89PNG\r\n\x1a\n"


def read_png(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode a PNG after bounding its declared size by what its compressed bytes can hold
    (deflate expands at most ~1032x), so a corrupt header never asks for gigabytes."""
    if not path.is_file():
        raise DataError(f"missing image: {path}")
    data = path.read_bytes()
    if len(data) < 33 or data[:8] != _PNG or data[12:16] != b"IHDR":
        raise DataError(f"{path}: not a PNG file")
    w, h = struct.unpack(">II", data[16:24])
    bounded_dims((w, h), str(path), "PNG size", 1, len(data), ratio=1100, slack=1 << 16)
    im = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if im is None:
        raise DataError(f"{path}: unreadable (corrupt) PNG")
    return im


def _read_rgb_pair(folder: Path, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two PNGs of `folder` as RGB uint8 of the same size."""
    ims = []
    for name in names:
        im = read_png(folder / f"{name}.png")
        if im.ndim != 3 or im.dtype != np.uint8:
            raise DataError(f"{folder / name}.png: expected an 8-bit colour image")
        ims.append(im[:, :, ::-1].copy())
    if ims[0].shape != ims[1].shape:
        raise DataError(f"{folder}: {names[0]}.png {ims[0].shape[:2]} and {names[1]}.png "
                        f"{ims[1].shape[:2]} differ in size")
    return ims[0], ims[1]


def tof_intrinsics(K_left: np.ndarray, ratio: int) -> np.ndarray:
    """K of a sensor on the left camera's grid binned `ratio` x `ratio` (ToF pixel j covers
    image pixels ratio j .. ratio j + ratio - 1)."""
    K = np.array(K_left, dtype=np.float64)
    K[0, 0] /= ratio
    K[1, 1] /= ratio
    K[0, 2] = (K[0, 2] + 0.5) / ratio - 0.5
    K[1, 2] = (K[1, 2] + 0.5) / ratio - 0.5
    return K


def simulate_tof_from_depth(depth: np.ndarray, ratio: int, seed: int = 0,
                            rel_noise: float = 0.004) -> np.ndarray:
    """A ToF-like depth map (ceil(H / ratio), ceil(W / ratio)) from a ground-truth depth map:
    ratio x ratio bins averaged (mixed depths at edges, like flying pixels), then Gaussian
    noise of sigma = rel_noise x Z^2 / 1 m + 2 mm; 0 where a bin has no known depth."""
    H, W = depth.shape
    hp, wp = -(-H // ratio) * ratio, -(-W // ratio) * ratio
    z = np.full((hp, wp), np.nan)
    z[:H, :W] = depth
    b = z.reshape(hp // ratio, ratio, wp // ratio, ratio)
    known = np.isfinite(b).sum(axis=(1, 3))
    with np.errstate(invalid="ignore"):
        mean = np.nansum(b, axis=(1, 3)) / np.maximum(known, 1)
    rng = np.random.default_rng(seed)
    with np.errstate(invalid="ignore", over="ignore"):
        noisy = mean + rng.normal(size=mean.shape) * (rel_noise * mean**2 + 0.002)
    ok = (known > 0) & np.isfinite(noisy) & (noisy < 1e4)
    return np.where(ok, np.maximum(noisy, 0.01), 0.0).astype(np.float32)


def load_middlebury_scene(folder: str | Path, tof_ratio: int = 2, seed: int = 0) -> dict:
    """A Middlebury 2014 scene folder, ready for `fuse(out['left'], out['right'],
    out['tof_depth'], out['calib'])`:

        im0.png, im1.png        rectified pair (any size)
        calib.txt               cam0, cam1 (-> doffs = cx1 - cx0), baseline (mm), vmin/vmax
        disp0.pfm | disp0GT.pfm optional ground-truth disparity (inf = unknown)
        tof_depth.pfm           optional ToF depth (m) on the left camera's grid binned by an
                                integer factor; without it, one is simulated from the
                                ground truth (`simulate_tof_from_depth`, `tof_ratio`, `seed`)

    Returns left/right (RGB uint8), calib (`Calibration`: K_left = cam0, K_right = cam1,
    baseline, doffs, K_tof, identity T_left_tof, depth_range from vmin/vmax when present),
    disparity and depth (m, = f B / (d + doffs), NaN where unknown), tof_depth, tof_source."""
    folder = Path(folder)
    c = read_middlebury_calib(folder / "calib.txt")
    left, right = _read_rgb_pair(folder, ("im0", "im1"))
    H, W = left.shape[:2]
    ratio = tof_ratio
    if isinstance(ratio, bool) or not isinstance(ratio, (int, np.integer)) or ratio < 1:
        raise DataError(f"tof_ratio must be a positive integer, got {ratio!r}")
    out = {"left": left, "right": right, "K": c["cam0"], "baseline_m": c["baseline"] / 1000.0}
    disp_path = next((folder / n for n in ("disp0.pfm", "disp0GT.pfm")
                      if (folder / n).is_file()), None)
    fb = c["baseline"] / 1000.0 * c["cam0"][0, 0]
    if disp_path is not None:
        disp = read_pfm(disp_path)
        if disp.shape != (H, W):
            raise DataError(f"{disp_path}: shape {disp.shape} != image {(H, W)}")
        if np.isnan(disp).any() or (disp < 0).any():
            raise DataError(f"{disp_path}: disparities must be >= 0 (inf = unknown), found NaN "
                            f"or negative values")
        d = disp.astype(np.float64) + c["doffs"]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            depth = fb / d
        known = np.isfinite(d) & (d > 0) & (depth < 1e4)  # beyond 10 km: unknown
        out["disparity"] = disp
        out["depth"] = np.where(known, depth, np.nan).astype(np.float32)
    depth_range = None
    if "vmin" in c and "vmax" in c and c["vmax"] > c["vmin"] >= 0 and c["vmin"] + c["doffs"] > 0:
        depth_range = (fb / (c["vmax"] + c["doffs"]) / 1.1, fb / (c["vmin"] + c["doffs"]) * 1.1)
    if (folder / "tof_depth.pfm").is_file():
        tof = read_pfm(folder / "tof_depth.pfm")
        if tof.ndim != 2:
            raise DataError(f"{folder / 'tof_depth.pfm'}: expected a one-channel map")
        ratio = round(W / tof.shape[1])
        if ratio < 1 or tof.shape != (-(-H // ratio), -(-W // ratio)):
            raise DataError(f"{folder / 'tof_depth.pfm'}: shape {tof.shape} is not the "
                            f"{W}x{H} image binned by an integer factor")
        out["tof_depth"], out["tof_source"] = tof, "tof_depth.pfm"
    elif "depth" in out:
        out["tof_depth"] = simulate_tof_from_depth(out["depth"], ratio, seed)
        out["tof_source"] = f"simulated from {disp_path.name} (1/{ratio} resolution)"
    calib = Calibration(K_left=c["cam0"], K_right=c["cam1"], baseline_m=c["baseline"] / 1000.0,
                        K_tof=tof_intrinsics(c["cam0"], ratio), T_left_tof=np.eye(4),
                        depth_range=depth_range)
    try:
        calib.validate()
    except DataError as e:
        raise DataError(f"{folder / 'calib.txt'}: {e}") from None
    if abs(calib.doffs - c["doffs"]) > 1e-3 * max(1.0, abs(c["doffs"])):
        raise DataError(f"{folder / 'calib.txt'}: doffs {c['doffs']} != cam1 cx - cam0 cx "
                        f"= {calib.doffs}")
    out["calib"] = calib
    return out


# ----------------------------------------------------------------------------- captures


_CALIB_KEYS = ("K_left", "K_tof", "T_left_tof", "baseline_m")


def load_capture(folder: str | Path) -> dict:
    """A ToF + stereo capture folder:

        left.png, right.png         rectified RGB pair (same size)
        tof_depth.pfm | .png        ToF depth: PFM in metres, or 16-bit PNG in millimetres
        tof_amplitude.pfm           optional ToF amplitude (electrons)
        calib.json                  {"K_left": 3x3, "K_tof": 3x3, "T_left_tof": 4x4,
                                     "baseline_m": float; optional "K_right": 3x3 or
                                     "doffs": px, "mod_freq_hz", "tof_read_noise",
                                     "depth_range": [near, far]} (`Calibration`'s fields)
        gt_depth.pfm                optional ground-truth depth (m) in the left view, at the
                                    image or the work resolution

    Returns arrays and a `Calibration`; anything missing or malformed is a DataError.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"capture folder not found: {folder}")
    out: dict = {}
    out["left"], out["right"] = _read_rgb_pair(folder, ("left", "right"))
    if folder.joinpath("tof_depth.pfm").is_file():
        out["tof_depth"] = read_pfm(folder / "tof_depth.pfm")
    elif folder.joinpath("tof_depth.png").is_file():
        raw = read_png(folder / "tof_depth.png", cv2.IMREAD_UNCHANGED)
        if raw.dtype != np.uint16:
            raise DataError(f"{folder / 'tof_depth.png'}: expected a 16-bit PNG in millimetres")
        out["tof_depth"] = raw.astype(np.float32) / 1000.0
    else:
        raise DataError(f"{folder}: missing ToF depth (tof_depth.pfm or tof_depth.png)")
    for name in ("tof_amplitude", "gt_depth"):
        if folder.joinpath(f"{name}.pfm").is_file():
            out[name] = read_pfm(folder / f"{name}.pfm")
    for name in ("tof_depth", "tof_amplitude", "gt_depth"):
        if name in out and out[name].ndim != 2:
            raise DataError(f"{folder / name}: expected a one-channel map, got shape "
                            f"{out[name].shape}")
    if "tof_amplitude" in out and out["tof_amplitude"].shape != out["tof_depth"].shape:
        raise DataError(f"{folder / 'tof_amplitude.pfm'}: shape {out['tof_amplitude'].shape} != "
                        f"tof_depth {out['tof_depth'].shape}")
    cpath = folder / "calib.json"
    c = read_json_file(cpath)
    if not isinstance(c, dict):
        raise DataError(f"{cpath}: expected a JSON object")
    missing = [k for k in _CALIB_KEYS if k not in c]
    if missing:
        raise DataError(f"{cpath}: missing key '{missing[0]}'")
    known = {f.name for f in dataclasses.fields(Calibration)}
    unknown = sorted(set(c) - known)
    if unknown:
        raise DataError(f"{cpath}: unknown key '{unknown[0]}'")
    c = {k: (finite_array(v, f"{cpath}: '{k}'") if re.match(r"[KT]_", k) and v is not None
             else v) for k, v in c.items()}
    try:
        out["calib"] = as_calibration(c)
    except DataError as e:
        raise DataError(f"{cpath}: {e}") from None
    return out
