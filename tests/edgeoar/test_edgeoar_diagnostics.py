"""The exit-diagnostics experiment end to end on the toy streams with a small untrained model
(the bench's cached model and streams swapped for toy ones): it writes its JSON, the oracle
floor matches `oracle_exits` and the per-step accuracies match a direct count."""

import json

import numpy as np
from edgeoar_toy import TOY_CLASSES, toy_split

from edgeoar.config import ModelConfig
from edgeoar.experiments import exit_diagnostics as diag
from edgeoar.models import build_model


def test_exit_diagnostics_on_the_toy(monkeypatch, tmp_path):
    splits = {"val": toy_split(3, 1), "test": toy_split(3, 2)}
    model = build_model(ModelConfig(width=8, feat_dim=16), len(TOY_CLASSES), 8, 32, 4).eval()
    monkeypatch.setattr(diag, "get_model", lambda cfg: (model, {}))
    monkeypatch.setattr(diag, "load_split", lambda cfg, s: splits[s])
    monkeypatch.setattr(diag, "class_names", lambda sc: list(TOY_CLASSES))
    assert diag.main(["--set", "train.stream.clip_frames=8", "--out", str(tmp_path)]) == 0
    out = json.loads(next(tmp_path.rglob("exit_diagnostics.json")).read_text())
    pred = diag.predict(model, splits["test"])
    s = diag.step_scores(pred["rgb"], pred["motion"], pred["gate"])
    y = splits["test"]["label"]
    assert out["test"]["oracle_frac"] == np.mean(diag.oracle_exits(s["p_iie"], y) + 1) / 8
    full = (s["p_iie"][:, -1].argmax(-1) == y).mean()
    assert out["test"]["floor_frac"] == diag.frame_floor(s["p_iie"], y, full - 0.02) / 8
    assert out["test"]["floor_frac"] <= out["test"]["oracle_frac"]
    assert np.allclose(out["test"]["acc_motion"], (s["p_mot"].argmax(-1) == y[:, None]).mean(0),
                       atol=1e-3)
    for arm in ("raw", "calibrated"):
        assert out[arm]["full_clip"]["frac"] == 1.0 and 0 < out[arm]["iie"]["frac"] <= 1
    assert len(out["temperatures"]["rgb"]) == 8
    ex = diag.oracle_exits(s["p_iie"], y) + 1
    assert out["test"]["oracle_frames_per_class"][TOY_CLASSES[0]] == ex[y == 0].mean()
    assert set(out["selection_bias"]) == {"iie", "iie_mc"}
    assert 0 < out["selection_bias"]["iie_mc"]["frac_B"] <= 1
    assert set(out["mc_signal"]) == {"tau", "val", "test"}
    for r in out["mc_at_equal_frames"]:  # IIE alone is matched on validation frames
        assert 0 < r["mc"]["frac"] <= 1 and 0 <= r["iie_tau_conf"] <= 1


def test_lr_sweep_reads_validation_only(monkeypatch, tmp_path):
    """The sweep trains (here: fakes) one model per setting, with the overrides applied, and
    reads only the validation split; its figures match a direct count."""
    from edgeoar.experiments import lr_sweep

    val = toy_split(3, 1)
    seen, splits_read = [], []
    model = build_model(ModelConfig(width=8, feat_dim=16), len(TOY_CLASSES), 8, 32, 4).eval()

    def fake_model(cfg):
        seen.append((cfg.lr_rgb, cfg.lr_motion))
        return model, {}

    def fake_split(cfg, s):
        splits_read.append(s)
        return val

    monkeypatch.setattr(lr_sweep, "get_model", fake_model)
    monkeypatch.setattr(lr_sweep, "load_split", fake_split)
    assert lr_sweep.main(["--set", "train.stream.clip_frames=8", "--out", str(tmp_path),
                          "--try", "train.lr_rgb=0.001", "--try",
                          "train.lr_rgb=0.002&train.lr_motion=0.004"]) == 0
    assert seen == [(0.001, 0.003), (0.002, 0.004)] and set(splits_read) == {"val"}
    rows = json.loads(next(tmp_path.rglob("sweep.json")).read_text())
    pred = diag.predict(model, val)
    s = diag.step_scores(pred["rgb"], pred["motion"], pred["gate"])
    ok = s["p_mot"].argmax(-1) == val["label"][:, None]
    assert rows[0]["acc_motion"] == {str(t): round(float(ok[:, t - 1].mean()), 3)
                                     for t in (1, 4, 8)}
    assert rows[0]["floor_frac"] <= rows[0]["oracle_frac"] <= 1


