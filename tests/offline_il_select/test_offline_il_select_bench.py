"""The bench's summary: checks and ratios computed from measured rows (synthetic here)."""

import json

import pytest

from offline_il_select.bench import _plot, summarise

SCORED = ("halfcheetah-random+1expert", "halfcheetah-random+10expert")
HOPPER = "hopper-random+1expert"  # BC-E above 80 here: reported, not scored
RANDOM_ONLY = "halfcheetah-random"


def _rows(ilid=60.0, bce=30.0, dwbc=50.0, settings=SCORED + (HOPPER, RANDOM_ONLY)):
    score = {"ilid": ilid, "bc_expert": bce, "bc_all": 5.0, "dwbc": dwbc, "iswbc": 20.0,
             "ilid_no_beta": ilid - 10, "ilid_alpha_unclipped": ilid - 2, "ilid_k1": ilid - 5}
    rows = []
    for setting in settings:
        for seed in range(2):
            for arm in score:
                sc = score[arm] + seed + (70.0 if setting == HOPPER and arm == "bc_expert" else 0)
                r = {"setting": setting, "seed": seed, "arm": arm, "score": sc,
                     "score_d4rl": sc / 2, "return": 0.0, "train_s": 1.0,
                     "train_cpu_s": 2.0 if "ilid" in arm else 1.0,
                     "curve": [{"step": 10, "score": 1.0}, {"step": 20, "score": sc}]}
                if "ilid" in arm:
                    r.update(n_selected=10, selection_quality=0.8, beta_mean=0.5,
                             n_selected_expert=4, beta_mean_selected_expert=0.0)
                rows.append(r)
    return rows


STUDY = {"toy": {"K": [1, 20], "n_selected": [3, 9], "selection_quality": [0.9, 0.8],
                 "random_pick_quality": 0.5, "n_imperfect": 100}}


def test_summary_checks_follow_the_rows(tmp_path):
    rep = summarise(_rows(), STUDY, quick=True, command=["x"])
    assert rep.extra["status"] == {SCORED[0]: "scored", SCORED[1]: "scored",
                                   HOPPER: "precondition not met", RANDOM_ONLY: "random only"}
    checks = {c.name.split(" (")[0]: c for c in rep.checks}
    n_scored = checks["settings with expert trajectories in D_b where BC-E <= 80"]
    assert n_scored.measured == 2 and n_scored.holds  # quick: both HalfCheetah settings
    beats = checks["scored settings where ILID >= BC-E, DWBC, ISW-BC"]
    assert beats.measured == 2 and beats.target == ">= 2" and beats.holds
    big = checks["scored settings where ILID >= 1.3x BC-E"]
    assert big.measured == 2 and big.target == ">= 1" and big.holds  # 60.5 / 30.5
    beta = checks["ILID minus ILID without beta, mean over settings with experts in D_b"]
    assert beta.measured == 10 and beta.holds  # HalfCheetah x2 and Hopper; not random-only
    ratio = checks["ILID training CPU time / BC-E training CPU time"]
    assert ratio.measured == 2.0 and not ratio.holds
    abl = rep.extra["ablation"][SCORED[0]]
    assert abl["ilid_alpha_unclipped"]["ilid_minus"] == 2 and abl["ilid_k1"]["ilid_minus"] == 5
    row = next(r for r in rep.rows if r["arm"] == "ilid" and r["setting"] == SCORED[0])
    assert row["score"] == 60.5 and row["score_d4rl"] == 30.25 and row["score_std"] == 0.5
    rep.write(tmp_path, plot_metrics=["score"])
    _plot(_rows(), STUDY, tmp_path / "curves.png")
    d = json.loads((tmp_path / "bench.json").read_text())
    assert d["checks"] and d["headline"] and (tmp_path / "curves.png").stat().st_size > 0
    assert "4 scored settings" not in d["headline"][0]["measured"]
    assert "2 scored settings" in d["headline"][0]["measured"]


def test_summary_when_ilid_loses_or_nothing_is_scored():
    rep = summarise(_rows(ilid=35.0), STUDY, quick=False, command=["x"])  # < 1.3x, > BC-E
    checks = {c.name.split(" (")[0]: c for c in rep.checks}
    assert not checks["settings with expert trajectories in D_b where BC-E <= 80"].holds  # 2 < 4
    assert checks["scored settings where ILID >= 1.3x BC-E"].measured == 0
    assert checks["scored settings where ILID >= BC-E, DWBC, ISW-BC"].measured == 0  # DWBC 50
    # No setting meets the precondition: the win checks fail instead of holding vacuously.
    rep = summarise(_rows(bce=85.0), STUDY, quick=True, command=["x"])
    assert rep.extra["scored"] == []
    wins = [c for c in rep.checks if c.name.startswith("scored settings")]
    assert len(wins) == 2 and not any(c.holds for c in wins)


