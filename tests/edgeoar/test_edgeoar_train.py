"""Training schedules on the toy streams: the iterative schedule learns (above chance from the
first frames for the colour classes, and for the motion classes once they move), checkpoints
resume where they stopped, and the ablation schedules train what they claim to."""

import dataclasses

import numpy as np
import pytest
import torch
from edgeoar_toy import TOY_CLASSES, toy_split

from edgeoar.config import ModelConfig, StreamConfig, TrainConfig
from edgeoar.train import (
    _freeze,
    accuracy_per_step,
    gate_target,
    phases,
    predict,
    train_model,
)
from shared.errors import ConfigError

CFG = TrainConfig(stream=StreamConfig(image_size=32, clip_frames=8),
                  model=ModelConfig(width=12, feat_dim=32), rounds=2, main_epochs=4,
                  gate_epochs=1, batch_size=12, lr=5e-3, augment=False)


@pytest.fixture(scope="module")
def splits():
    return toy_split(10, 0), toy_split(4, 1), TOY_CLASSES


def test_iterative_training_learns_the_toy(splits):
    model, hist = train_model(CFG, splits=splits)
    acc = np.array(hist["val_acc_per_step"])
    assert acc[-1] >= 0.6 and acc[-1] > 2 / len(TOY_CLASSES)
    assert hist["phase"] == phases(CFG)
    va = splits[1]
    pred = predict(model, va)
    colour = va["label"] >= 4
    p = 0.5 * (torch.tensor(pred["rgb"]).softmax(-1) + torch.tensor(pred["motion"]).softmax(-1))
    assert (p[colour, 0].argmax(-1).numpy() == va["label"][colour]).mean() >= 0.5


def test_the_validation_split_never_moves_the_weights(splits):
    """Validation is read only after the last epoch (the per-step accuracy of the history):
    a larger or other validation split trains the same weights, so enlarging it for the
    operating point leaves the models as they were."""
    short = dataclasses.replace(CFG, rounds=1, main_epochs=2, gate_epochs=1)
    tr, va, names = splits
    m1, h1 = train_model(short, splits=(tr, va, names))
    m2, h2 = train_model(short, splits=(tr, toy_split(9, 7), names))
    assert h1["loss"] == h2["loss"]
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k


def test_resume_continues_after_the_last_epoch(splits, tmp_path):
    short = dataclasses.replace(CFG, rounds=1, main_epochs=2, gate_epochs=1)
    m1, h1 = train_model(short, tmp_path, splits=splits)
    assert (tmp_path / "ckpt.pt").is_file() and len(h1["loss"]) == 3
    longer = dataclasses.replace(short, rounds=2)
    m2, h2 = train_model(longer, tmp_path, splits=splits)
    assert h2["loss"][:3] == h1["loss"] and len(h2["loss"]) == 6
    # more rounds resume; a changed rate, or more rounds under cosine decay, do not
    for changed, key in ((dataclasses.replace(longer, lr=1e-2), "lr="),
                         (dataclasses.replace(longer, rounds=3, lr_decay="cosine"), "lr_decay")):
        with pytest.raises(ConfigError, match=key):
            train_model(changed, tmp_path, splits=splits)


def test_schedules_and_frozen_parts():
    assert phases(CFG) == ["main"] * 4 + ["gate"] + ["main"] * 4 + ["gate"]
    assert phases(dataclasses.replace(CFG, mode="joint")) == ["joint"] * 10
    assert phases(dataclasses.replace(CFG, mode="full_clip")) == ["full"] * 8 + ["heads"] * 2
    from edgeoar.models import build_model

    m = build_model(CFG.model, 6, 8, 32, 4)
    gate_params = {id(p) for p in m.gate.parameters()}
    assert {id(p) for p in _freeze(m, "gate")} == gate_params
    assert all(not p.requires_grad for p in m.rgb.parameters())
    heads = {id(p) for p in _freeze(m, "heads")}
    assert heads == gate_params | {id(p) for p in m.heads.parameters()}


