"""The calibration of a rectified RGB pair + ToF rig, in one object.

A rectified pair shares its focal length and principal row, but its principal points may sit at
different columns: Middlebury's `doffs` = cx_right - cx_left. A point at depth Z then has the
disparity d = x_left - x_right = f B / Z - doffs, so

    Z = f B / (d + doffs)                                         (everywhere in this package)

Fields: K_left (3, 3) at the RGB resolution; K_right (3, 3) or `doffs` (px); baseline (m);
K_tof (3, 3) at the ToF resolution; T_left_tof (4, 4) maps ToF-frame points into the left
frame; the ToF modulation frequency (Hz) and read noise (electrons) feed its DEI, its radiometric
power `tof_power` (amplitude in electrons of an albedo-1 target at 1 m, normal incidence; a
white target at a known distance measures it) its multipath estimate and, without a measured
amplitude, the amplitude stand-in of its DEI; an optional
`depth_range` (near, far) in metres bounds the stereo search (`stereo.disparity_search`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from shared.errors import DataError
from shared.validate import finite_array, finite_number

__all__ = ["Calibration", "as_calibration"]


@dataclass
class Calibration:
    """Intrinsics and extrinsics of a rectified RGB pair + ToF rig (see the module docstring)."""

    K_left: np.ndarray
    K_tof: np.ndarray
    T_left_tof: np.ndarray
    baseline_m: float
    K_right: np.ndarray | None = None
    doffs: float | None = None
    mod_freq_hz: float = 30e6
    tof_read_noise: float = 20.0
    tof_power: float = 6.0e4
    depth_range: tuple[float, float] | None = None

    def validate(self) -> None:
        """Check types, shapes and ranges; derive `doffs` from K_right (or K_right from it)."""
        for name, shape in (("K_left", (3, 3)), ("K_tof", (3, 3)), ("T_left_tof", (4, 4))):
            setattr(self, name, finite_array(getattr(self, name), f"calibration '{name}'",
                                             shape))
        for name in ("K_left", "K_tof"):
            K = getattr(self, name)
            if not (K[0, 0] > 0 and K[1, 1] > 0):
                raise DataError(f"calibration '{name}': focal lengths must be positive, got "
                                f"{K[0, 0]}, {K[1, 1]}")
        self.baseline_m = finite_number(self.baseline_m, "calibration 'baseline_m'", positive=True)
        self.mod_freq_hz = finite_number(self.mod_freq_hz, "calibration 'mod_freq_hz'",
                                         positive=True)
        self.tof_read_noise = finite_number(self.tof_read_noise, "calibration 'tof_read_noise'",
                                            nonnegative=True)
        self.tof_power = finite_number(self.tof_power, "calibration 'tof_power'", positive=True)
        if self.doffs is not None:
            self.doffs = finite_number(self.doffs, "calibration 'doffs'")
        if self.K_right is not None:
            Kr = finite_array(self.K_right, "calibration 'K_right'", (3, 3))
            Kl = self.K_left
            if not (np.isclose(Kr[0, 0], Kl[0, 0], rtol=1e-3) and
                    np.isclose(Kr[1, 1], Kl[1, 1], rtol=1e-3) and abs(Kr[1, 2] - Kl[1, 2]) < 0.5):
                raise DataError("calibration 'K_right': a rectified pair needs the left focal "
                                f"length and principal row, got fx {Kr[0, 0]} vs {Kl[0, 0]}, "
                                f"cy {Kr[1, 2]} vs {Kl[1, 2]}")
            d = float(Kr[0, 2] - Kl[0, 2])
            if self.doffs is not None and abs(self.doffs - d) > 1e-3:
                raise DataError(f"calibration 'doffs' {self.doffs} != K_right cx - K_left cx "
                                f"= {d}")
            self.K_right, self.doffs = Kr, d
        if self.doffs is None:
            self.doffs = 0.0
        if self.K_right is None:
            self.K_right = self.K_left.copy()
            self.K_right[0, 2] += self.doffs
        if self.depth_range is not None:
            r = finite_array(self.depth_range, "calibration 'depth_range'", (2,))
            if not 0 < r[0] < r[1]:
                raise DataError(f"calibration 'depth_range' must be [near, far] with 0 < near "
                                f"< far, got {r.tolist()}")
            self.depth_range = (float(r[0]), float(r[1]))

    @property
    def fb(self) -> float:
        """f B (px m): depth x (disparity + doffs)."""
        return float(self.K_left[0, 0]) * self.baseline_m

    def depth_from_disparity(self, disp: np.ndarray) -> np.ndarray:
        """Z = f B / (d + doffs); NaN where d is NaN or d + doffs <= 0."""
        d = np.asarray(disp, dtype=np.float64) + (self.doffs or 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = self.fb / d
        return np.where(np.isfinite(d) & (d > 0), z, np.nan)

    def disparity_from_depth(self, depth) -> np.ndarray:
        """d = f B / Z - doffs."""
        return self.fb / np.asarray(depth, dtype=np.float64) - (self.doffs or 0.0)

    def to_json(self) -> dict:
        """JSON-ready dict (the `calib.json` of a capture folder)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else (
                list(v) if isinstance(v, tuple) else v)
        return {k: v for k, v in out.items() if v is not None}


_KEYS = {f.name for f in dataclasses.fields(Calibration)}


def as_calibration(calib, where: str = "calibration") -> Calibration:
    """A validated copy of a `Calibration` or of a dict with its field names."""
    if isinstance(calib, Calibration):
        c = dataclasses.replace(calib)
    elif isinstance(calib, dict):
        missing = [k for k in ("K_left", "K_tof", "T_left_tof", "baseline_m") if k not in calib]
        if missing:
            raise DataError(f"{where}: missing key '{missing[0]}' (missing calibration)")
        unknown = sorted(set(calib) - _KEYS)
        if unknown:
            raise DataError(f"{where}: unknown key '{unknown[0]}'")
        c = Calibration(**calib)
    else:
        raise DataError(f"{where} must be a mobifuse Calibration or a dict of its fields, got "
                        f"{type(calib).__name__}")
    c.validate()
    return c
