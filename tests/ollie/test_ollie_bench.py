"""The bench's pieces on the tiny setting: every arm's rows, the alignment check, the summary's
checks and curves, and summarising the rows of a cut-short run."""

import json
import pickle
from concurrent.futures import Future

import numpy as np
import pytest
import torch

import ollie.bench as bench
from shared.errors import ConfigError, DataError


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


def test_no_online_budget_is_refused_before_any_output(tmp_path):
    # the bench's checks read the online curves; an empty one used to end in an IndexError
    with pytest.raises(ConfigError, match="online.env_steps"):
        bench.main(["--quick", "--set", "online.env_steps=0", "--out", str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()


def _same(a: dict, b: dict) -> bool:
    drop = ("wall_s", "offline_wall_s")
    return {k: v for k, v in a.items() if k not in drop} == \
        {k: v for k, v in b.items() if k not in drop}


def test_split_ollie_jobs_give_the_rows_of_the_combined_job(rows):
    """The bench's path (offline job, then one job per online variant, each rebuilding its
    start from tensors) reproduces the one-process path bit for bit."""
    off = bench.run_offline(("tiny", 0, False, ["eval_episodes=1"]))
    for arm in bench.VARIANTS:
        v = bench.VARIANTS[arm]
        part = pickle.loads(pickle.dumps({**off, "starts": {v: off["starts"][v]}}))  # as sent
        [split] = bench.run_online(("tiny", 0, arm, False, ["eval_episodes=1"], part))
        combined = next(r for r in rows if r["arm"] == arm)
        assert _same(split, combined), arm
    for start in off["starts"].values():  # tensors and plain values only: no objects
        for v in start.values():
            assert isinstance(v, (torch.Tensor, dict))


class _Sync:
    """An executor that runs each job when it is submitted, recording the order."""

    def __init__(self):
        self.order = []

    def submit(self, fn, job):
        self.order.append((job[0], "offline" if len(job) == 4 else job[2]))
        f = Future()
        f.set_result(fn(job))
        return f


def test_jobs_run_longest_first_and_online_jobs_wait_for_their_offline_job(monkeypatch):
    monkeypatch.setattr(bench, "EST_S", {
        "hopper": {"offline": 100.0, "dwbc": 50.0, "bc": 10.0, "online_step": 1e-3},
        "halfcheetah": {"offline": 100.0, "dwbc": 50.0, "bc": 10.0, "online_step": 2e-3}})
    monkeypatch.setattr(bench, "run_offline", lambda job: {"starts": {
        v: v for v in bench.VARIANTS.values()}})
    monkeypatch.setattr(bench, "run_online", lambda job: [job[2]])
    monkeypatch.setattr(bench, "run_job", lambda job: [job[2]])
    ex, got = _Sync(), []
    bench.run_all(["hopper", "halfcheetah"], [0, 1], True, [], 1, ex, got.extend)
    assert sorted(got) == sorted(2 * 2 * (list(bench.ARMS) + ["ollie_no_align"]))
    cost = [bench.est_seconds(s, a, True, []) for s, a in ex.order]
    first = {(s, a): i for i, (s, a) in enumerate(ex.order)}
    # with one worker every job starts as soon as it is the longest one ready
    assert ex.order[0] == ("halfcheetah", "offline")
    assert first[("hopper", "offline")] < first[("hopper", "ollie")]
    ready_late = {"ollie", "ollie_no_align"}
    rest = [c for c, (s, a) in zip(cost, ex.order) if a not in ready_late]
    assert rest == sorted(rest, reverse=True)


def test_set_options_do_not_override_an_arms_own_keys():
    cfg = bench.arm_config("hopper", "bc_expert", 1, True, ["online.env_steps=4096", "seed=7",
                                                            "eval_episodes=2"])
    assert (cfg.online.env_steps, cfg.seed, cfg.pretrain, cfg.eval_episodes) == \
        (0, 1, "bc_expert", 2)
    assert bench.arm_config("hopper", "gail", 0, True, ["online.env_steps=4096"]
                            ).online.env_steps == 4096


def test_a_diverged_online_run_is_a_failed_row_and_fails_a_check(rows, monkeypatch):
    def diverge(*args, **kw):
        raise DataError("online phase of pretrain=none + random discriminator: the PPO policy "
                        "loss is not finite")

    monkeypatch.setattr(bench, "finetune", diverge)
    [failed] = bench.run_job(("tiny", 0, "gail", False, ["eval_episodes=1"]))
    assert failed["arm"] == "gail" and "not finite" in failed["error"]
    assert failed["online_curve"] == [] and np.isfinite(failed["offline_score"])
    kept = [r for r in rows if r["arm"] != "gail"] + [failed]
    assert len(bench.complete_groups(kept)) == len(rows)  # a failed arm is a finished arm
    rep = bench.summarise(kept, ["python", "-m", "ollie.bench"], quick=True)
    [check] = [c for c in rep.checks if c.name.startswith("online runs that diverged")]
    assert check.measured == 1 and not check.holds
    assert any("tiny seed 0 gail" in n and "not finite" in n for n in rep.notes)
    gail_row = next(r for r in rep.rows if r["arm"] == "gail (online)")
    assert gail_row["seeds"] == 0


def test_nan_scores_of_older_rows_are_failed_runs_not_means(rows):
    """rows.json from before the online phase stopped on NaN: a curve holding NaN is a
    diverged run, left out of the online means and named in the notes."""
    nan_row = next(r for r in rows if r["arm"] == "naive_gail")
    nan_row = {**nan_row, "online_curve": [dict(p) for p in nan_row["online_curve"]]}
    nan_row["online_curve"][-1]["score"] = float("nan")
    kept = [r for r in rows if r["arm"] != "naive_gail"] + [nan_row]
    [marked] = [r for r in bench.mark_diverged(kept) if "error" in r]
    assert marked["arm"] == "naive_gail" and "env step" in marked["error"]
    rep = bench.summarise(kept, ["python", "-m", "ollie.bench"], quick=True)
    online = rep.extra["summary"]["tiny"]["online"]
    assert all(np.isfinite(v["auc"]) for a, v in online.items() if a != "naive_gail")
    assert not np.isfinite(online["naive_gail"]["auc"])
    assert rep.extra["summary"]["tiny"]["offline"]["dwbc"] == nan_row["offline_score"]
    assert not next(c for c in rep.checks if "diverged" in c.name).holds
    assert not next(c for c in rep.checks if "naive offline→GAIL AUC" in c.name).holds


class _Stop(Exception):
    pass


@pytest.mark.parametrize("setting", sorted(bench.SETTINGS))
@pytest.mark.parametrize("arm,sets", [("ollie", []), ("naive_gail", [
    "--set", "pretrain=dwbc", "--set", "online.discriminator=random"])])
def test_bench_jobs_get_the_config_train_resolves(setting, arm, sets, monkeypatch):
    """The bench's job of an arm runs the config `python -m ollie.train --config <the
    setting's YAML> --set <the arm's keys>` resolves, nothing more or less."""
    import ollie.train as train

    seen = {}

    def keep(name, fn):
        def wrapped(*args, **kw):
            seen[name] = args[0]
            raise _Stop
        return wrapped

    real = train.load_train_config
    monkeypatch.setattr(train, "load_train_config",
                        lambda *a, **k: seen.setdefault("train", real(*a, **k)))
    monkeypatch.setattr(train, "build_data", keep("train_data", None))
    with pytest.raises(_Stop):
        train.main(["--config", bench.SETTINGS[setting], *sets, "--seed", "1"])
    monkeypatch.setattr(bench, "build_data", lambda c: None)
    monkeypatch.setattr(bench, "pretrain", keep("bench", None))
    with pytest.raises(_Stop):
        if arm == "ollie":
            bench.run_offline((setting, 1, False, []))
        else:
            bench.run_job((setting, 1, arm, False, []))
    assert seen["bench"] == seen["train"]
    assert seen["train_data"] == seen["train"].data