def test_gate_target_right_and_stays_right():
    y = torch.tensor([0])
    lg = torch.tensor([[[0.0, 1.0], [2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [3.0, 0.0]]])
    t = gate_target({"rgb": lg, "motion": lg}, y)
    assert t.tolist() == [[0.0, 0.0, 0.0, 1.0, 1.0]]


def test_accuracy_per_step_reference():
    lg = np.zeros((2, 3, 2))
    lg[0, :, 0] = 1
    lg[1, 1:, 1] = 1
    assert accuracy_per_step({"rgb": lg, "motion": lg}, np.array([0, 1])).tolist() == \
        [0.5, 1.0, 1.0]


def test_optimiser_param_groups_carry_the_branch_rates():
    from edgeoar.models import build_model
    from edgeoar.train import param_groups

    cfg = dataclasses.replace(CFG, lr=5e-3, lr_rgb=1e-3, lr_motion=4e-3)
    m = build_model(cfg.model, 6, 8, 32, 4)
    ids = {b: {id(p) for mod in (getattr(m, b), m.heads[b]) for p in mod.parameters()}
           for b in ("rgb", "motion")}
    for phase, names in (("main", ["rgb", "motion"]), ("joint", ["rgb", "motion", "other"]),
                         ("gate", ["other"]), ("heads", ["rgb", "motion", "other"])):
        params = _freeze(m, phase)
        opt = torch.optim.AdamW(param_groups(m, params, cfg), lr=cfg.lr)
        assert [g["name"] for g in opt.param_groups] == names
        want = {"rgb": 1e-3, "motion": 4e-3, "other": 5e-3}
        for g in opt.param_groups:
            assert g["lr"] == want[g["name"]]
            got = {id(p) for p in g["params"]}
            if g["name"] in ids:
                assert got <= ids[g["name"]]
            else:  # the gate: neither branch
                assert not got & (ids["rgb"] | ids["motion"])
        assert sum(len(g["params"]) for g in opt.param_groups) == len(params)
    # unset branch rates fall back to the shared rate
    groups = param_groups(m, _freeze(m, "joint"), dataclasses.replace(cfg, lr_rgb=None,
                                                                        lr_motion=None))
    assert {g["lr"] for g in groups} == {5e-3}


def test_branch_rates_in_the_config_are_validated(tmp_path):
    from shared.config import load_config
    from shared.errors import ConfigError

    f = tmp_path / "c.yaml"
    f.write_text("lr: 0.006\nlr_rgb: 0.002\n")
    cfg = load_config(f, TrainConfig)
    assert (cfg.branch_lr("rgb"), cfg.branch_lr("motion"), cfg.branch_lr("other")) == \
        (0.002, 0.006, 0.006)
    for bad in ("lr_rgb: -0.001", "lr_motion: 0", "lr_rgb: 2.0", "lr_rgb: fast"):
        f.write_text(bad + "\n")
        with pytest.raises(ConfigError, match=bad.split(":")[0]):
            load_config(f, TrainConfig)


def test_a_lower_rgb_rate_moves_only_the_rgb_branch(splits):
    """One main epoch with lr_rgb far below lr_motion: the RGB weights move ~that much less."""
    from edgeoar.models import build_model

    base = dataclasses.replace(CFG, rounds=1, main_epochs=1, gate_epochs=1)
    moved = {}
    for lr_rgb in (5e-3, 5e-5):
        torch.manual_seed(0)
        m0 = build_model(base.model, 6, 8, 32, 4)
        m, _ = train_model(dataclasses.replace(base, lr_rgb=lr_rgb), splits=splits)
        d = {b: sum(float((p.detach() - p0.detach()).abs().sum()) for p, p0 in
                    zip(getattr(m, b).parameters(), getattr(m0, b).parameters()))
             for b in ("rgb", "motion")}
        moved[lr_rgb] = d
    assert moved[5e-5]["rgb"] < 0.05 * moved[5e-3]["rgb"]
    assert moved[5e-5]["motion"] > 0.5 * moved[5e-3]["motion"]


def test_distill_loss_matches_a_per_step_kl_loop():
    from edgeoar.train import _prefix_weights, distill_loss

    g = torch.Generator().manual_seed(0)
    out = {m: torch.randn(3, 5, 4, generator=g) for m in ("rgb", "motion")}
    w = _prefix_weights(5, 1.0)
    ref = 0.0
    for m in ("rgb", "motion"):
        q = out[m][:, -1].softmax(-1)
        for b in range(3):
            for t in range(5):
                p = out[m][b, t].softmax(-1)
                ref += float(w[t]) * float((q[b] * (q[b] / p).log()).sum()) / 3
    assert float(distill_loss(out, w)) == pytest.approx(ref, rel=1e-5)
    # steps that already predict the teacher cost nothing; the teacher (the last step, detached)
    # pulls the earlier steps only
    flat = {m: torch.randn(3, 1, 4, generator=g).expand(3, 5, 4) for m in ("rgb", "motion")}
    assert float(distill_loss(flat, w)) == pytest.approx(0.0, abs=1e-6)
    lg = torch.randn(2, 3, 4, requires_grad=True)
    distill_loss({"rgb": lg, "motion": torch.zeros(2, 3, 4)}, _prefix_weights(3, 0.0)).backward()
    assert lg.grad[:, -1].abs().max() < 1e-6 < lg.grad[:, 0].abs().max()


def test_distill_enters_every_f_main_objective_but_the_full_clip_one(splits):
    """`distill` adds to the prefix-weighted f_Main loss (main, joint, heads); the full-clip
    phase weighs the last step only, where the teacher is the student (KL 0)."""
    for mode, first in (("iterative", "main"), ("joint", "joint"), ("full_clip", "full")):
        short = dataclasses.replace(CFG, mode=mode, rounds=1, main_epochs=1, gate_epochs=1)
        h0 = train_model(short, splits=splits)[1]
        h1 = train_model(dataclasses.replace(short, distill=1.0), splits=splits)[1]
        assert h0["phase"][0] == first
        if mode == "full_clip":
            assert h1["loss"][0] == pytest.approx(h0["loss"][0], rel=1e-6)
        else:
            assert h1["loss"][0] > h0["loss"][0]


def test_cosine_lr_factor_against_the_closed_form():
    """Each phase decays over its own epochs (rounds share one decay): the k-th of n epochs of
    a phase at 0.5 (1 + cos(pi (k + 0.5) / n)), strictly falling, averaging 1/2; 'none' is 1."""
    from edgeoar.train import lr_factor

    for mode in ("iterative", "full_clip", "joint"):
        sched = phases(dataclasses.replace(CFG, mode=mode, rounds=3, main_epochs=5))
        assert all(lr_factor(sched, e, "none") == 1.0 for e in range(len(sched)))
        for ph in set(sched):
            idx = [e for e, p in enumerate(sched) if p == ph]
            f = np.array([lr_factor(sched, e, "cosine") for e in idx])
            n = len(idx)
            assert np.allclose(f, 0.5 * (1 + np.cos(np.pi * (np.arange(n) + 0.5) / n)))
            assert np.all(np.diff(f) < 0) and f.mean() == pytest.approx(0.5)
    # the full-clip ablation's heads get their own decay, not the tail of the backbone's
    sched = phases(dataclasses.replace(CFG, mode="full_clip", rounds=3, main_epochs=5))
    assert lr_factor(sched, sched.index("heads"), "cosine") > 0.9


def test_cosine_decay_reaches_the_optimisers(splits, tmp_path):
    """The rates the optimisers last used (saved in the checkpoint) are each branch's rate x
    the factor of that phase's last epoch; without decay the rates are the configured ones."""
    from edgeoar.train import lr_factor
    from shared.io import Checkpointer

    for decay in ("none", "cosine"):
        cfg = dataclasses.replace(CFG, rounds=1, main_epochs=2, gate_epochs=1, lr_rgb=1e-3,
                                  lr_decay=decay)
        train_model(cfg, tmp_path / decay, splits=splits)
        opts = Checkpointer(tmp_path / decay).load()["opts"]
        sched = phases(cfg)
        for ph, sd in opts.items():
            last = max(e for e, p in enumerate(sched) if p == ph)
            for g in sd["param_groups"]:
                want = cfg.branch_lr(g["name"]) * lr_factor(sched, last, decay)
                assert g["lr"] == pytest.approx(want, rel=1e-12)
        if decay == "none":
            assert {g["lr"] for g in opts["main"]["param_groups"]} == {1e-3, 5e-3}


def test_model_cache_key_keeps_the_models_trained_without_decay():
    from edgeoar.train import _model_key

    assert "lr_decay" not in _model_key(CFG)
    assert _model_key(dataclasses.replace(CFG, lr_decay="cosine"))["lr_decay"] == "cosine"