def test_summary_times_gpu_runs_by_wall_clock():
    """Rows trained on CUDA: the runtime check uses synchronised wall time, not CPU time."""
    rows = [dict(r, device="cuda", train_s=1.2 if "ilid" in r["arm"] else 1.0) for r in _rows()]
    rep = summarise(rows, STUDY, quick=True, command=["x"])
    (check,) = [c for c in rep.checks if "BC-E training" in c.name]
    assert "wall time on the GPU" in check.name and abs(check.measured - 1.2) < 1e-9
    assert check.holds
    assert set(rep.extra["ilid_over_bc_expert_gpu_wall"].values()) == {1.2}
    mixed = rows[:-1] + [dict(rows[-1], device="cpu")]  # not all on a GPU: CPU time as before
    (check,) = [c for c in summarise(mixed, STUDY, quick=True, command=["x"]).checks
                if "BC-E training" in c.name]
    assert "CPU time" in check.name and check.measured == 2.0


def test_summary_of_an_arm_subset():
    """--arms ilid,bc_expert: the win check compares with BC-E alone, no ablation check."""
    rows = [r for r in _rows(dwbc=99.0) if r["arm"] in ("ilid", "bc_expert")]
    rep = summarise(rows, STUDY, quick=True, command=["x"])
    names = [c.name for c in rep.checks]
    assert "scored settings where ILID >= BC-E (of 2)" in names
    assert not any("beta" in n for n in names)
    assert {r["arm"] for r in rep.rows} == {"ilid", "bc_expert"}
    full = summarise(_rows(dwbc=99.0), STUDY, quick=True, command=["x"])  # DWBC beats ILID
    assert [c for c in full.checks if "DWBC" in c.name][0].measured == 0


def test_quick_and_full_settings_have_experts_in_the_imperfect_data():
    from offline_il_select.bench import (
        FULL_SETTINGS,
        QUICK_SETTINGS,
        SETTINGS,
        experts_in_imperfect,
    )

    assert set(FULL_SETTINGS) >= set(QUICK_SETTINGS) and set(SETTINGS) >= set(FULL_SETTINGS)
    counts = {s: experts_in_imperfect(s) for s in FULL_SETTINGS}
    assert {1, 10} <= set(counts.values()) and 0 in counts.values()  # random-only beside
    assert sum(c > 0 for c in counts.values()) >= 4


def test_paper_batch_arms_are_named_only_and_share_one_preparation():
    """The 256 + 256 arms (the paper's code's batch) differ from ILID and ILID without beta only
    in the policy batch, run only when named, and the one without beta rides on the other's
    preparation (which the policy batch does not enter)."""
    from dataclasses import asdict

    from offline_il_select.bench import FULL_ARMS, QUICK_ARMS, _arm_cfg, prep_units

    assert not {"ilid_batch256", "ilid_no_beta_batch256"} & set(FULL_ARMS + QUICK_ARMS)
    s = "halfcheetah-random+1expert"
    for arm, ref in (("ilid_batch256", "ilid"), ("ilid_no_beta_batch256", "ilid_no_beta")):
        big, small = asdict(_arm_cfg(s, arm, 0, False, 1000)), asdict(_arm_cfg(s, ref, 0, False,
                                                                             1000))
        assert big["policy"].pop("batch_size") == 256 and small["policy"].pop("batch_size") == 128
        assert big == small
    job = (s, 0, "ilid_batch256", False, 1000, "cpu")
    rider = job[:2] + ("ilid_no_beta_batch256",) + job[3:]
    assert prep_units([job, rider]) == [(job, ("ilid_batch256", "ilid_no_beta_batch256"))]
    # a summary of the bench's rows beside them (as --from-rows merges a part of these arms)
    rows = _rows()
    rows += [dict(r, arm=r["arm"].replace("ilid", "ilid_batch256", 1)) for r in rows
             if r["arm"] == "ilid"]
    rep = summarise(rows, STUDY, quick=False, command=["x"])
    assert {"ilid_batch256", "ilid"} <= {r["arm"] for r in rep.rows}


