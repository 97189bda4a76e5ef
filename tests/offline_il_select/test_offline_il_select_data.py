"""The paper's data protocol: D_e and D_b cut from datasets and files as its code cuts them, every
count honoured, sizes checked against the environment before anything is written."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from offline_il_select.config import DataConfig, TrainConfig
from offline_il_select.data import (
    build_data,
    compose,
    cut_trajectories,
    pick_trajectories,
    references,
    state_stats,
)
from offline_il_select.train import main
from offline_il_select.wbc import importance_weight, unclipped_importance_weight
from shared.config import load_config
from shared.errors import DataError
from shared.il.datasets import episode_bounds, write_d4rl_hdf5, write_minari
from shared.il.models import Discriminator
from tests.inprocess import cli

TINY = "configs/offline_il_select/tiny.yaml"


def _cli(*args: str) -> tuple[int, str]:
    """`python -m offline_il_select.train args` in-process: (exit code, stderr)."""
    return cli("offline_il_select.train", *args)


def _trajs(lengths, s=11, a=3, tag=0.0, last_closed=True):
    """A D4RL-layout dataset of trajectories of `lengths`; trajectory i's rewards are all
    tag + i, so every row tells which trajectory it came from."""
    rng = np.random.default_rng(len(lengths))
    n = sum(lengths)
    ends = np.cumsum(lengths) - 1
    timeouts = np.zeros(n, bool)
    timeouts[ends] = True
    if not last_closed:
        timeouts[-1] = False  # a file cut mid-trajectory, as D4RL's last one
    return {"observations": rng.normal(size=(n, s)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (n, a)).astype(np.float32),
            "rewards": np.repeat(tag + np.arange(len(lengths)), lengths).astype(np.float32),
            "terminals": np.zeros(n, bool), "timeouts": timeouts,
            "next_observations": rng.normal(size=(n, s)).astype(np.float32)}


def _reference_get_datasets(expert, source, num_e, num_s_e, num_s_s):
    """The paper's `get_datasets` as its code reads, on lists of trajectories (slow, obvious):
    D_s = the first num_s_s source trajectories + expert trajectories [num_e, num_e + num_s_e);
    D_e = the first num_e expert trajectories."""
    def split(d):
        return [{k: v[s:e] for k, v in d.items()} for s, e in episode_bounds(d)]

    ex, src = split(expert), split(source)
    d_e = ex[:num_e]
    d_s = src[:num_s_s] + ex[num_e:num_e + num_s_e]
    return ({k: np.concatenate([t[k] for t in d_e]) for k in expert},
            {k: np.concatenate([t[k] for t in d_s]) for k in expert})


@pytest.mark.parametrize("n_e,n_se,n_s", [(1, 0, 3), (1, 1, 5), (2, 3, 1), (1, 10, 4)])
def test_composition_matches_the_papers_get_datasets(n_e, n_se, n_s):
    expert = _trajs([7, 5, 9, 6, 8, 4, 7, 5, 6, 9, 3, 8], tag=100.0)
    source = _trajs([3, 4, 2, 5, 6])
    cfg = DataConfig(n_expert=n_e, n_s_expert=n_se, n_s=n_s)
    d_e, d_b, is_expert = compose(expert, source, cfg)
    ref_e, ref_b = _reference_get_datasets(expert, source, n_e, n_se, n_s)
    for k in ("observations", "actions", "rewards", "next_observations"):
        np.testing.assert_array_equal(d_e[k], ref_e[k])
        np.testing.assert_array_equal(d_b[k], ref_b[k])
    assert len(episode_bounds(d_e)) == n_e and len(episode_bounds(d_b)) == n_s + n_se
    np.testing.assert_array_equal(is_expert, d_b["rewards"] >= 100)  # the ground-truth mask


# Trajectories in the D4RL v2 file each source dataset stands for (the published datasets; the
# same counts as the Hugging Face mirror `edbeeching/decision_transformer_gym_replay` lists):
# the paper's code takes the first min(--num_s_s 1000, count) of them
D4RL_TRAJECTORIES = {("HalfCheetah-v5", "random"): 1000, ("HalfCheetah-v5", "medium"): 1000,
                     ("HalfCheetah-v5", "medium_replay"): 202, ("Hopper-v5", "medium"): 2186,
                     ("Hopper-v5", "medium_replay"): 2041}


CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "offline_il_select"


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml") if p.stem != "tiny"))
def test_configs_take_as_many_source_trajectories_as_the_code_gets_from_d4rl(name):
    """n_s = min(1000, the D4RL file's trajectory count): halfcheetah-medium-replay-v2 holds 202
    trajectories, so the code's --num_s_s 1000 gives D_b 202 of them there, not 1000. (Hopper's
    random file holds tens of thousands of short episodes: 1000.)"""
    d = load_config(CONFIGS / f"{name}.yaml", TrainConfig).data
    assert d.n_s == min(1000, D4RL_TRAJECTORIES.get((d.env_id, d.source), 1000))


def test_sampled_pick_is_a_seeded_permutation():
    data = _trajs([3, 4, 5, 6, 7, 8])
    first = pick_trajectories(data, 4, "first", 0, "x")
    assert first == [0, 1, 2, 3]
    a, b = (pick_trajectories(data, 4, "sampled", s, "x") for s in (0, 0))
    assert a == b and len(set(a)) == 4 and set(a) <= set(range(6))  # distinct, reproducible
    others = {tuple(pick_trajectories(data, 4, "sampled", s, "x")) for s in range(1, 6)}
    assert len(others | {tuple(a)}) > 1  # the seed matters


def test_cut_closes_a_trajectory_without_an_end_flag():
    """D4RL files end mid-trajectory: picked out of order, that trajectory still ends where it
    did, and does not merge with the next one picked."""
    data = _trajs([3, 4, 5], last_closed=False)
    out = cut_trajectories(data, [2, 0])
    assert [e - s for s, e in episode_bounds(out)] == [5, 3]
    assert out["timeouts"][4] and list(out["rewards"][:5]) == [2.0] * 5


def test_state_stats_are_the_papers():
    """mean and std + 1e-3 over D_e ∪ D_b, D_b's expert trajectories included (the code's
    `np.std(states_o, 0) + 1e-3`)."""
    expert, source = _trajs([4, 5, 6], tag=10.0), _trajs([3, 3])
    d_e, d_b, _ = compose(expert, source, DataConfig(n_expert=1, n_s_expert=2, n_s=2))

    class D:
        pass

    d = D()
    d.expert, d.imperfect = d_e, d_b
    mean, std = state_stats(d)
    allx = np.concatenate([expert["observations"], source["observations"]]).astype(np.float64)
    np.testing.assert_allclose(mean, allx.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, allx.std(0) + 1e-3, rtol=1e-5)


def _write_files(tmp_path, n_expert_trajs=5, s=11):
    write_d4rl_hdf5(tmp_path / "expert.hdf5", _trajs([20, 25, 30, 35, 40][:n_expert_trajs],
                                                     s=s, tag=100.0))
    write_d4rl_hdf5(tmp_path / "random.hdf5", _trajs([5, 6, 7, 8, 9, 10]))
    return tmp_path / "expert.hdf5", tmp_path / "random.hdf5"


def _file_cfg(e, r, *over):
    return load_config(TINY, TrainConfig, [f"data.expert_file={e}", f"data.imperfect_file={r}",
                                           *over]).data


def test_real_files_honour_every_count(tmp_path):
    """A D4RL-layout expert file of 5 trajectories with n_expert=1 gives one trajectory; D_b is
    the file's first n_s source trajectories and the next n_s_expert expert ones."""
    e, r = _write_files(tmp_path)
    data = build_data(_file_cfg(e, r, "data.n_s=4", "data.n_s_expert=2"))
    assert len(data.expert["rewards"]) == 20 and set(data.expert["rewards"]) == {100.0}
    assert len(episode_bounds(data.expert)) == 1
    assert [e_ - s_ for s_, e_ in episode_bounds(data.imperfect)] == [5, 6, 7, 8, 25, 30]
    assert data.imperfect_is_expert.sum() == 55
    sampled = build_data(_file_cfg(e, r, "data.n_s=4", "data.pick=sampled"))
    assert len(episode_bounds(sampled.imperfect)) == 4
    # a Minari directory is cut the same way
    write_minari(tmp_path / "m", _trajs([20, 25, 30], tag=100.0), "hopper/expert-v0", "Hopper-v5")
    mini = build_data(_file_cfg(tmp_path / "m" / "hopper/expert-v0", r, "data.n_s=1"))
    assert len(mini.expert["rewards"]) == 20


