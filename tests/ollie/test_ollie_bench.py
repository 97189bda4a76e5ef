"""The bench's pieces on the tiny setting: every arm's rows, the alignment check, the summary's
checks and curves, and summarising the rows of a cut-short run."""

import json

import numpy as np
import pytest

import ollie.bench as bench
from shared.errors import ConfigError


@pytest.fixture(scope="module")
def rows():
    mp = pytest.MonkeyPatch()
    mp.setitem(bench.SETTINGS, "tiny", "configs/ollie/tiny.yaml")
    mp.setattr(bench, "ALIGN_STEPS", 256)
    mp.setattr(bench, "ALIGN_TRAIN", 50)
    out = []
    for arm in bench.ARMS:
        out += bench.run_job(("tiny", 0, arm, False, ["eval_episodes=1"]))
    yield out
    mp.undo()


def test_every_arm_gives_a_row(rows):
    assert sorted(r["arm"] for r in rows) == sorted(list(bench.ARMS) + ["ollie_no_align"])
    ollie = next(r for r in rows if r["arm"] == "ollie")
    no_align = next(r for r in rows if r["arm"] == "ollie_no_align")
    assert ollie["offline_score"] == no_align["offline_score"]  # the same π⁰
    assert ollie["online_curve"][0] == no_align["online_curve"][0]
    al = ollie["alignment"]
    assert -1 <= al["spearman_d0"] <= 1 and -1 <= al["spearman_random"] <= 1
    for r in rows:
        assert set(r["ood"]) == set(bench.PERTURBATIONS)


def test_summary_checks_and_plot(rows, tmp_path):
    rep = bench.summarise(rows, ["python", "-m", "ollie.bench"], quick=True)
    names = [c.name for c in rep.checks]
    assert any("alignment" in n for n in names) and any("AUC" in n for n in names)
    on = rep.extra["summary"]["tiny"]["online"]
    assert set(on) == {"ollie", "naive_gail", "ollie_no_align", "gail"}
    steps = np.array(on["ollie"]["steps"])
    assert bench.auc(steps, np.full(len(steps), 50.0)) == pytest.approx(50.0)
    assert bench.steps_to(steps, np.array([0, 95.0, 99.0])) == steps[1]
    assert bench.steps_to(steps, np.zeros(3)) is None
    rep.write(tmp_path)
    bench.plot(rows, rep, tmp_path / "curves.png")
    d = json.loads((tmp_path / "bench.json").read_text())
    assert d["checks"] and (tmp_path / "curves.png").stat().st_size > 1000


def test_cut_short_rows_keep_only_whole_seeds(rows):
    partial = rows + [{**rows[0], "seed": 1}]
    kept = bench.complete_groups(partial)
    assert {r["seed"] for r in kept} == {0} and len(kept) == len(rows)


def test_negative_first_seed_is_refused_before_any_output(tmp_path):
    with pytest.raises(ConfigError, match="--first-seed"):
        bench.main(["--quick", "--first-seed", "-1", "--out", str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()