def test_budget_keeps_the_papers_discriminator_proportion():
    from offline_il_select.bench import budget

    full = budget(False, 30_000)
    assert "policy.steps=30000" in full and "ilid.disc_steps=3000" in full  # 1M : 100k
    assert "ilid.disc_steps=100" in budget(True, 500)  # floor for short budgets
    assert "policy.steps=100000" in budget(False)  # the full bench's default
    assert "data.n_s=200" in budget(True) and not any("n_s" in o for o in full)


def test_bad_bench_flags_fail_before_any_output(tmp_path):
    import pytest

    from offline_il_select.bench import main
    from shared.errors import ConfigError

    for flags in (["--seed-list", "1,x"], ["--settings", "walker-random"], ["--steps", "-5"],
                  ["--arms", "ilid,gail"], ["--arms", "ilid,dwbc"],
                  ["--from-rows", str(tmp_path / "no_rows.json")]):
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
    for flags in (["--setting", "no-such-setting"], ["--set", "policy.steps=5"], ["--steps", "0"]):
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


def test_expert_rows_counts_what_ilid_does_with_the_experts_in_d_b():
    """Selected expert rows of D_b and the beta they get: beta is stored per D_s row, in D_b
    order, so the i-th selected row's beta is beta[i]."""
    import numpy as np
    import torch

    from offline_il_select.bench import expert_rows

    is_expert = np.array([0, 0, 0, 1, 1, 1], bool)
    selected = torch.tensor([0, 1, 0, 1, 1, 0], dtype=torch.bool)  # D_s = rows 1, 3, 4
    beta = torch.tensor([1.0, 0.0, 1.0])  # row 1: 1, row 3: 0, row 4: 1
    out = expert_rows({"selected": selected, "beta": beta}, is_expert)
    assert out == {"n_expert_rows": 3, "n_selected_expert": 2, "beta_mean_selected_expert": 0.5,
                   "n_selected_gated_in": 2}
    none = expert_rows({"selected": torch.zeros(6, dtype=torch.bool), "beta": torch.zeros(0)},
                       is_expert)
    assert none["n_selected_expert"] == 0 and np.isnan(none["beta_mean_selected_expert"])


def test_out_of_family_scores_are_reported_beside_and_checked():
    """Rows with out-of-family scores: a score_ood column per (setting, arm) and a win check
    on them; ILID behind DWBC out of family fails that check even when it wins in family."""
    rows = _rows()
    for r in rows:
        ood = {"ilid": 10.0, "dwbc": 20.0}.get(r["arm"], 5.0) + r["seed"]
        r["ood"] = {"heavy": ood, "slippery": ood + 2}
    rep = summarise(rows, STUDY, quick=True, command=["x"])
    row = next(r for r in rep.rows if r["arm"] == "ilid" and r["setting"] == SCORED[0])
    assert row["score_ood"] == 11.5 and row["ood_heavy"] == 10.5 and row["ood_slippery"] == 12.5
    (check,) = [c for c in rep.checks if c.name.startswith("out of family")]
    assert check.measured == 0 and not check.holds  # DWBC 21.5 > ILID 11.5 out of family
    assert rep.extra["wins"]["beats_all_out_of_family"] == []
    assert rep.extra["mean_score_out_of_family"]["dwbc"] == 21.5
    # rows from before the out-of-family arm: no check, nan columns, nothing breaks
    rep = summarise(_rows(), STUDY, quick=True, command=["x"])
    assert not [c for c in rep.checks if c.name.startswith("out of family")]


def test_out_of_family_evaluation_changes_only_the_dynamics():
    """Scales of 1 reproduce the in-family evaluation exactly; heavier bodies change the return."""
    from functools import partial

    import numpy as np
    import torch

    from offline_il_select.bench import out_of_family
    from offline_il_select.models import TanhGaussianPolicy
    from offline_il_select.train import evaluate
    from shared.il.envs import PERTURBATIONS, make_perturbed_env

    class Data:  # what evaluate reads of ILData
        env_id, ref_random, ref_expert, refs = "Hopper-v5", 0.0, 1000.0, {}

    torch.manual_seed(0)
    pol = TanhGaussianPolicy(11, 3)
    base = evaluate(pol, Data, 2, seed=5)
    same = evaluate(pol, Data, 2, seed=5, make=partial(make_perturbed_env, mass_scale=1.0))
    heavy = evaluate(pol, Data, 2, seed=5, make=partial(make_perturbed_env, mass_scale=1.5))
    assert same["return"] == base["return"] and heavy["return"] != base["return"]
    ood = out_of_family(pol, Data, 2, seed=0)
    assert set(ood) == set(PERTURBATIONS) and all(np.isfinite(v) for v in ood.values())