def test_counts_larger_than_the_file_are_one_line_errors(tmp_path):
    e, r = _write_files(tmp_path)
    with pytest.raises(DataError, match=r"expert.hdf5 \(n_expert \+ n_s_expert\): holds 5 "
                                        r"trajectories, fewer than the 6"):
        build_data(_file_cfg(e, r, "data.n_s=2", "data.n_s_expert=5"))
    out = tmp_path / "run"
    code, err = _cli("--config", TINY, "--set", f"data.expert_file={e}", "--set",
                     f"data.imperfect_file={r}", "--set", "data.n_s=7", "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1
    assert "random.hdf5 (n_s): holds 6 trajectories, fewer than the 7" in err
    assert not out.exists()


def test_observation_size_mismatch_fails_before_any_file(tmp_path, monkeypatch):
    """An expert file whose states do not fit the environment: one line naming the file and both
    shapes, before any rollout or run dir (D_b would be rolled out: it never is)."""
    import offline_il_select.data as data_mod

    def no_rollout(*a, **k):
        raise AssertionError("rolled out before checking the file")

    monkeypatch.setattr(data_mod, "generate_spec", no_rollout)
    write_d4rl_hdf5(tmp_path / "e.hdf5", _trajs([20, 20], s=17))
    out = tmp_path / "run"
    code, err = _cli("--config", TINY, "--set", f"data.expert_file={tmp_path / 'e.hdf5'}",
                     "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1
    assert "e.hdf5: observations have shape (17,)" in err and "expects (11,)" in err
    assert not out.exists()


def test_scores_against_both_references(tmp_path):
    """The primary score uses our deterministic expert; score_d4rl the same return against
    D4RL's published references (closed form from the reported return)."""
    out = tmp_path / "run"
    assert main(["--config", TINY, "--out", str(out), "--set", "policy.steps=20"]) == 0
    res = json.loads((out / "result.json").read_text())
    refs = references("Hopper-v5")
    for key, name in (("score", "ours"), ("score_d4rl", "d4rl")):
        lo, hi = refs[name]
        assert res[key] == pytest.approx(100 * (res["return"] - lo) / (hi - lo))
    assert refs["d4rl"] == (-20.272305, 3234.3)
    assert refs["ours"][1] != refs["sampled"][1]  # deterministic vs sampled expert


def test_unclipped_alpha_is_the_raw_odds():
    """exp(raw logit) = D/(1-D) of the unclipped sigmoid (float64 reference); where D lies
    inside the clip, the clipped alpha is the same."""
    torch.manual_seed(0)
    disc = Discriminator(4, 16, (0.1, 0.9))
    last = [m for m in disc.net.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(30)  # logits well beyond the clip's +-2.2 on some rows
    x = torch.randn(300, 4)
    with torch.no_grad():
        raw = torch.sigmoid(disc.net(disc.norm(x)).squeeze(-1).double())
    got = unclipped_importance_weight(disc, x, chunk=64)
    np.testing.assert_allclose(got.numpy(), (raw / (1 - raw)).numpy(), rtol=1e-5)
    inside = (raw > 0.1) & (raw < 0.9)
    assert inside.any() and (~inside).any()
    clipped = importance_weight(disc.predict(x))
    np.testing.assert_allclose(clipped[inside].numpy(), got[inside].numpy(), rtol=1e-5)
    assert (clipped.max() <= 9 + 1e-5) and got.max() > 9  # only the unclipped one leaves [1/9, 9]


def test_medium_replay_rollouts_are_noisy_medium_episodes():
    from shared.il.generate import dataset

    d = dataset("Hopper-v5", "medium_replay", 3, 7, max_steps=15)
    again = dataset("Hopper-v5", "medium_replay", 3, 7, max_steps=15)
    np.testing.assert_array_equal(d["actions"], again["actions"])
    levels = np.unique(d["infos/noise_std"])
    assert np.isclose(levels[:, None], [0.1, 0.3, 0.5, 1.0]).any(1).all()
    med = dataset("Hopper-v5", "medium", 3, 7, max_steps=15)
    assert not np.array_equal(d["actions"][:5], med["actions"][:5])
