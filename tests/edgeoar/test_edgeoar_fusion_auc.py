"""The fusion-AUC probe: each fusion against a per-clip loop, the exit AUC against a
hand-built case, and the MC-gated variant never exiting where MC is below its threshold."""

import numpy as np
import pytest

from edgeoar.exits import auc
from edgeoar.experiments import fusion_auc as fa


def _logits(seed=0, n=6, t=4, k=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, t, k)) * 2, rng.normal(size=(n, t, k)) * 2


def test_fusions_match_a_per_clip_loop():
    r, m = _logits()
    f = fa.fusions(r, m)
    for i in range(r.shape[0]):
        for t in range(r.shape[1]):
            pr = np.exp(r[i, t]) / np.exp(r[i, t]).sum()
            pm = np.exp(m[i, t]) / np.exp(m[i, t]).sum()
            hr, hm = -(pr * np.log(pr)).sum(), -(pm * np.log(pm)).sum()
            wr, wm = (1 / hr) / (1 / hr + 1 / hm), (1 / hm) / (1 / hr + 1 / hm)
            geo = pr ** wr * pm ** wm
            prod = pr * pm
            np.testing.assert_allclose(f["mean"][i, t], (pr + pm) / 2, atol=1e-12)
            np.testing.assert_allclose(f["iie"][i, t], wr * pr + wm * pm, atol=1e-12)
            np.testing.assert_allclose(f["iie_geometric"][i, t], geo / geo.sum(), atol=1e-12)
            np.testing.assert_allclose(f["product"][i, t], prod / prod.sum(), atol=1e-12)
            np.testing.assert_allclose(f["motion"][i, t], pm, atol=1e-12)


def test_exit_auc_on_a_hand_built_case():
    # two clips, two steps, two classes: clip 0 confident and right at step 0; clip 1 unsure
    # and wrong at step 0, right at step 1
    probs = np.array([[[0.9, 0.1], [0.9, 0.1]], [[0.4, 0.6], [0.8, 0.2]]])
    labels = np.array([0, 0])
    conf = probs.max(-1)
    # tau 0.5: both exit at step 0 (frac 0.5, acc 0.5); tau 0.85: clip 0 at 0, clip 1 at the
    # end (frac 0.75, acc 1); tau 0.95: both at the end (frac 1, acc 1)
    got = fa.exit_auc(conf, probs, labels, [0.5, 0.85, 0.95])
    assert got == pytest.approx(auc(np.array([(0.5, 0.5), (0.75, 1.0), (1.0, 1.0)]), 2))
    assert 0.0 < got < 1.0


def test_mc_gate_never_exits_where_the_modalities_disagree():
    r, m = _logits(1, n=40, t=5, k=4)
    m[:, :-1] = -r[:, :-1]  # opposite opinions until the last step
    out = fa.fusion_aucs(r, m, np.zeros(40, int), conf_grid=11, mc_grid=[0.0, 0.99])
    assert set(out) == {"mean", "iie", "iie_geometric", "product", "motion", "iie_mc_0.99"}
    # with MC >= 0.99 required, nothing exits before the last step: every threshold reads the
    # full clip, a flat curve over fractions up to 1
    full_acc = float((fa.fusions(r, m)["iie"][:, -1].argmax(-1) == 0).mean())
    assert out["iie_mc_0.99"] == pytest.approx(0.0 if full_acc == 0 else
                                               auc(np.array([(1.0, full_acc)]), 5))


def test_duplicate_seeds_are_one_line_errors_before_any_output(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        fa.run(fa.main, ["--quick", "--seeds", "0", "0", "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and not (tmp_path / "o").exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
