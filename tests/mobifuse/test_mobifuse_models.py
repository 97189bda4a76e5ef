"""The two-stage fusion net: shapes, gating, the no-DEI ablation, loss, a short training run."""

import numpy as np
import pytest
import torch

from mobifuse.config import NetConfig
from mobifuse.models import N_ERR, EdgeSnap, TwoStageFusionNet, fusion_loss


def _inputs(b=2, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    geom = torch.rand(b, 4, h, w, generator=g) * 3 + 0.5
    geom[:, 1] = geom[:, 3] = 1.0
    return geom, torch.rand(b, N_ERR, h, w, generator=g)


def test_forward_shapes_and_gates_are_a_convex_mix():
    torch.manual_seed(0)
    net = TwoStageFusionNet(NetConfig(widths=(4, 8, 8)))
    geom, err = _inputs()
    out = net(geom, err)
    assert out["depth"].shape == (2, 1, 32, 48) and out["coarse"].shape == (2, 1, 32, 48)
    gates = out["gates"]
    assert torch.allclose(gates.sum(1), torch.ones(2, 32, 48), atol=1e-5)
    assert gates.min() >= 0


def test_no_dei_ablation_ignores_dei_channels_but_full_net_uses_them():
    torch.manual_seed(0)
    geom, err = _inputs()
    err2 = err.clone()
    err2[:, 1:] = torch.randn_like(err2[:, 1:])  # change the DEI, keep the grey image
    ablated = TwoStageFusionNet(NetConfig(widths=(4, 8, 8), use_dei=False))
    torch.testing.assert_close(ablated(geom, err)["depth"], ablated(geom, err2)["depth"])
    full = TwoStageFusionNet(NetConfig(widths=(4, 8, 8), use_dei=True))
    assert not torch.allclose(full(geom, err)["depth"], full(geom, err2)["depth"])


def test_fusion_loss_zero_at_truth_and_masked():
    gt = torch.rand(1, 1, 8, 8) + 1
    out = {"depth": gt.clone(), "coarse": gt.clone()}
    assert fusion_loss(out, gt, torch.ones_like(gt)).item() == pytest.approx(0.0)
    bad = {"depth": gt + 1.0, "coarse": gt.clone()}
    assert fusion_loss(bad, gt, torch.ones_like(gt)).item() == pytest.approx(1.0)
    assert fusion_loss(bad, gt, torch.zeros_like(gt)).item() == pytest.approx(0.0)


def test_short_training_run_reduces_loss():
    torch.manual_seed(0)
    net = TwoStageFusionNet(NetConfig(widths=(4, 8, 8)))
    geom, err = _inputs(b=4, h=32, w=32)
    gt = (0.5 * geom[:, :1] + 0.5 * geom[:, 2:3]).detach()  # learnable: the mean of inputs
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = fusion_loss(net(geom, err), gt, torch.ones_like(gt))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_bad_width_config_rejected():
    with pytest.raises(ValueError, match="widths"):
        TwoStageFusionNet(NetConfig(widths=(4, 8)))


def _snap_reference(depth, wgt, radius, dilation):
    """Slow reference: explicit loops over pixels and window offsets, clamped (replicate) index."""
    _, _, h, w = depth.shape
    out = np.zeros((h, w))
    d, wt = depth[0, 0].numpy(), wgt[0].numpy()
    offs = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    for y in range(h):
        for x in range(w):
            for k, (dy, dx) in enumerate(offs):
                yy = min(max(y + dy * dilation, 0), h - 1)
                xx = min(max(x + dx * dilation, 0), w - 1)
                out[y, x] += wt[k, y, x] * d[yy, xx]
    return out


def test_edge_snap_matches_loop_reference_and_is_a_convex_mix():
    torch.manual_seed(0)
    snap = EdgeSnap(cin=3, width=4, radius=1, dilation=2)
    torch.nn.init.normal_(snap.head[-1].weight)  # non-trivial weights
    depth = torch.rand(1, 1, 7, 9) * 3 + 0.5
    feats = torch.randn(1, 3, 7, 9)
    out, wgt = snap(depth, feats, torch.rand(1, 1, 7, 9))
    assert wgt.shape == (1, 9, 7, 9)
    torch.testing.assert_close(wgt.sum(1), torch.ones(1, 7, 9))
    ref = _snap_reference(depth, wgt.detach(), radius=1, dilation=2)
    np.testing.assert_allclose(out[0, 0].detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    cand = snap.candidates(depth)
    assert (out >= cand.min(1, keepdim=True).values - 1e-6).all()
    assert (out <= cand.max(1, keepdim=True).values + 1e-6).all()


def test_edge_snap_candidates_equal_unfold_values_and_gradients():
    """The shifted-view candidates are F.unfold's columns (same order, same values, same
    gradients), for several radii, dilations, batch sizes and odd map sizes."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(3)
    for radius, dilation, shape in ((1, 2, (1, 1, 7, 9)), (2, 2, (2, 1, 13, 17)),
                                    (2, 1, (1, 1, 5, 6)), (3, 3, (3, 1, 11, 8))):
        snap = EdgeSnap(cin=1, width=2, radius=radius, dilation=dilation)
        x = torch.randn(*shape, generator=g, requires_grad=True)
        pad = radius * dilation
        k = 2 * radius + 1
        ref = F.unfold(F.pad(x, (pad,) * 4, mode="replicate"), k, dilation=dilation).view(
            shape[0], k * k, *shape[-2:])
        got = snap.candidates(x)
        assert torch.equal(got, ref)
        w = torch.randn(ref.shape, generator=g)
        (gr,) = torch.autograd.grad((ref * w).sum(), x)
        (gg,) = torch.autograd.grad((got * w).sum(), x)
        torch.testing.assert_close(gg, gr, rtol=0, atol=1e-5)


def test_window_max_equals_max_pooling_with_nan_and_inf():
    """window_max against the max_pool2d form it replaced (and a loop on a small map)."""
    import torch.nn.functional as F

    from mobifuse.models import window_max

    g = torch.Generator().manual_seed(4)
    for radius, shape in ((1, (1, 1, 6, 7)), (2, (2, 3, 9, 5)), (3, (1, 1, 4, 4))):
        x = torch.randn(*shape, generator=g)
        x.view(-1)[::7] = float("nan")
        x.view(-1)[3::11] = float("inf")
        x.view(-1)[5::13] = float("-inf")
        k = 2 * radius + 1
        ref = F.max_pool2d(F.max_pool2d(x, (1, k), 1, (0, radius)), (k, 1), 1, (radius, 0))
        got = window_max(x, radius)
        assert torch.equal(torch.isnan(got), torch.isnan(ref))
        assert torch.equal(torch.nan_to_num(got, 7.0), torch.nan_to_num(ref, 7.0))
    x = torch.randn(1, 1, 5, 6, generator=g)
    got = window_max(x, 1)[0, 0]
    for y in range(5):
        for xx in range(6):
            assert got[y, xx] == x[0, 0, max(0, y - 1):y + 2, max(0, xx - 1):xx + 2].max()


def test_edge_snap_copies_one_side_of_a_step_not_the_average():
    # a hard choice of the left neighbour at a blurred step returns the left surface's depth
    snap = EdgeSnap(cin=1, width=2, radius=1, dilation=1)
    depth = torch.tensor([[1.0, 1.0, 2.0, 3.0, 3.0]]).view(1, 1, 1, 5)  # 2.0 = flying pixel
    with torch.no_grad():
        snap.head[-1].bias.zero_()
        snap.head[-1].bias[3] = 50.0  # offset (0, -1): the left neighbour
    out, _ = snap(depth, torch.zeros(1, 1, 1, 5), torch.zeros(1, 1, 1, 5))
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([1.0, 1.0, 1.0, 2.0, 3.0]))


def test_edge_snap_guide_affinity_picks_the_candidate_of_the_same_grey_level():
    # uniform learned logits; the grey guide alone decides: the flying pixel (grey 0.9, like the
    # right surface) takes the right surface's depth, pixels of the left surface keep theirs
    snap = EdgeSnap(cin=1, width=2, radius=1, dilation=1)
    with torch.no_grad():
        snap.head[-1].bias.zero_()
        snap.head[-1].bias[-1] = 20.0  # sharpness softplus(20) ~ 20
    depth = torch.tensor([[1.0, 1.0, 2.0, 3.0, 3.0]]).view(1, 1, 1, 5)
    guide = torch.tensor([[0.1, 0.1, 0.9, 0.9, 0.9]]).view(1, 1, 1, 5)
    out, _ = snap(depth, torch.zeros(1, 1, 1, 5), guide)
    assert out[0, 0, 0, 1].item() == pytest.approx(1.0, abs=1e-3)
    assert out[0, 0, 0, 2].item() > 2.4  # mean of {2, 3, 3} for 3 surviving candidates


def test_shipped_quick_nets_match_the_quick_setting():
    """`mobifuse.bench --quick` finds its three fusion nets (with / without DEI, cross-rig) in
    mobifuse/weights/ and never renders training scenes, and so does the full bench's cross-rig
    net (S16, trained by `mobifuse.experiments.train_scale`). A change to the data, net or quick
    setting changes the key: refresh with `python -m mobifuse.experiments.ship_weights`. The
    default model `fuse()` uses ships beside them, with its training command and DEI config."""
    from mobifuse.api import default_model
    from mobifuse.bench import QUICK, WEIGHTS_DIR, rig_train_config, trained_net
    from mobifuse.config import BenchConfig
    from shared.config import load_config

    cfg = load_config("configs/mobifuse/bench.yaml", BenchConfig,
                      [f"{k}={v}" for k, v in QUICK.items()])

    def no_training_data():
        raise AssertionError("rendered training scenes: no shipped net for the quick setting")

    for use_dei in (True, False):
        net = trained_net(cfg.train, no_training_data, use_dei)
        assert net.cfg.use_dei is use_dei
    trained_net(rig_train_config(cfg), no_training_data, True)
    full = rig_train_config(load_config("configs/mobifuse/bench.yaml", BenchConfig))
    shipped = trained_net(full, no_training_data, True)
    assert "train_scale --arms S16" in shipped.meta["command"]
    assert shipped.cfg.ray_channels and shipped.cfg.fov_channels  # RAYFOV, rig_camera_maps
    assert len(list(WEIGHTS_DIR.glob("*.safetensors"))) == 5
    meta = default_model().meta
    assert "configs/mobifuse/default.yaml" in meta["command"] and meta["rigs"] is not None
    assert set(meta["dei"]) >= {"tof_scale", "hole_sigma"}


def test_convex_guard_matches_a_loop_reference_and_never_leaves_the_inputs_hull():
    from mobifuse.models import convex_guard

    g = torch.Generator().manual_seed(0)
    tof = 1 + torch.rand(1, 1, 6, 7, generator=g)
    st = 1 + torch.rand(1, 1, 6, 7, generator=g) * 3
    depth = torch.randn(1, 1, 6, 7, generator=g) * 5  # wild: far outside both sensors
    out = convex_guard(depth, tof, st, 1)
    for y in range(6):  # reference: clip to min/max of both inputs in the 3x3 window
        for x in range(7):
            win = torch.cat([tof[0, 0, max(0, y - 1):y + 2, max(0, x - 1):x + 2].ravel(),
                             st[0, 0, max(0, y - 1):y + 2, max(0, x - 1):x + 2].ravel()])
            want = min(max(depth[0, 0, y, x].item(), win.min().item()), win.max().item())
            assert out[0, 0, y, x].item() == pytest.approx(want)
    mid = (tof + st) / 2  # inside every window's hull: passes unchanged
    torch.testing.assert_close(convex_guard(mid, tof, st, 1), mid)
    nan = convex_guard(torch.full_like(depth, float("nan")), tof, st, 1)
    torch.testing.assert_close(nan, tof)  # explicit fallback: the ToF


def test_a_broken_sensor_is_never_amplified_by_the_net():
    """Any weights: with the stereo input broken (100 m everywhere), the fused depth stays in
    the hull of the two inputs, i.e. never beyond the broken sensor itself."""
    torch.manual_seed(0)
    net = TwoStageFusionNet(NetConfig(widths=(4, 8, 8))).eval()
    for p in net.parameters():
        p.data.normal_(0, 1.0)  # a badly broken net
    geom = torch.rand(1, 4, 16, 24) + 1.0
    geom[:, 2] = 100.0
    with torch.no_grad():
        d = net(geom, torch.randn(1, N_ERR, 16, 24))["depth"]
    lo = torch.minimum(geom[:, 0:1].min(), geom[:, 2:3].min())
    assert torch.isfinite(d).all() and (d >= lo).all() and (d <= 100.0).all()


def test_training_runs_on_frames_of_different_sizes():
    from mobifuse.config import RigFamily, SimConfig, TrainConfig
    from mobifuse.data import build_frames
    from mobifuse.train import train_fusion_net

    fam = RigFamily(width=(130, 161), focal_px=(120.0, 200.0), tof_ratio=(2, 3))
    cfg = TrainConfig(steps=30, batch_size=4, crop=32, net=NetConfig(widths=(4, 8, 8)),
                      rigs=fam, sim=SimConfig(supersample=1))
    frames = build_frames([1, 2, 3], cfg.sim, cfg.stereo, cfg.dei, fam)
    assert len({f["gt"].shape for f in frames}) > 1  # rigs differ in size
    model, m = train_fusion_net(cfg, frames, frames[:1])
    assert np.isfinite(m["val_mae"]) and np.isfinite(m["final_loss"])
    from mobifuse.train import predict_frames

    assert [p.shape for p in predict_frames(model, frames)] == [f["gt"].shape for f in frames]


def test_stereo_scaled_shrinks_only_the_stereo_error_and_shifts_its_log_sigma():
    """alpha = 1 is the identity; the result is f B' / (d + delta_d) for the same disparity
    error delta_d on a rig with f B' = f B / alpha (the stereo depth recomputed from its
    disparity, not the closed form of the function); log alpha is added to the log sigma_st
    channel, and no other input changes."""
    from mobifuse.dei import DEI_CHANNELS
    from mobifuse.train import ST_SIGMA_CHANNEL, stereo_scaled

    geom, err = _inputs(b=3)
    gt = torch.rand(3, 1, 32, 48, generator=torch.Generator().manual_seed(1)) * 3 + 0.5
    g1, e1 = stereo_scaled(geom, err, gt, torch.ones(3))
    assert torch.allclose(g1, geom, atol=1e-6) and torch.allclose(e1, err)
    alpha = torch.tensor([1.0, 0.5, 0.1])
    g, e = stereo_scaled(geom, err, gt, alpha)
    fb = 30.0  # any f B (doffs folded into d): the result does not depend on it
    for b in range(3):  # per crop, through disparities
        d_true, d_meas = fb / gt[b, 0], fb / geom[b, 2]
        fb_new = fb / alpha[b]
        expect = fb_new / (fb_new / gt[b, 0] + (d_meas - d_true))
        assert torch.allclose(g[b, 2], expect, rtol=1e-4)
        assert torch.allclose(e[b, ST_SIGMA_CHANNEL] - err[b, ST_SIGMA_CHANNEL],
                              torch.log(alpha[b]).expand(32, 48), atol=1e-6)
    others = [c for c in range(N_ERR) if c != ST_SIGMA_CHANNEL]
    assert ST_SIGMA_CHANNEL == 1 + DEI_CHANNELS.index("log_sigma_st")
    assert torch.equal(g[:, [0, 1, 3]], geom[:, [0, 1, 3]]) and torch.equal(e[:, others],
                                                                           err[:, others])
    assert torch.equal(geom, _inputs(b=3)[0])  # the inputs are not modified in place


def test_stereo_error_scaling_draws_alpha_log_uniform_and_only_when_on():
    """_crops with scale_prob = 0 is the unaugmented batch of the same random stream; with
    scale_prob = 1 the same crops come back with each crop's stereo error times one alpha in
    [min, 1] in inverse depth, spread over the range (log-uniform: about half the crops below
    sqrt(min))."""
    from mobifuse.train import _crops

    geom, err = _inputs(b=4, h=24, w=24)
    gt = geom[:, 2:3] + torch.linspace(-0.5, 0.5, 24)  # a stereo error that varies per column
    frames = list(zip(geom, err, gt))
    plain = _crops(frames, 200, 16, torch.Generator().manual_seed(0))
    again = _crops(frames, 200, 16, torch.Generator().manual_seed(0), 0.0, 0.1)
    assert all(torch.equal(a, b) for a, b in zip(plain, again))
    g, e, y = _crops(frames, 200, 16, torch.Generator().manual_seed(0), 1.0, 0.1)
    assert torch.equal(y, plain[2]) and torch.equal(g[:, [0, 1, 3]], plain[0][:, [0, 1, 3]])
    ratio = (1 / g[:, 2] - 1 / y[:, 0]) / (1 / plain[0][:, 2] - 1 / y[:, 0])
    alpha = ratio.flatten(1).median(1).values
    assert torch.allclose(ratio, alpha.view(-1, 1, 1).expand_as(ratio), atol=1e-3)
    assert (alpha >= 0.1 - 1e-6).all() and (alpha <= 1 + 1e-6).all()
    assert 0.35 < (alpha < 0.1 ** 0.5).float().mean() < 0.65


def test_low_frequency_loss_matches_a_tile_loop_and_ignores_zero_mean_detail():
    """Against an explicit loop over tiles: sum |sum_tile w r| / sum w. It is at most the
    per-pixel weighted L1, zero when the residual has zero weighted mean in every tile (a
    checkerboard), and a constant bias b over weighted pixels costs |b| (the per-pixel L1)."""
    from mobifuse.models import low_frequency_loss

    g = torch.Generator().manual_seed(3)
    depth, target = torch.rand(2, 1, 8, 12, generator=g), torch.rand(2, 1, 8, 12, generator=g)
    w = (torch.rand(2, 1, 8, 12, generator=g) > 0.3).float()
    num = 0.0
    for b in range(2):
        for y0 in range(0, 8, 4):
            for x0 in range(0, 12, 4):
                sl = (b, 0, slice(y0, y0 + 4), slice(x0, x0 + 4))
                num += abs(float((w[sl] * (depth[sl] - target[sl])).sum()))
    loss = low_frequency_loss(depth, target, w, 4)
    assert loss.item() == pytest.approx(num / float(w.sum()), rel=1e-5)
    l1 = float((w * (depth - target).abs()).sum() / w.sum())
    assert loss.item() <= l1 + 1e-6 and loss.item() < 0.8 * l1  # random residuals average out
    checker = ((torch.arange(8)[:, None] + torch.arange(12)) % 2 * 2 - 1).float() * 0.3
    ones = torch.ones(1, 1, 8, 12)
    assert low_frequency_loss(target[:1] + checker, target[:1], ones, 4).item() < 1e-6
    assert low_frequency_loss(target + 0.05, target, w, 4).item() == pytest.approx(0.05, rel=1e-4)
    assert low_frequency_loss(depth, target, torch.zeros_like(w), 4).item() == 0.0


def test_training_loss_adds_the_term_only_when_on_and_only_on_low_multipath_tof_pixels():
    """lf_weight 0: exactly `fusion_loss`. On: the term counts ToF-valid pixels whose
    multipath channel is below lf_mpi_max, against the truth or the ToF input; a bias on
    pixels outside that mask adds nothing."""
    from mobifuse.config import TrainConfig
    from mobifuse.train import MPI_CHANNEL, training_loss

    geom, err = _inputs(b=2, h=32, w=32)
    gt = torch.full((2, 1, 32, 32), 2.0)
    geom[:, 0] = 2.0  # ToF reads the truth ...
    geom[:, 1] = 1.0
    geom[:, 1, :, 16:] = 0.0  # ... on the left half only
    err[:, MPI_CHANNEL] = 0.0
    err[:, MPI_CHANNEL, 16:] = 1.0  # multipath cue on the bottom half
    depth = gt.clone()
    depth[..., 16:, :] += 0.2  # biased where the multipath cue is (bottom) ...
    depth[..., :16, 16:] -= 0.3  # ... and where the ToF did not measure (top right)
    out = {"depth": depth}
    base = fusion_loss(out, gt, torch.ones_like(gt), 0.5)
    off = TrainConfig(crop=32)
    assert torch.equal(training_loss(off, out, geom, err, gt), base)
    on = TrainConfig(crop=32, lf_weight=2.0, lf_block=16)
    assert training_loss(on, out, geom, err, gt).item() == pytest.approx(base.item(), abs=1e-6)
    depth2 = depth.clone()
    depth2[..., :16, :16] += 0.1  # a bias on the counted pixels (top left)
    d = training_loss(on, {"depth": depth2}, geom, err, gt) - fusion_loss(
        {"depth": depth2}, gt, torch.ones_like(gt), 0.5)
    assert d.item() == pytest.approx(2.0 * 0.1, rel=1e-4)
    geom[:, 0] += 0.1  # against the ToF, which now reads the biased depth: no term
    to_tof = TrainConfig(crop=32, lf_weight=2.0, lf_block=16, lf_target="tof")
    d = training_loss(to_tof, {"depth": depth2}, geom, err, gt) - fusion_loss(
        {"depth": depth2}, gt, torch.ones_like(gt), 0.5)
    assert abs(d.item()) < 1e-5
    with pytest.raises(ValueError, match="lf_block"):
        TrainConfig(crop=32, lf_block=24).validate()


def test_net_key_has_the_low_frequency_term_only_when_on():
    """Nets trained without the term keep their cache keys (the shipped quick nets)."""
    from mobifuse.bench import net_key
    from mobifuse.config import TrainConfig

    _, off = net_key(TrainConfig(), True)
    assert not any(k.startswith("lf_") for k in off["train"])
    _, on = net_key(TrainConfig(lf_weight=1.0), True)
    assert on["train"]["lf_weight"] == 1.0 and on["train"]["lf_target"] == "gt"


def test_net_key_leaves_out_the_training_device_and_threads():
    """A net trained on a GPU (or with more threads) serves the same setting on a CPU; any
    field that changes what the net learns from changes the key."""
    from mobifuse.bench import net_key
    from mobifuse.config import TrainConfig

    base = net_key(TrainConfig(), True)[1]
    assert net_key(TrainConfig(device="cuda", threads=4), True)[1] == base
    assert net_key(TrainConfig(steps=7), True)[1] != base


def test_rig_lf_weight_sets_the_term_of_the_cross_rig_net_only():
    """bench.yaml's `rig_lf_weight` reaches the cross-rig net's training config; the fixed-rig
    nets (`train`) keep theirs; None falls back to `train.lf_weight`."""
    from mobifuse.bench import rig_train_config
    from mobifuse.config import BenchConfig
    from shared.config import load_config

    cfg = load_config("configs/mobifuse/bench.yaml", BenchConfig)
    assert cfg.train.lf_weight == 0.0 and rig_train_config(cfg).lf_weight == cfg.rig_lf_weight
    none = load_config("configs/mobifuse/bench.yaml", BenchConfig,
                       ["rig_lf_weight=null", "train.lf_weight=0.5"])
    assert rig_train_config(none).lf_weight == 0.5


def test_rig_camera_maps_turn_on_both_camera_inputs_of_the_cross_rig_net_only():
    """`rig_camera_maps` gives the cross-rig net ray and field-of-view maps (and so its own
    cache key); the fixed-rig nets (`train.net`) keep neither."""
    from mobifuse.bench import net_key, rig_train_config
    from mobifuse.config import BenchConfig
    from shared.config import load_config

    for on in (False, True):
        cfg = load_config("configs/mobifuse/bench.yaml", BenchConfig, [f"rig_camera_maps={on}"])
        net = rig_train_config(cfg).net
        assert (net.ray_channels, net.fov_channels) == (on, on)
        assert not (cfg.train.net.ray_channels or cfg.train.net.fov_channels)
        key = net_key(rig_train_config(cfg), True)[1]["train"]["net"]
        assert ("fov_channels" in key) is on and ("ray_channels" in key) is on


def test_ray_maps_closed_form_and_a_ray_net_takes_two_more_channels():
    """`ray_maps`: (u - cx) / f and (v - cy) / f at every pixel (a loop), slope 1 / f, zero at
    the principal point; a net with ray_channels takes N_ERR + 2 err channels and `run_net`
    refuses any other count with one line."""
    from mobifuse.api import run_net
    from mobifuse.models import N_ERR, n_err, ray_maps
    from shared.errors import DataError

    r = ray_maps(5, 7, 100.0, cx=2.5, cy=1.0)
    for v in range(5):
        for u in range(7):
            assert r[0, v, u] == pytest.approx((u - 2.5) / 100.0)
            assert r[1, v, u] == pytest.approx((v - 1.0) / 100.0)
    c = ray_maps(4, 6, 50.0)  # centred by default
    assert c[0].sum() == pytest.approx(0.0, abs=1e-6) and c[1].sum() == pytest.approx(0.0, abs=1e-6)
    cfg = NetConfig(widths=(4, 8, 8), ray_channels=True)
    assert n_err(cfg) == N_ERR + 2 and n_err(NetConfig()) == N_ERR
    torch.manual_seed(0)
    net = TwoStageFusionNet(cfg)
    geom = np.random.default_rng(0).uniform(1, 3, (4, 16, 24)).astype(np.float32)
    err = np.random.default_rng(1).random((N_ERR, 16, 24)).astype(np.float32)
    out = run_net(net, geom, np.concatenate([err, ray_maps(16, 24, 20.0)]))
    assert out.shape == (16, 24) and np.all(np.isfinite(out))
    with pytest.raises(DataError, match=f"takes {N_ERR + 2} err channels"):
        run_net(net, geom, err)


def test_flipped_training_crops_get_the_mirrored_camera_and_no_dei_keeps_the_rays():
    """`_crops` with rays: a flipped crop's u map is -u of the flipped values (the mirrored
    camera: u increases left to right again), v and the other channels only flipped; the no-DEI
    ablation zeroes the DEI maps but keeps the grey image and the rays."""
    from mobifuse.models import N_ERR, ray_maps
    from mobifuse.train import _crops

    rng = np.random.default_rng(0)
    g = torch.from_numpy(rng.random((4, 12, 16)).astype(np.float32))
    e = torch.from_numpy(np.concatenate([rng.random((N_ERR, 12, 16)),
                                         ray_maps(12, 16, 10.0)]).astype(np.float32))
    y = torch.from_numpy(rng.random((1, 12, 16)).astype(np.float32))
    gen = torch.Generator().manual_seed(0)
    _, ce, _ = _crops([(g, e, y)], 16, 12, gen, rays=True)
    for c in ce:  # a 12 x 12 crop of a 12 x 16 frame: which and whether flipped, from the data
        u = c[N_ERR].numpy()
        assert np.all(np.diff(u, axis=1) > 0)  # never decreasing: flipped crops were negated
        flipped = not any(np.allclose(c[0].numpy(), e[0, :, x:x + 12].numpy()) for x in range(5))
        x0 = next(x for x in range(5) if np.allclose(
            c[0].numpy(), (e[0, :, x:x + 12].flip(-1) if flipped else e[0, :, x:x + 12]).numpy()))
        ref = e[N_ERR, :, x0:x0 + 12]
        np.testing.assert_allclose(u, (-ref.flip(-1) if flipped else ref).numpy())
    torch.manual_seed(0)
    net = TwoStageFusionNet(NetConfig(widths=(4, 8, 8), ray_channels=True, use_dei=False))
    gb = torch.rand(1, 4, 16, 16) + 1
    eb = torch.rand(1, N_ERR + 2, 16, 16)
    other = eb.clone()
    other[:, 1:N_ERR] = torch.rand(1, N_ERR - 1, 16, 16)  # other DEI maps: ignored
    with torch.no_grad():
        a, b = net(gb, eb)["depth"], net(gb, other)["depth"]
        moved = eb.clone()
        moved[:, N_ERR:] += 0.5  # other rays: used
        d = net(gb, moved)["depth"]
    assert torch.equal(a, b) and not torch.equal(a, d)


def test_fov_maps_closed_form_and_camera_maps_order_rays_then_fov():
    """`fov_maps`: W / (2 f_x) and H / (2 f_y) in every pixel; `camera_maps` stacks the rays
    (`centred_rays`), then the FOV maps, as the options say, none when both are off; a net
    with both takes N_ERR + 4 err channels."""
    from mobifuse.api import run_net
    from mobifuse.models import N_ERR, camera_maps, centred_rays, fov_maps, n_err
    from shared.errors import DataError

    m = fov_maps(5, 7, 400.0, 640, 480, 500.0)
    assert m.shape == (2, 5, 7) and m.dtype == np.float32
    assert np.all(m[0] == np.float32(640 / 800)) and np.all(m[1] == np.float32(480 / 1000))
    assert np.all(fov_maps(3, 3, 250.0, 500, 250)[1] == np.float32(0.5))  # f_y defaults to f_x
    both = NetConfig(widths=(4, 8, 8), ray_channels=True, fov_channels=True)
    c = camera_maps(both, 6, 8, 300.0, 17, 13, 310.0)
    np.testing.assert_array_equal(c[:2], centred_rays(6, 8, 300.0, 17, 13, 310.0))
    np.testing.assert_array_equal(c[2:], fov_maps(6, 8, 300.0, 17, 13, 310.0))
    fov_only = camera_maps(NetConfig(fov_channels=True), 6, 8, 300.0, 17, 13)
    np.testing.assert_array_equal(fov_only, fov_maps(6, 8, 300.0, 17, 13))
    assert camera_maps(NetConfig(), 6, 8, 300.0, 17, 13).shape == (0, 6, 8)
    assert n_err(both) == N_ERR + 4 and n_err(NetConfig(fov_channels=True)) == N_ERR + 2
    torch.manual_seed(0)
    net = TwoStageFusionNet(both)
    geom = np.random.default_rng(0).uniform(1, 3, (4, 16, 24)).astype(np.float32)
    err = np.random.default_rng(1).random((N_ERR, 16, 24)).astype(np.float32)
    out = run_net(net, geom, np.concatenate([err, camera_maps(both, 16, 24, 40.0, 48, 32)]))
    assert out.shape == (16, 24) and np.all(np.isfinite(out))
    with pytest.raises(DataError, match=f"takes {N_ERR + 4} err channels.*rays, FOV"):
        run_net(net, geom, np.concatenate([err, centred_rays(16, 24, 40.0, 48, 32)]))


def test_flipped_crops_leave_the_fov_maps_and_a_camera_net_trains_on_frames():
    """`_crops` with rays and FOV maps: a flipped crop negates the u ray map only, the FOV maps
    come through unchanged; a net with both options trains on `build_frames` frames (their
    rigs give the maps), predicts each frame, and refuses stacked arrays, which keep no rig."""
    from mobifuse.config import RigFamily, SimConfig, TrainConfig
    from mobifuse.data import build_dataset, build_frames
    from mobifuse.models import N_ERR, camera_maps
    from mobifuse.train import _crops, predict_frames, train_fusion_net

    rng = np.random.default_rng(0)
    cfg = NetConfig(widths=(4, 8, 8), ray_channels=True, fov_channels=True)
    g = torch.from_numpy(rng.random((4, 12, 16)).astype(np.float32))
    cam = camera_maps(cfg, 12, 16, 10.0, 32, 24)
    e = torch.from_numpy(np.concatenate([rng.random((N_ERR, 12, 16)), cam]).astype(np.float32))
    y = torch.from_numpy(rng.random((1, 12, 16)).astype(np.float32))
    _, ce, _ = _crops([(g, e, y)], 16, 12, torch.Generator().manual_seed(0), rays=True)
    n_flipped = 0
    for c in ce:
        assert np.all(np.diff(c[N_ERR].numpy(), axis=1) > 0)  # the u map, mirrored when flipped
        np.testing.assert_array_equal(c[N_ERR + 2:].numpy(), cam[2:, :12, :12])
        n_flipped += not any(np.array_equal(c[0].numpy(), e[0, :, x:x + 12].numpy())
                             for x in range(5))
    assert 0 < n_flipped < len(ce)  # both kinds of crop were drawn

    fam = RigFamily(width=(130, 161), focal_px=(120.0, 200.0), tof_ratio=(2, 3))
    tc = TrainConfig(steps=3, batch_size=2, crop=32, net=cfg, rigs=fam,
                     sim=SimConfig(supersample=1))
    frames = build_frames([1, 2], tc.sim, tc.stereo, tc.dei, fam)
    model, metrics = train_fusion_net(tc, frames, val=frames)
    assert np.isfinite(metrics["val_mae"])
    assert all(p.shape == f["gt"].shape for p, f in zip(predict_frames(model, frames), frames))
    with pytest.raises(ValueError, match="fov_channels"):
        train_fusion_net(tc, build_dataset([1], tc.sim, tc.stereo, tc.dei))


def test_a_fov_only_net_never_negates_a_channel_of_a_flipped_crop(monkeypatch):
    """`train_fusion_net` asks `_crops` to mirror the u ray map only when the net has rays: a
    net with FOV maps alone has none, and its first FOV map must come through a flip as is."""
    import mobifuse.train as mf_train
    from mobifuse.config import RigFamily, SimConfig, TrainConfig
    from mobifuse.data import build_frames

    seen = []
    real = mf_train._crops

    def spy(*args, **kwargs):
        seen.append(kwargs.get("rays", args[6] if len(args) > 6 else False))
        return real(*args, **kwargs)

    monkeypatch.setattr(mf_train, "_crops", spy)
    fam = RigFamily(width=(130, 161), focal_px=(120.0, 200.0), tof_ratio=(2, 3))
    for rays in (False, True):
        tc = TrainConfig(steps=2, batch_size=2, crop=32, rigs=fam, sim=SimConfig(supersample=1),
                         net=NetConfig(widths=(4, 8, 8), ray_channels=rays, fov_channels=True))
        seen.clear()
        mf_train.train_fusion_net(tc, build_frames([1], tc.sim, tc.stereo, tc.dei, fam))
        assert seen == [rays, rays]


def test_wide_validation_flips_a_camera_net_with_its_mirrored_camera(monkeypatch):
    """`wide_validation.flipped` gives a net with camera maps the mirrored frame's err with the
    u ray map negated (increasing left to right, as in training) and the FOV maps as they were,
    and returns the depth mirrored back."""
    from mobifuse.experiments import wide_validation as wv
    from mobifuse.models import N_ERR, camera_maps

    cfg = NetConfig(widths=(4, 8, 8), ray_channels=True, fov_channels=True)
    rng = np.random.default_rng(0)
    f = {"geom": rng.uniform(1, 3, (4, 8, 16)).astype(np.float32),
         "err": rng.random((N_ERR, 8, 16)).astype(np.float32),
         "rig": [0.05, 200.0, 32, 16, 0, 2, 2e7, 1.0]}
    seen = {}

    def fake(net, geom, err, jit=False):
        seen["err"] = err
        return np.tile(np.arange(16, dtype=np.float32), (8, 1))

    monkeypatch.setattr(wv, "run_net", fake)
    out = wv.flipped(TwoStageFusionNet(cfg), f)
    cam = camera_maps(cfg, 8, 16, 200.0, 32, 16)
    np.testing.assert_array_equal(seen["err"][:N_ERR], f["err"][..., ::-1])
    np.testing.assert_array_equal(seen["err"][N_ERR], -cam[0][:, ::-1])  # as `_crops` mirrors
    assert np.all(np.diff(seen["err"][N_ERR], axis=1) > 0)
    np.testing.assert_array_equal(seen["err"][N_ERR + 1:], cam[1:, :, ::-1])
    np.testing.assert_array_equal(out, np.arange(16, dtype=np.float32)[::-1][None].repeat(8, 0))
