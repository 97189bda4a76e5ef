"""Ensembles of networks (`net.members`): the mean of the members, saved and loaded as one file,
cached member by member (member 0 is the single network, under its old key), trained and
resumed by `twscardio.train`, and run through the pipeline like one network."""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from shared.io import Checkpointer
from tests.twscardio.test_twscardio_cli import TINY
from twscardio import train
from twscardio.config import NetConfig, TrainConfig
from twscardio.models import BCG2SCGNet, NetEnsemble, build_model, load_model, save_model
from twscardio.pipeline import N_FEATURES_PRIOR
from twscardio.train import _model_key, model_file


def _randomise(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def test_ensemble_output_is_the_mean_of_its_members():
    cfg = NetConfig(channels=8, dilations=[1, 2], members=3)
    assert isinstance(build_model(17, replace(cfg, members=1)), BCG2SCGNet)
    ens = build_model(17, cfg)
    assert isinstance(ens, NetEnsemble) and len(ens.members) == 3
    _randomise(ens, 0)
    ens.eval()
    x = torch.randn(2, 17, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = sum(m(x) for m in ens.members) / 3  # one member at a time
        outs = [m(x) for m in ens.members]
        assert not torch.allclose(outs[0], outs[1])  # the mean is not of equal members
        assert torch.allclose(ens(x), ref, atol=1e-6)
    assert ens.stem.in_channels == 17
    with pytest.raises(ValueError, match="at least one"):
        NetEnsemble([])


def test_ensemble_saves_and_loads_as_one_file(tmp_path):
    cfg = NetConfig(channels=8, dilations=[1], members=2)
    ens = build_model(17, cfg)
    _randomise(ens, 3)
    save_model(ens, cfg, tmp_path / "m.safetensors", {"hist": {"note": 1}})
    back, info = load_model(tmp_path / "m.safetensors")
    assert isinstance(back, NetEnsemble) and len(back.members) == 2 and info["hist"]["note"] == 1
    x = torch.randn(1, 17, 40)
    with torch.no_grad():
        assert torch.equal(back(x), ens.eval()(x))
    # a file of one network is still one network
    one = build_model(17, replace(cfg, members=1))
    save_model(one, replace(cfg, members=1), tmp_path / "one.safetensors")
    assert isinstance(load_model(tmp_path / "one.safetensors")[0], BCG2SCGNet)


def test_members_are_cached_apart_and_member_0_keeps_the_single_networks_key():
    from twscardio.bench import arm_configs
    from twscardio.config import BenchConfig
    from twscardio.train import WEIGHTS_DIR

    base = TrainConfig()
    assert "members" not in _model_key(base)["net"]  # keys made before the option hold
    c4 = replace(base, net=replace(base.net, members=4))
    keys = [_model_key(c4, k) for k in range(4)]
    assert keys[0] == _model_key(base)
    assert all("members" not in k["net"] for k in keys)
    assert len({repr(sorted(k.items())) for k in keys}) == 4
    d = arm_configs(BenchConfig())["d"]
    d4 = replace(d, net=replace(d.net, members=4))
    assert model_file(d4) == model_file(d) and model_file(d).parent == WEIGHTS_DIR


def test_train_trains_each_member_and_resumes(tmp_path, caplog):
    import logging

    single, ens = tmp_path / "one", tmp_path / "two"
    assert train.main(["--out", str(single), *TINY]) == 0
    assert train.main(["--out", str(ens), *TINY, "--set", "net.members=2"]) == 0
    assert (ens / "ckpt.pt").is_file() and (ens / "ckpt_member1.pt").is_file()
    one, _ = load_model(single / "model.safetensors")
    two, _ = load_model(ens / "model.safetensors")
    assert isinstance(two, NetEnsemble) and len(two.members) == 2
    s0, s1, s = (m.state_dict() for m in (two.members[0], two.members[1], one))
    assert all(torch.equal(s0[k], s[k]) for k in s)  # member 0 = the single network
    assert not all(torch.equal(s0[k], s1[k]) for k in s)  # member 1 has its own draws
    # an interrupted second member resumes from its own checkpoint
    ck = Checkpointer(ens, "ckpt_member1")
    state = ck.load()
    state["step"], state["hist"]["loss"] = 2, state["hist"]["loss"][:2]
    torch.save(state, ck.path)
    caplog.set_level(logging.INFO)
    assert train.main(["--out", str(ens), *TINY, "--set", "net.members=2"]) == 0
    assert caplog.text.count("resumed from step") == 2  # member 0 done, member 1 at step 2
    again, _ = load_model(ens / "model.safetensors")
    x = torch.randn(1, two.stem.in_channels, 50)
    with torch.no_grad():
        assert torch.allclose(again(x), two(x), atol=1e-6)


def test_an_ensemble_of_copies_runs_the_pipeline_as_its_network():
    """Through `pipeline.process` (prior channel, windows, overlap-add), an ensemble of
    identical members gives the single network's SCG."""
    from shared.config import apply_overrides, from_dict, to_dict
    from twscardio.bench import QUICK, arm_configs
    from twscardio.config import BenchConfig
    from twscardio.data import subject_recording, subject_seed
    from twscardio.pipeline import process
    from twscardio.train import get_model

    quick = from_dict(BenchConfig, apply_overrides(to_dict(BenchConfig()),
                                                   [f"{k}={v}" for k, v in QUICK.items()]))
    cfg = arm_configs(quick)["d"]
    net = get_model(cfg)  # the shipped quick weights
    ens = NetEnsemble([copy.deepcopy(net), copy.deepcopy(net)])
    ens.timing, ens.prior_sync = net.timing, net.prior_sync
    assert ens.stem.in_channels == N_FEATURES_PRIOR
    sc = replace(cfg.sim, duration_s=20.0)
    rec = subject_recording(sc, subject_seed("val", 0, cfg.seed), randomised=True)
    run_cfg = replace(cfg, sim=sc)
    a, b = process(rec, run_cfg, "d", net)["scg"], process(rec, run_cfg, "d", ens)["scg"]
    assert np.abs(a).max() > 0 and np.allclose(a, b, atol=1e-5)


def test_members_draw_their_own_crops(tmp_path, monkeypatch):
    """Member k's crop generator is seeded seed + MEMBER_SEED_STRIDE * k (its initialisation
    too: `test_train_trains_each_member_and_resumes`)."""
    from twscardio.train import MEMBER_SEED_STRIDE

    seeds = []
    real = np.random.default_rng

    def spy(seed=None):
        seeds.append(seed)
        return real(seed)

    monkeypatch.setattr(train.np.random, "default_rng", spy)
    assert train.main(["--out", str(tmp_path / "r"), *TINY, "--set", "net.members=3"]) == 0
    base = TrainConfig().seed
    assert {base, base + MEMBER_SEED_STRIDE, base + 2 * MEMBER_SEED_STRIDE} <= set(seeds)


def test_get_model_assembles_the_cached_members(tmp_path, monkeypatch):
    """`get_model` with net.members 2 trains each member into the cache under its own key, the
    first equal to the single network's, and averages them; its history carries no loss
    curves per member and the ensemble's own validation figures."""
    from twscardio.train import get_model, model_files

    monkeypatch.setenv("PAPERBENCH_CACHE", str(tmp_path / "cache"))
    base = TrainConfig()
    cfg = replace(base, steps=3, n_subjects=1, sim=replace(base.sim, duration_s=10.0),
                  window_s=5.0, net=replace(base.net, channels=8))
    two = replace(cfg, net=replace(cfg.net, members=2))
    ens, one = get_model(two), get_model(cfg)
    assert isinstance(ens, NetEnsemble) and len(ens.members) == 2
    files = model_files(two)
    assert files[0] == model_file(cfg) and files[1] != files[0] and files[1].is_file()
    s0, s1, s = (m.state_dict() for m in (*ens.members, one))  # `one` carries its timing model
    assert all(torch.equal(s0[k], s[k]) for k in s0)
    assert not all(torch.equal(s1[k], s[k]) for k in s0)
    assert "loss" not in ens.hist["members"][0] and "window_r_median" in ens.hist["val"]
    assert not ens.training  # evaluated for its history, returned in eval mode
