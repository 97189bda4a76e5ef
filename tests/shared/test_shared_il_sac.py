"""shared.il SAC: ensemble layers vs per-member references, log-probs, a tiny run with resume."""

import json

import numpy as np
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from shared.il.export import export, pick_snapshots
from shared.il.nets import EnsembleMLP, member_state_dict, mlp
from shared.il.policy import load_policy, squash_log_std
from shared.il.sac import SACAgents, SACConfig, train_sac
from shared.io import Checkpointer


def test_ensemble_mlp_matches_member_mlps():
    torch.manual_seed(0)
    ens = EnsembleMLP(3, 5, 4, hidden=8)
    x = torch.randn(3, 7, 5)
    y = ens(x)
    for m in range(3):
        ref = mlp(5, 4, 8)
        ref.load_state_dict(member_state_dict(ens, m))
        torch.testing.assert_close(y[m], ref(x[m]))


def test_members_have_independent_gradients():
    ens = EnsembleMLP(2, 3, 1, hidden=4)
    x = torch.randn(2, 5, 3)
    ens(x)[0].sum().backward()  # a loss on member 0 only
    assert all(p.grad[1].abs().sum() == 0 for p in ens.parameters())


def test_sac_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    ag = SACAgents(2, 4, 3, hidden=16)
    obs = torch.randn(2, 50, 4)
    torch.manual_seed(1)
    a, logp = ag.sample(obs)
    mean, raw = ag.actor(obs).chunk(2, -1)
    dist = TransformedDistribution(Normal(mean, squash_log_std(raw).exp()), TanhTransform())
    ref = dist.log_prob(a.clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    ok = a.abs().amax(-1) < 0.999  # away from the saturated edge where atanh is ill-conditioned
    torch.testing.assert_close(logp[ok], ref[ok], rtol=1e-3, atol=1e-3)
    assert ag.q(ag.critic, obs, a).shape == (2, 2, 50)


def test_tiny_run_resumes_and_exports(tmp_path):
    cfg = SACConfig(env_id="InvertedPendulum-v5", num_agents=2, total_steps=300,
                    learning_starts=256, batch_size=32, hidden=16, eval_every=150,
                    eval_episodes=1, ckpt_every=150)
    s1 = train_sac(cfg, tmp_path)
    assert s1["steps"] == 300
    hist = json.loads((tmp_path / "history.json").read_text())
    assert [h["step"] for h in hist] == [150, 300]
    first = Checkpointer(tmp_path).load()["buffer"]["data"]
    cfg.total_steps = 450
    s2 = train_sac(cfg, tmp_path)  # resumes at 300 (checkpoint incl. replay buffer)
    buf = Checkpointer(tmp_path).load()["buffer"]
    # appended after the first 300 transitions (as a 450-step run), none overwritten
    assert buf["size"] == 450 and torch.equal(buf["data"][:, :300], first)
    hist = json.loads((tmp_path / "history.json").read_text())
    assert [h["step"] for h in hist] == [150, 300, 450] and s2["steps"] == 450
    snaps = torch.load(tmp_path / "snapshots.pt", weights_only=False)["snapshots"]
    expert, medium = pick_snapshots(snaps, 1 / 3)
    assert expert["eval_return"] == max(s["eval_return"] for s in snaps)
    assert medium["step"] <= expert["step"]
    paths = export(tmp_path / "snapshots.pt", "pendulum", tmp_path / "pol")
    pol, info = load_policy(paths["expert"])
    assert info["env_id"] == "InvertedPendulum-v5"
    act = pol.act(np.zeros((2, 4)))
    assert act.shape == (2, 1) and np.all(np.abs(act) <= 3.0)


def test_expert_recipe_refuses_resuming_under_a_changed_config(tmp_path, capsys):
    import pytest

    from shared.cli import run
    from shared.config import save_config
    from shared.il import train_expert
    from shared.io import check_resume

    cfg = SACConfig(env_id="InvertedPendulum-v5", total_steps=300)
    save_config(cfg, tmp_path / "config.yaml")
    (tmp_path / "ckpt.pt").write_bytes(b"")  # refused before the checkpoint is read
    saved = (tmp_path / "config.yaml").read_text()
    with pytest.raises(SystemExit) as e:
        run(train_expert.main, ["--out", str(tmp_path), "--set", "env_id=InvertedPendulum-v5",
                                "--set", "total_steps=300", "--set", "lr=0.01"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "lr=0.0003 (now 0.01)" in err and len(err.splitlines()) == 1
    assert (tmp_path / "config.yaml").read_text() == saved
    longer = SACConfig(env_id="InvertedPendulum-v5", total_steps=600, time_limit_s=60.0)
    check_resume(tmp_path, longer, train_expert.RESUME_FREE)  # a longer budget resumes


def test_expert_recipe_quick_is_an_overlay_under_set(tmp_path, monkeypatch):
    from shared.il import train_expert

    seen = []
    monkeypatch.setattr(train_expert, "train_sac", lambda cfg, run_dir, device: seen.append(cfg)
                        or {})
    assert train_expert.main(["--quick", "--set", "total_steps=300", "--out",
                              str(tmp_path / "q")]) == 0
    assert (seen[0].total_steps, seen[0].learning_starts, seen[0].eval_episodes) == (300, 500, 1)

def test_replay_buffer_load_keeps_a_wrapped_pointer_and_appends_after_a_smaller_capacity():
    import pytest

    from shared.errors import ConfigError
    from shared.il.sac import ReplayBuffer

    def filled(capacity: int, n: int) -> ReplayBuffer:
        buf = ReplayBuffer(1, capacity, 1, 1, "cpu")
        for i in range(n):
            f = np.full((1, 1), float(i), np.float32)
            buf.add(f, f, np.full(1, float(i), np.float32), np.zeros(1, np.float32), f)
        return buf

    wrapped = filled(4, 6)  # rows 4, 5, 2, 3; the next write goes to row 2
    same = ReplayBuffer(1, 4, 1, 1, "cpu")
    same.load(wrapped.state())  # a plain resume of a wrapped buffer: the pointer is kept
    assert (same.ptr, same.size) == (2, 4) and torch.equal(same.data, wrapped.data)
    longer = ReplayBuffer(1, 8, 1, 1, "cpu")
    longer.load(filled(4, 4).state())  # a full buffer of a shorter run: goes on appending
    assert (longer.ptr, longer.size, int(longer.size_t)) == (4, 4, 4)
    with pytest.raises(ConfigError, match="capacity 3"):
        ReplayBuffer(1, 3, 1, 1, "cpu").load(filled(4, 4).state())
