"""The network's beat-synchronous prior (`TrainConfig.prior: sync`): the 18th input channel is
arm (e)'s SCG, the same in training windows as at inference; its z-scoring; its cache keys."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from shared.errors import DataError
from twscardio import pipeline
from twscardio.beatsync import TimingModel
from twscardio.config import NetConfig, SimConfig, TrainConfig
from twscardio.data import recording_windows
from twscardio.models import build_model
from twscardio.pipeline import (
    N_FEATURES,
    N_FEATURES_PRIOR,
    network_features,
    normalise_windows,
    process,
)
from twscardio.simulator import simulate


def _timing(lag=0.12, off=0.0, n_in=163):
    """A timing model predicting a constant (lag, LVET offset)."""
    m = TimingModel(n_in, 8, 1)
    for p in m.nets.parameters():
        torch.nn.init.zeros_(p)
    m.y_mu.copy_(torch.tensor([lag, off]))
    return m.eval()


def _rec(seed=3, duration_s=20.0):
    return simulate(SimConfig(duration_s=duration_s, morphology="randomised"), seed)


def test_normalise_windows_z_scores_the_prior_and_leaves_masks_and_time():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(4, N_FEATURES_PRIOR, 50))
    out = normalise_windows(x)
    for c in [*range(13), N_FEATURES]:  # the 13 signal channels and the prior
        assert np.allclose(out[:, c].mean(axis=1), 0, atol=1e-9)
        assert np.allclose(out[:, c].std(axis=1), 1, atol=1e-5)
    assert np.array_equal(out[:, 13:N_FEATURES], x[:, 13:N_FEATURES])
    # without the prior: exactly the 17-channel normalisation as before (prefix of the above)
    assert np.allclose(normalise_windows(x[:, :N_FEATURES]), out[:, :N_FEATURES])


def test_network_features_append_the_prior_as_the_last_column():
    cfg = TrainConfig()
    prep = pipeline.prepare(_rec(), cfg, baseline=False)
    fus = pipeline.fuse(prep["X"], prep["mask"], prep["fs"], cfg.fusion)
    f17 = network_features(prep, fus)
    prior = np.linspace(-1, 1, f17.shape[0])
    f18 = network_features(prep, fus, prior)
    assert f17.shape[1] == N_FEATURES and f18.shape[1] == N_FEATURES_PRIOR
    assert np.array_equal(f18[:, :N_FEATURES], f17)
    assert np.allclose(f18[:, -1], prior.astype(np.float32))


def test_inference_prior_is_arm_e_scg(monkeypatch):
    """What an 18-channel network sees in its last channel is arm (e)'s SCG of the recording."""
    cfg = TrainConfig()
    rec, timing = _rec(), _timing()
    net = build_model(N_FEATURES_PRIOR, NetConfig(channels=4, dilations=[1]))
    net.timing = timing
    seen = {}
    real = pipeline.reconstruct

    def spy(model, feats, *a, **k):
        seen["feats"] = feats
        return real(model, feats, *a, **k)

    monkeypatch.setattr(pipeline, "reconstruct", spy)
    process(rec, cfg, "d", net)
    e = process(rec, cfg, "e", timing)["scg"]
    assert np.abs(e).max() > 0.5  # the recording has beats: the check is not on zeros
    assert np.allclose(seen["feats"][:, -1], e.astype(np.float32))


def test_training_windows_carry_the_same_prior_as_inference():
    """The training windows' prior channel is arm (e)'s SCG cut into the same windows
    (no fusion fallback in either: off by default)."""
    from twscardio.train import get_timing_model

    cfg = TrainConfig()
    rec = _rec(seed=5)
    timing = get_timing_model(cfg)  # the shipped model: its inputs (complexes, HR) matter
    w = recording_windows(rec, cfg, timing)
    e = process(rec, cfg, "e", timing)["scg"]
    assert np.abs(e).max() > 0.5  # not a check on zeros
    fs = cfg.enhance.fs_out
    win, hop = int(round(cfg.window_s * fs)), int(round(cfg.hop_s * fs))
    idx = pipeline.window_starts(e.size, win, hop)[:, None] + np.arange(win)[None, :]
    assert w["x"].shape[1] == N_FEATURES_PRIOR
    assert np.allclose(w["x"][:, -1], e[idx].astype(np.float32))
    assert np.array_equal(w["x"][:, :N_FEATURES], recording_windows(rec, cfg)["x"])


def test_a_prior_network_without_its_timing_model_is_a_clear_error():
    net = build_model(N_FEATURES_PRIOR, NetConfig(channels=4, dilations=[1]))
    with pytest.raises(DataError, match="timing model"):
        process(_rec(duration_s=12.0), TrainConfig(), "d", net)