def test_onset_frame_and_prefix_end_against_hand_cases():
    from edgeoar.experiments.onset_floor import onset_frame, prefix_end_frame

    j = np.zeros((6, 3, 3))
    j[3:, 1, 0] = [0.03, 0.05, 0.2]  # joint 1 drifts 3 cm, then 5 cm, then 20 cm
    j[:, :, 1] += 7.0  # a common offset is no motion
    assert onset_frame(j, 0.04) == 5 and onset_frame(j, 0.1) == 6
    assert onset_frame(j, 0.5) == 7  # never: T + 1
    assert prefix_end_frame(np.array([-1, 0.0, 0.05, 0.1, 0.12, 0.3]), 0.1) == 5
    assert prefix_end_frame(np.array([-1, 0.0, 0.05]), 0.1) == 4


def test_onset_floor_runs_on_a_small_split(tmp_path):
    from edgeoar.experiments import onset_floor

    assert onset_floor.main(["--set", "train.stream.val_per_class=1",
                             "--set", "train.stream.actions=[arm_circle_cw,arm_circle_ccw,squat]",
                             "--set", "train.stream.image_size=32", "--out", str(tmp_path)]) == 0
    out = json.loads(next(tmp_path.rglob("onset_floor.json")).read_text())
    assert out["prefix_phase"]["arm_circle_cw"] > 0.05 and out["prefix_phase"]["squat"] == 0.0
    for thr in ("0.04", "0.08"):
        f = [out["per_class"][a][thr] for a in out["per_class"]]
        assert all(2 <= x <= 16 for x in f)
        assert out[f"floor_frac@{thr}"] == np.mean(f) / 16
    assert out["per_class"]["squat"]["0.08"] >= out["per_class"]["squat"]["0.04"]
    # untrimmed, the onset of a class outside the pairs is the frames cut + 2 (the clip starts
    # one frame before the first moved one); trimming never moves a floor later
    assert out["untrimmed"]["per_class"]["squat"]["0.04"] == out["cut"]["squat"] + 2
    for thr in ("0.04", "0.08"):
        for a in out["per_class"]:
            assert out["per_class"][a][thr] <= out["untrimmed"]["per_class"][a][thr]


def test_selection_bias_on_scores_with_a_known_best_threshold():
    """Step 1 is moderately confident and wrong, every later step confident and right: on
    any half the rule must skip step 1 and exit at step 2, so both halves lose nothing and
    see 2 of T frames."""
    from edgeoar.exits import step_scores

    n, t, k = 24, 6, 3
    y = np.arange(n) % k
    logits = np.zeros((n, t, k))
    logits[np.arange(n), 0, (y + 1) % k] = 1.0  # softmax ~0.58 on a wrong class
    logits[np.arange(n), 1:, :] = 0.0
    logits[np.arange(n)[:, None], np.arange(1, t)[None], y[:, None]] = 8.0  # ~0.999 right
    s = step_scores(logits, logits, np.zeros((n, t)))
    out = diag.selection_bias(s, y, t, 0.02, 41, [0.0, 0.5], reps=5)
    for name in ("iie", "iie_mc"):
        r = out[name]
        assert r["drop_A"] == r["drop_B"] == 0.0 and r["share_B_over_tolerance"] == 0.0
        assert r["frac_A"] == r["frac_B"] == 2 / t


def test_auroc_matches_pairwise_counting():
    """`auroc` against the definition: over every (positive, negative) pair, 1 when the
    positive scores higher, 1/2 on a tie."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.integers(0, 5, 40).astype(float)  # many ties
        pos = rng.random(40) < 0.4
        ref = np.mean([1.0 if a > b else 0.5 if a == b else 0.0
                       for a in s[pos] for b in s[~pos]])
        assert abs(diag.auroc(s, pos) - ref) < 1e-12
    assert diag.auroc(np.arange(4.0), np.array([0, 0, 1, 1], bool)) == 1.0
    assert np.isnan(diag.auroc(np.arange(3.0), np.ones(3, bool)))


def test_mc_signal_at_tau_mc_zero_is_iie_alone():
    """MC >= 0 always holds, so the IIE + MC curve at tau_mc = 0 is IIE's: the same AUC as
    the bench's IIE row; the per-step AUROCs are `auroc` of the confidence and of MC."""
    d = toy_split(3, 1)
    model = build_model(ModelConfig(width=8, feat_dim=16), len(TOY_CLASSES), 8, 32, 4).eval()
    pred = diag.predict(model, d)
    s, y = diag.step_scores(pred["rgb"], pred["motion"], pred["gate"]), d["label"]
    out = diag.mc_signal(s, y, 8, 11, [0.5, 0.9], 0.3)
    ref = diag.compare_policies(s, y, {"t": (s, y)}, 0.02, 11, [0.5], policies=("iie",))
    assert abs(out["auc_by_tau_mc"]["0.0"] - ref["iie"]["t"]["auc"]) < 1e-12
    assert set(out["auc_by_tau_mc"]) == {"0.0", "0.5", "0.9"}
    right = s["p_iie"][:, 3].argmax(-1) == y
    assert out["auroc_mc"][3] == round(diag.auroc(s["mc"][:, 3], right), 3)
    assert len(out["auroc_conf"]) == 8
