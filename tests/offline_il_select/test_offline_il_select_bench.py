"""The bench's summary: checks and ratios computed from measured rows (synthetic here)."""

import json

import pytest

from offline_il_select.bench import ARMS, _plot, summarise


def _rows(ilid=60.0, bce=30.0, dwbc=50.0):
    score = {"ilid": ilid, "bc_expert": bce, "bc_all": 5.0, "dwbc": dwbc, "iswbc": 20.0,
             "ilid_no_beta": ilid - 10, "ilid_k1": ilid - 5}
    rows = []
    for setting in ("a", "b"):
        for seed in range(2):
            for arm in ARMS:
                r = {"setting": setting, "seed": seed, "arm": arm, "score": score[arm] + seed,
                     "return": 0.0, "train_s": 1.0, "train_cpu_s": 2.0 if "ilid" in arm else 1.0,
                     "curve": [{"step": 10, "score": 1.0}, {"step": 20, "score": score[arm]}]}
                if "ilid" in arm:
                    r.update(n_selected=10, selection_quality=0.8)
                rows.append(r)
    return rows


def test_summary_checks_follow_the_rows(tmp_path):
    study = {"toy": {"K": [1, 20], "n_selected": [3, 9], "selection_quality": [0.9, 0.8],
                     "random_pick_quality": 0.5, "n_imperfect": 100}}
    rep = summarise(_rows(), study, quick=True, command=["x"])
    checks = {c.name.split(" (")[0]: c for c in rep.checks}
    assert checks["settings where ILID >= 1.5x BC-E and >= DWBC"].measured == 2
    assert checks["settings where ILID >= 1.5x BC-E and >= DWBC"].holds
    assert checks["ILID minus no-beta ablation, mean normalised score"].measured == 10
    ratio = checks["ILID training CPU time / BC-E training CPU time"]
    assert ratio.measured == 2.0 and not ratio.holds
    rep2 = summarise(_rows(ilid=40.0), study, quick=True, command=["x"])  # < 1.5x BC-E
    assert rep2.checks[0].measured == 0 and not rep2.checks[0].holds
    rep.write(tmp_path, plot_metrics=["score"])
    _plot(_rows(), study, tmp_path / "curves.png")
    d = json.loads((tmp_path / "bench.json").read_text())
    assert d["checks"] and d["headline"] and (tmp_path / "curves.png").stat().st_size > 0


def test_summary_times_gpu_runs_by_wall_clock():
    """Rows trained on CUDA: the runtime check uses synchronised wall time, not CPU time."""
    study = {"toy": {"K": [1], "n_selected": [3], "selection_quality": [0.9],
                     "random_pick_quality": 0.5, "n_imperfect": 100}}
    rows = [dict(r, device="cuda", train_s=1.2 if "ilid" in r["arm"] else 1.0) for r in _rows()]
    rep = summarise(rows, study, quick=True, command=["x"])
    (check,) = [c for c in rep.checks if "BC-E training" in c.name]
    assert "wall time on the GPU" in check.name and abs(check.measured - 1.2) < 1e-9
    assert check.holds
    assert rep.extra["ilid_over_bc_expert_gpu_wall"] == {"a": 1.2, "b": 1.2}
    mixed = rows[:-1] + [dict(rows[-1], device="cpu")]  # not all on a GPU: CPU time as before
    (check,) = [c for c in summarise(mixed, study, quick=True, command=["x"]).checks
                if "BC-E training" in c.name]
    assert "CPU time" in check.name and check.measured == 2.0


def test_summary_of_an_arm_subset():
    """--arms ilid,bc_expert: the win check drops DWBC, the ablation checks are left out."""
    study = {"toy": {"K": [1], "n_selected": [3], "selection_quality": [0.9],
                     "random_pick_quality": 0.5, "n_imperfect": 100}}
    rows = [r for r in _rows(dwbc=99.0) if r["arm"] in ("ilid", "bc_expert")]
    rep = summarise(rows, study, quick=True, command=["x"])
    names = [c.name for c in rep.checks]
    assert names[0] == "settings where ILID >= 1.5x BC-E (of 2)" and rep.checks[0].measured == 2
    assert not any("ablation" in n for n in names)
    assert {r["arm"] for r in rep.rows} == {"ilid", "bc_expert"}
    full = summarise(_rows(dwbc=99.0), study, quick=True, command=["x"])  # DWBC beats ILID
    assert full.checks[0].measured == 0


def test_budget_keeps_the_papers_discriminator_proportion():
    from offline_il_select.bench import budget

    full = budget(False, 30_000)
    assert "policy.steps=30000" in full and "ilid.disc_steps=3000" in full  # 1M : 100k
    assert "ilid.disc_steps=100" in budget(True)  # floor for the short quick budget


def test_bad_bench_flags_fail_before_any_output(tmp_path):
    import pytest

    from offline_il_select.bench import main
    from shared.errors import ConfigError

    for flags in (["--seed-list", "1,x"], ["--settings", "walker-random"], ["--steps", "-5"],
                  ["--arms", "ilid,gail"], ["--arms", "ilid,dwbc"]):
        with pytest.raises(ConfigError):
            main(flags + ["--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_diagnose_random_init_policy_and_bad_flags(tmp_path):
    import numpy as np
    import pytest

    from offline_il_select.experiments.diagnose import _RandomInitPolicy, main
    from shared.errors import ConfigError

    mean, std = _RandomInitPolicy(5, 2).mean_std(np.random.default_rng(0).normal(size=(3, 5)))
    assert mean.shape == (3, 2) and np.all(std == 1.0) and np.ptp(mean) > 0  # state-dependent
    for flags in (["--setting", "walker-random"], ["--set", "policy.steps=5"], ["--steps", "0"]):
        with pytest.raises(ConfigError):
            main(["prep"] + flags + ["--out", str(tmp_path / "d")])
    assert not (tmp_path / "d").exists()


@pytest.mark.gpu
def test_gpu_warm_up_runs_once_per_device():
    from offline_il_select import bench

    bench._WARM.discard("cuda")
    bench.warm_up("cuda")
    assert "cuda" in bench._WARM
    bench.warm_up("cpu")  # nothing to warm on a CPU
    assert "cpu" not in bench._WARM