def test_prior_keys_differ_and_the_default_keys_do_not_name_it():
    from twscardio import train

    base, prior = replace(TrainConfig(), prior="none"), TrainConfig()
    assert prior.prior == "sync"  # the default
    assert "prior" not in train._model_key(base) and "sync" not in train._model_key(base)
    assert "prior" not in train._data_key(base, "train", 8)
    assert train._model_key(prior) != train._model_key(base)
    # a different timing model makes a different network
    other = replace(prior, sync=replace(prior.sync, members=2))
    assert train._model_key(other) != train._model_key(prior)
    # the network's training subjects follow the timing model's; validation is unchanged
    assert train._data_key(prior, "train", 8)["prior"]["first"] == sum(prior.sync.blocks)
    assert train._data_key(prior, "val", 8)["prior"]["first"] == 0


def test_streaming_feeds_the_prior_to_a_prior_network(monkeypatch):
    """`StreamingMonitor` with an 18-channel network gives it, per window, arm (e)'s SCG of that
    window (`pipeline.network_input`); without the timing model it is a clear error."""
    from twscardio import stream
    from twscardio.stream import StreamingMonitor

    cfg = TrainConfig()
    rec = simulate(SimConfig(duration_s=12.0, fs_in=25.0, morphology="randomised"), 4)
    net = build_model(N_FEATURES_PRIOR, NetConfig(channels=4, dilations=[1]))
    net.timing = _timing()
    seen = []
    real = stream.reconstruct

    def spy(model, feats, *a, **k):
        seen.append(feats)
        return real(model, feats, *a, **k)

    monkeypatch.setattr(stream, "reconstruct", spy)
    # packets of 2 samples in arrival order, both buds interleaved
    packets = sorted(((rec[side]["relative_time"][k], side, slice(k, k + 2))
                      for side in ("left", "right")
                      for k in range(0, len(rec[side]["relative_time"]), 2)),
                     key=lambda e: e[0])

    def run(mon):
        ups = []
        for _, side, sl in packets:
            b = rec[side]
            ups += mon.push(side, b["relative_time"][sl], b["acc"][sl], b["gyro"][sl])
        return ups

    ups = run(StreamingMonitor(cfg, net, window_s=5.0, hop_s=1.0, fs_in=25.0))
    assert any(u.status == "ok" for u in ups)
    assert seen and all(f.shape[1] == N_FEATURES_PRIOR for f in seen)
    assert any(np.abs(f[:, -1]).max() > 0.5 for f in seen)  # the prior holds beats
    # with J_AO_ANCHOR_S on, each update's beats are `anchored_ao` picks of its window's SCG
    anchored = []
    real_anchor = pipeline.anchored_ao

    def spy_anchor(*a, **k):
        anchored.append(real_anchor(*a, **k))
        return anchored[-1]

    monkeypatch.setattr(pipeline, "anchored_ao", spy_anchor)
    ups_off = run(StreamingMonitor(cfg, net, window_s=5.0, hop_s=1.0, fs_in=25.0))
    assert not anchored  # off: plain `find_ao`
    with pipeline.switched(J_AO_ANCHOR_S=0.1):
        ups_on = run(StreamingMonitor(cfg, net, window_s=5.0, hop_s=1.0, fs_in=25.0))
    ok = [(a, b) for a, b in zip(ups_off, ups_on) if b.status == "ok"]
    assert anchored and len(anchored) == len(ok)
    assert any(not np.array_equal(a.beats_s, b.beats_s) for a, b in ok)
    del net.timing
    with pytest.raises(DataError, match="timing model"):
        run(StreamingMonitor(cfg, net, window_s=5.0, hop_s=1.0, fs_in=25.0))


def test_network_input_finds_the_j_peaks_process_uses():
    """`network_input` without beats takes the fused signal's J peaks as `process` does."""
    from twscardio.train import get_timing_model

    cfg = TrainConfig()
    rec = _rec(seed=6)
    net = build_model(N_FEATURES_PRIOR, NetConfig(channels=4, dilations=[1]))
    net.timing = get_timing_model(cfg)
    o = process(rec, cfg, "b")
    prep, fus = o["prep"], o["fusion"]
    own = pipeline.network_input(prep, fus, net, cfg)
    given = pipeline.network_input(prep, fus, net, cfg, o["windows"]["j_s"])
    assert np.abs(given[:, -1]).max() > 0.5 and np.array_equal(own, given)
    # the template settings the network trained with win over the caller's
    net.prior_sync = replace(cfg.sync, blur_ac_ms=40.0)
    other = pipeline.network_input(prep, fus, net, cfg)
    assert not np.allclose(other[:, -1], own[:, -1])


