"""The progressive two-stage fusion network ("TSFuseNet"; MobiFuse §"progressive fusion"; layer
sizes are ours, the paper does not publish them).

Inputs (B = batch, h x w work resolution, multiples of 8):
  geom (B, 4, h, w): ToF depth, ToF valid, SGBM depth, SGBM valid  (depths in metres)
  err  (B, 1 + D (+ 2) (+ 2), h, w): grey image, then D = len(DEI_CHANNELS) DEI maps, then
       with `NetConfig.ray_channels` the two ray-direction maps of `ray_maps`, then with
       `NetConfig.fov_channels` the two field-of-view maps of `fov_maps` (`camera_maps`)
Output: dict with 'depth', 'coarse' and (with EdgeSnap) 'pre_snap', each (B, 1, h, w) in metres,
and 'gates' (B, 2, h, w).

Stage 1 encodes geometry per sensor (ToF branch, stereo branch) and error (DEI + grey) separately
at scales 1/2, 1/4, 1/8. At every scale a 1x1 conv on the error features gives per-pixel softmax
weights over the two sensors that gate (convexly mix) their geometry features; a U-Net decoder
over the gated features predicts a correction to the gate-weighted input depths -> coarse depth.
Stage 2 re-encodes [coarse, ToF, SGBM, grey] and, at every scale, concatenates stage 1's decoder
features (the backward connections); its decoder predicts a residual added to the coarse depth,
refined by three full-resolution convs that see the grey image.

Edge-aware selection (`EdgeSnap`, our addition for the paper's "DEI guides fusion at depth
edges"): at a depth discontinuity the true depth is the depth of one of the two surfaces, but ToF
flying pixels, normalised-convolution upsampling and L1 regression by a smooth CNN all produce
values *between* them. The last stage therefore predicts, per pixel, softmax weights over a
(2r+1)^2 window of candidate depths (stage 2's output at dilation `snap_dilation`) from
[depth, ToF, SGBM, grey + DEI] and the grey-level affinity of each candidate to the pixel (RGB
guidance, as in joint bilateral upsampling); the output is their convex mix, so a confident
pixel copies the depth of the surface it belongs to instead of averaging across the jump. The
DEI edge / flying-pixel and hole channels tell it where that is needed.

Convex guard (`convex_guard`): the output is finally clipped, per pixel, to the range of both
inputs (densified ToF and SGBM depth) over a (2 guard_radius + 1)^2 window. A clipped value is
a convex combination of two input samples (the window's min and max), so the fused depth is
always a convex combination of measured depths: a broken sensor can be ignored, never
amplified, and no learned residual can leave the hull of what the sensors saw.

`use_dei=False` is the key ablation: the same network with the DEI channels zeroed (grey kept).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mobifuse.config import NetConfig
from mobifuse.dei import DEI_CHANNELS

__all__ = ["TwoStageFusionNet", "EdgeSnap", "convex_guard", "guard_clip", "window_max",
           "fusion_loss", "N_ERR", "save_model", "load_model", "MODEL_FILE", "ray_maps",
           "centred_rays", "fov_maps", "camera_maps", "n_err"]

N_ERR = 1 + len(DEI_CHANNELS)
MODEL_VERSION = 4  # bump when the architecture or file format changes (keys cached weights)
MODEL_FILE = "model.safetensors"  # what mobifuse.train writes into its run dir
_KIND = "mobifuse.TwoStageFusionNet"


def n_err(cfg: NetConfig) -> int:
    """Channels of the net's `err` input: grey + DEI maps (+ 2 ray-direction maps) (+ 2
    field-of-view maps)."""
    return N_ERR + (2 if cfg.ray_channels else 0) + (2 if cfg.fov_channels else 0)


def ray_maps(h: int, w: int, f: float, cx: float | None = None, cy: float | None = None,
             fy: float | None = None) -> np.ndarray:
    """(2, h, w) float32: each pixel's ray direction (u - cx) / f, (v - cy) / fy on a grid of
    focal length f (fy: f) px, principal point at the centre when not given: the camera input
    of `NetConfig.ray_channels`. Its slope is 1 / f and its span the field of view. A
    left-right mirrored image is the camera of map -u (`train._crops` flips so)."""
    cx = (w - 1) / 2 if cx is None else cx
    cy = (h - 1) / 2 if cy is None else cy
    u = (np.arange(w, dtype=np.float32) - np.float32(cx)) / np.float32(f)
    v = (np.arange(h, dtype=np.float32) - np.float32(cy)) / np.float32(fy or f)
    return np.stack([np.broadcast_to(u[None], (h, w)), np.broadcast_to(v[:, None], (h, w))])


def centred_rays(h: int, w: int, focal_px: float, width_px: float, height_px: float,
                 fy_px: float | None = None) -> np.ndarray:
    """(2, h, w) ray maps (`models.ray_maps`) of an image of width_px x height_px and focal
    focal_px seen on an h x w work grid: work pixel j is image pixel s j (s = the downsampling,
    round(width_px / w)), so f / s and the principal point (W - 1) / 2s, (H - 1) / 2s, taken at
    the image centre: the simulated frames keep their rig's size and focal length, not its
    +-20 px principal-point offset, and `fuse()` does the same so a net sees one convention."""
    s = max(1, round(float(width_px) / w))
    return ray_maps(h, w, float(focal_px) / s, (float(width_px) - 1) / (2 * s),
                    (float(height_px) - 1) / (2 * s), float(fy_px or focal_px) / s)


def fov_maps(h: int, w: int, focal_px: float, width_px: float, height_px: float,
             fy_px: float | None = None) -> np.ndarray:
    """(2, h, w) float32, constant: tan of the half fields of view of an image of width_px x
    height_px and focal focal_px (fy_px: focal_px), W / (2 f_x) and H / (2 f_y): the scene-level
    camera input of `NetConfig.fov_channels`. The same on any work grid of the image (the
    downsampling divides W and f alike) and under a left-right flip."""
    t = np.array([float(width_px) / (2 * float(focal_px)),
                  float(height_px) / (2 * float(fy_px or focal_px))], dtype=np.float32)
    return np.ascontiguousarray(np.broadcast_to(t[:, None, None], (2, h, w)))


def camera_maps(cfg: NetConfig, h: int, w: int, focal_px: float, width_px: float,
                height_px: float, fy_px: float | None = None) -> np.ndarray:
    """(C, h, w) the camera inputs a net of `cfg` appends to its `err`: `centred_rays` when
    `ray_channels`, then `fov_maps` when `fov_channels` (C = 0: neither)."""
    maps = [np.zeros((0, h, w), np.float32)]
    if cfg.ray_channels:
        maps.append(centred_rays(h, w, focal_px, width_px, height_px, fy_px))
    if cfg.fov_channels:
        maps.append(fov_maps(h, w, focal_px, width_px, height_px, fy_px))
    return np.concatenate(maps).astype(np.float32)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True))


class _Encoder(nn.Module):
    """Features at 1/2, 1/4, 1/8 of the input resolution, widths w[0], w[1], w[2]."""

    def __init__(self, cin: int, widths: tuple[int, ...], extra: tuple[int, ...] = (0, 0, 0)):
        super().__init__()
        w0, w1, w2 = widths
        self.s1 = nn.Sequential(_conv(cin, w0, 2), _conv(w0, w0))
        self.m1 = _conv(w0 + extra[0], w0) if extra[0] else nn.Identity()
        self.s2 = nn.Sequential(_conv(w0, w1, 2), _conv(w1, w1))
        self.m2 = _conv(w1 + extra[1], w1) if extra[1] else nn.Identity()
        self.s3 = nn.Sequential(_conv(w1, w2, 2), _conv(w2, w2))
        self.m3 = _conv(w2 + extra[2], w2) if extra[2] else nn.Identity()

    def forward(self, x, skips=None):
        cat = (lambda f, i: torch.cat([f, skips[i]], 1)) if skips else (lambda f, i: f)
        f1 = self.m1(cat(self.s1(x), 0))
        f2 = self.m2(cat(self.s2(f1), 1))
        f3 = self.m3(cat(self.s3(f2), 2))
        return [f1, f2, f3]


class _Decoder(nn.Module):
    """U-Net decoder: 1/8 -> 1/2 with skip features; returns features at 1/8, 1/4, 1/2."""

    def __init__(self, cins: tuple[int, ...], widths: tuple[int, ...]):
        super().__init__()
        w0, w1, w2 = widths
        self.d3 = _conv(cins[2], w2)
        self.d2 = _conv(cins[1] + w2, w1)
        self.d1 = _conv(cins[0] + w1, w0)

    def forward(self, feats):
        up = lambda x, ref: F.interpolate(x, size=ref.shape[-2:], mode="bilinear",  # noqa: E731
                                          align_corners=False)
        d3 = self.d3(feats[2])
        d2 = self.d2(torch.cat([feats[1], up(d3, feats[1])], 1))
        d1 = self.d1(torch.cat([feats[0], up(d2, feats[0])], 1))
        return [d1, d2, d3]


class EdgeSnap(nn.Module):
    """Edge-aware candidate selection: out(p) = sum_k softmax(logits(p))_k * depth(p + o_k).

    depth, guide (B, 1, h, w); feats (B, cin, h, w). K = (2 radius + 1)^2 offsets o_k on a grid
    of step `dilation` (replicate padding). logits_k(p) = a_k(p) - s(p) * 10 |g(p) - g(p + o_k)|
    with a (B, K, h, w) and the sharpness s = softplus(.) >= 0 predicted from `feats`: like a
    joint bilateral filter, a candidate whose grey level differs from the pixel's (probably the
    other surface) is down-weighted, as strongly as the features (DEI edge/hole channels) ask.
    The output lies between the window's min and max depth; it starts near the identity."""

    def __init__(self, cin: int, width: int, radius: int, dilation: int):
        super().__init__()
        self.radius, self.dilation = radius, dilation
        self.k = k = (2 * radius + 1) ** 2
        self.head = nn.Sequential(_conv(cin, width), _conv(width, width),
                                  nn.Conv2d(width, k + 1, 1))
        last = self.head[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.zero_()
            last.bias[k // 2] = 4.0  # start close to the identity (centre weight ~0.7)

    def candidates(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) -> (B, K, h, w): the map's value at every window offset, in unfold's
        order (row-major offsets); the shifted views concatenated, about 5x faster than
        `F.unfold` on a CPU and the same values."""
        r, dil = self.radius, self.dilation
        xp = F.pad(x, (r * dil,) * 4, mode="replicate")
        h, w = x.shape[-2:]
        return torch.cat([xp[:, :, i * dil:i * dil + h, j * dil:j * dil + w]
                          for i in range(2 * r + 1) for j in range(2 * r + 1)], 1)

    def forward(self, depth: torch.Tensor, feats: torch.Tensor,
                guide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.head(feats)
        affinity = (self.candidates(guide) - guide).abs()
        logits = h[:, :self.k] - F.softplus(h[:, self.k:]) * 10.0 * affinity
        wgt = torch.softmax(logits, dim=1)
        return (wgt * self.candidates(depth)).sum(1, keepdim=True), wgt


def convex_guard(depth: torch.Tensor, d_tof: torch.Tensor, d_st: torch.Tensor,
                 radius: int) -> torch.Tensor:
    """Clip depth (B, 1, h, w) to [min, max] of both inputs over the (2r+1)^2 window at each
    pixel: the result is a convex combination of input samples. Non-finite -> the ToF."""
    hi = window_max(torch.maximum(d_tof, d_st), radius)  # max over the window of both's max
    lo = -window_max(-torch.minimum(d_tof, d_st), radius)
    out = torch.minimum(torch.maximum(depth, lo), hi)
    return torch.where(torch.isfinite(out), out, d_tof)


def guard_clip(depth: np.ndarray, d_tof: np.ndarray, d_st: np.ndarray, radius: int
               ) -> np.ndarray:
    """`convex_guard` on arrays: depth (h, w) or (N, h, w), the inputs broadcast to its shape;
    float32, depth's shape. What the closed-form steps after the net re-clip with."""
    d = np.asarray(depth, dtype=np.float32)
    shape = d.shape

    def t(a):
        return torch.from_numpy(np.broadcast_to(np.asarray(a, dtype=np.float32), shape)
                                .reshape(-1, 1, *shape[-2:]).copy())

    return convex_guard(t(d), t(d_tof), t(d_st), radius)[:, 0].numpy().reshape(shape)


def window_max(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Max of x (B, C, h, w) over the (2 radius + 1)^2 window at each pixel, pixels outside the
    map ignored; NaN propagates. Separable (rows, then columns), each pass the running maximum
    of 2 radius + 1 shifted views: the same values as max_pool2d, about 10x faster on a CPU."""
    for dim, pad in ((-1, (radius, radius, 0, 0)), (-2, (0, 0, radius, radius))):
        xp = F.pad(x, pad, value=float("-inf"))
        n = x.shape[dim]
        out = xp.narrow(dim, 0, n)
        for o in range(1, 2 * radius + 1):
            out = torch.maximum(out, xp.narrow(dim, o, n))
        x = out
    return x


class TwoStageFusionNet(nn.Module):
    """ToF + stereo depth fusion guided by DEI; see the module docstring for shapes."""

    def __init__(self, cfg: NetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or NetConfig()
        self.meta: dict = {}  # what the net was trained with (set by load_model)
        w = tuple(cfg.widths)
        if len(w) != 3:
            raise ValueError(f"net.widths must have 3 entries, got {list(w)}")
        self.tof_enc = _Encoder(2, w)
        self.st_enc = _Encoder(2, w)
        self.err_enc = _Encoder(n_err(cfg), w)
        self.gates = nn.ModuleList(nn.Conv2d(c, 2, 1) for c in w)
        self.dec1 = _Decoder(tuple(2 * c for c in w), w)  # gated geometry + error features
        self.head1 = nn.Conv2d(w[0], 1, 3, 1, 1)
        self.enc2 = _Encoder(4, w, extra=w)  # + stage-1 decoder features (backward connections)
        self.dec2 = _Decoder(w, w)
        self.head2 = nn.Conv2d(w[0], 8, 3, 1, 1)
        r = cfg.refine_width
        self.refine = nn.Sequential(_conv(8 + 4, r), _conv(r, r), nn.Conv2d(r, 1, 3, 1, 1))
        self.snap = (EdgeSnap(3 + n_err(cfg), r, cfg.snap_radius, cfg.snap_dilation)
                     if cfg.snap_radius > 0 else None)

    def forward(self, geom: torch.Tensor, err: torch.Tensor) -> dict:
        s = self.cfg.max_depth
        if not self.cfg.use_dei:
            err = torch.cat([err[:, :1], torch.zeros_like(err[:, 1:N_ERR]), err[:, N_ERR:]], 1)
        d_tof, d_st = geom[:, 0:1] / s, geom[:, 2:3] / s
        gray = err[:, :1]
        t = self.tof_enc(torch.cat([d_tof, geom[:, 1:2]], 1))
        st = self.st_enc(torch.cat([d_st, geom[:, 3:4]], 1))
        e = self.err_enc(err)
        gated, weights = [], []
        for i in range(3):
            wgt = torch.softmax(self.gates[i](e[i]), dim=1)  # (B, 2, h/2^i+1, w/2^i+1)
            weights.append(wgt)
            gated.append(torch.cat([wgt[:, :1] * t[i] + wgt[:, 1:] * st[i], e[i]], 1))
        d1 = self.dec1(gated)
        size = geom.shape[-2:]
        gate_full = F.interpolate(weights[0], size=size, mode="bilinear", align_corners=False)
        mix = gate_full[:, :1] * d_tof + gate_full[:, 1:] * d_st
        coarse = mix + F.interpolate(self.head1(d1[0]), size=size, mode="bilinear",
                                     align_corners=False)
        f2 = self.enc2(torch.cat([coarse, d_tof, d_st, gray], 1), skips=d1)
        d2 = self.dec2(f2)
        r = F.interpolate(self.head2(d2[0]), size=size, mode="bilinear", align_corners=False)
        fine = coarse + self.refine(torch.cat([r, coarse, d_tof, d_st, gray], 1))
        out = {"coarse": coarse * s, "gates": gate_full}
        if self.snap is not None:
            out["pre_snap"] = fine * s
            fine, _ = self.snap(fine, torch.cat([fine, d_tof, d_st, err], 1), gray)
        out["depth"] = fine * s
        if self.cfg.guard_radius > 0:
            out["unguarded"] = out["depth"]
            out["depth"] = convex_guard(fine * s, geom[:, 0:1], geom[:, 2:3],
                                        self.cfg.guard_radius)
        return out


def _grad_l1(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    loss = 0.0
    for dim in (-1, -2):
        dp, dg = torch.diff(pred, dim=dim), torch.diff(gt, dim=dim)
        m = torch.minimum(mask.narrow(dim, 0, mask.shape[dim] - 1), mask.narrow(dim, 1,
                          mask.shape[dim] - 1))
        loss = loss + (m * (dp - dg).abs()).sum() / m.sum().clamp_min(1)
    return loss


def fusion_loss(out: dict, gt: torch.Tensor, mask: torch.Tensor,
                grad_weight: float = 0.5) -> torch.Tensor:
    """Masked L1 on the final (and, at half weight, the coarse and pre-snap) depth + gradient
    L1. gt, mask: (B, 1, h, w)."""
    n = mask.sum().clamp_min(1)
    l1 = (mask * (out["depth"] - gt).abs()).sum() / n
    l1c = sum((mask * (out[k] - gt).abs()).sum() / n for k in ("coarse", "pre_snap", "unguarded")
              if k in out)
    return l1 + 0.5 * l1c + grad_weight * _grad_l1(out["depth"], gt, mask)


def low_frequency_loss(depth: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                       block: int) -> torch.Tensor:
    """The weighted L1 of the block-mean residual: sum over block x block tiles of
    |sum_tile w (depth - target)| / sum w. depth, target, weight (B, 1, h, w), h and w multiples
    of `block`. At most the per-pixel weighted L1 (triangle inequality); zero for a residual of
    zero mean in every tile, so it penalises a bias over a surface and leaves zero-mean
    detail to the per-pixel terms. `TrainConfig.lf_weight` adds it to the training loss on
    ToF-valid pixels whose multipath channel is low (a flat-surface bias term)."""
    area = block * block
    w_sum = F.avg_pool2d(weight, block) * area
    r_sum = F.avg_pool2d(weight * (depth - target), block) * area
    return r_sum.abs().sum() / w_sum.sum().clamp_min(1)


def save_model(model: TwoStageFusionNet, path, meta: dict | None = None) -> None:
    """Weights + net config (+ JSON `meta`: the DEI config the net was trained with, its
    training command) as one safetensors file (`shared.io.save_weights`)."""
    from shared.config import to_dict
    from shared.io import save_weights

    save_weights(path, model.state_dict(), {"kind": _KIND, "net": to_dict(model.cfg),
                                            "meta": meta or {}})


def load_model(path) -> TwoStageFusionNet:
    """A model saved by `save_model`, in eval mode. Runs no code from the file; a missing,
    corrupt or foreign file, a bad config or tensors that do not fit it is a one-line
    DataError."""
    from shared.config import from_dict
    from shared.errors import ConfigError, DataError
    from shared.io import load_weights
    from shared.validate import check_state_dict

    state, info = load_weights(path, _KIND)
    if not isinstance(info.get("net"), dict):
        raise DataError(f"{path}: model metadata has no 'net' config")
    try:
        net_cfg = from_dict(NetConfig, info["net"])
    except ConfigError as e:
        raise DataError(f"{path}: model config {e}") from None
    with torch.device("meta"):  # shapes only: a corrupt config never allocates
        shape = TwoStageFusionNet(net_cfg)
    model = TwoStageFusionNet(net_cfg)
    model.load_state_dict(check_state_dict(state, shape, str(path)))
    meta = info.get("meta", {})
    model.meta = meta if isinstance(meta, dict) else {}
    return model.eval()