def test_prior_windows_train_after_the_timing_models_subjects(monkeypatch):
    """`train.windows` builds the prior network's training windows from subject
    sum(sync.blocks) on, with the timing model; validation from subject 0."""
    from twscardio import train

    seen = []

    def fake(cfg, split, n, timing=None, first=0):
        seen.append((split, n, timing is not None, first))
        return {"x": np.zeros((1, N_FEATURES_PRIOR, 4), np.float32),
                "y": np.zeros((1, 4), np.float32), "w": np.ones((1, 4), np.float32)}

    monkeypatch.setattr(train, "build_windows", fake)
    cfg = replace(TrainConfig(), n_subjects=3)
    train.windows(cfg, "train", 3)
    train.windows(cfg, "val", 2)
    assert seen == [("train", 3, True, sum(cfg.sync.blocks)), ("val", 2, True, 0)]


def test_networks_without_the_prior_keep_their_shipped_weights():
    """prior=none keeps the keys made before the option existed: the shipped no-prior
    networks of the full and quick bench are still found; the prior ones under other keys."""
    from shared.config import apply_overrides, from_dict, to_dict
    from twscardio.bench import QUICK, arm_configs
    from twscardio.config import BenchConfig
    from twscardio.train import WEIGHTS_DIR, model_file

    quick = from_dict(BenchConfig, apply_overrides(to_dict(BenchConfig()),
                                                   [f"{k}={v}" for k, v in QUICK.items()]))
    for bc in (BenchConfig(), quick):
        for arm, cfg in arm_configs(bc).items():
            # trained before the per-beat-window term (loss.local_r_weight) and, for the full
            # bench, on 6144 x 10-s recordings (the quick setting's length is unchanged)
            old = model_file(replace(cfg, prior="none",
                                     loss=replace(cfg.loss, local_r_weight=0.0),
                                     n_subjects=6144 if bc is not quick else cfg.n_subjects,
                                     sim=replace(cfg.sim, duration_s=10.0)))
            assert old.parent == WEIGHTS_DIR, arm
            assert model_file(cfg).parent == WEIGHTS_DIR and model_file(cfg) != old


def test_get_model_attaches_the_timing_model_and_resume_keeps_sync():
    from shared.config import apply_overrides, from_dict, to_dict
    from twscardio.bench import QUICK, arm_configs
    from twscardio.config import BenchConfig
    from twscardio.train import RESUME_FREE, get_model, resume_free

    quick = from_dict(BenchConfig, apply_overrides(to_dict(BenchConfig()),
                                                   [f"{k}={v}" for k, v in QUICK.items()]))
    cfg = arm_configs(quick)["d"]
    m = get_model(cfg)  # the shipped quick weights
    assert m.stem.in_channels == N_FEATURES_PRIOR and m.timing is not None
    assert m.prior_sync == cfg.sync
    assert "sync" not in resume_free(cfg)
    assert resume_free(replace(cfg, prior="none")) == RESUME_FREE and "sync" in RESUME_FREE


def test_anchored_ao_switch_takes_the_network_scg_peak_near_each_prior_ao():
    """With `J_AO_TIGHTNESS`'s sibling `J_AO_ANCHOR_S` on, arm (d)'s AO are `anchored_ao` of
    its SCG at the prior's AO (one per fused J peak, as arm (e) places them); off, `ao_peaks`."""
    from twscardio.beats import anchored_ao

    cfg = TrainConfig()
    rec, timing = _rec(seed=6), _timing()
    net = build_model(N_FEATURES_PRIOR, NetConfig(channels=4, dilations=[1]))
    net.timing = timing
    off = process(rec, cfg, "d", net)
    e = process(rec, cfg, "e", timing)
    with pipeline.switched(J_AO_ANCHOR_S=0.1):
        on = process(rec, cfg, "d", net)
    assert np.array_equal(on["scg"], off["scg"])
    want = anchored_ao(on["scg"], on["prep"]["fs"], e["ao_s"], 0.1)
    assert e["ao_s"].size > 10 and np.array_equal(on["ao_s"], want)
    assert on["ao_s"].size <= e["ao_s"].size and not np.array_equal(on["ao_s"], off["ao_s"])
    # the pick is within 0.1 s; its template alignment moves it at most 0.04 s plus the offset
    # of the template's peak within its +-0.1 s (an untrained network's template is noise)
    near = np.abs(on["ao_s"][:, None] - e["ao_s"][None, :]).min(axis=1)
    assert near.max() <= 0.1 + 0.04 + 0.1 and np.median(near) < 0.1
