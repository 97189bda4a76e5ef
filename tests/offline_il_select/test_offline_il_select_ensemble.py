"""The lockstep ensemble of weighted-BC runs against single runs (the obvious reference)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from offline_il_select.baselines import BC, DWBC, ISWBC
from offline_il_select.config import BaselineConfig, ILIDConfig, PolicyConfig
from offline_il_select.ensemble import EnsembleBC, Member, train_ensemble
from offline_il_select.ilid import ILID
from offline_il_select.models import Normalizer, TanhGaussianPolicy
from offline_il_select.wbc import weighted_bc_loss
from shared.errors import ConfigError
from tests.offline_il_select.test_offline_il_select_wbc import _synthetic

S, A, H, B = 3, 2, 16, 8


def _members(rng):
    """Two storages (settings) and three members: two-term, one-term, one-term on storage 1."""
    storages = [(rng.normal(size=(50, S)), rng.uniform(-0.9, 0.9, (50, A))),
                (rng.normal(size=(30, S)) + 1, rng.uniform(-0.9, 0.9, (30, A)))]
    terms = [[(np.arange(10), rng.uniform(0.1, 9, 10)),
              (np.arange(20, 35), rng.integers(0, 2, 15))],
             [(np.arange(50), np.ones(50))],
             [(np.array([3, 7, 29]), np.array([1.0, 2.0, 0.5]))]]
    out = []
    for k, (st, t) in enumerate(zip((0, 0, 1), terms)):
        torch.manual_seed(k)
        init = TanhGaussianPolicy(S, A, H).net.state_dict()
        out.append(Member(st, t, init, storages[st][0].mean(0), storages[st][0].std(0) + 0.1 * k))
    return storages, out


def _rows_of(storages, m, local):
    """A member's storage rows (states, actions) at local row indices."""
    obs, act = storages[m.storage]
    return (torch.as_tensor(obs[local], dtype=torch.float32),
            torch.as_tensor(act[local], dtype=torch.float32))


def test_members_are_their_single_policies():
    storages, members = _members(np.random.default_rng(0))
    ens = EnsembleBC(members, storages, H, B, 1e-3, 5e-3)
    rows, _ = ens.sample()
    logp, local = ens.log_prob(rows), ens.storage_rows(rows).numpy()
    for k, m in enumerate(members):
        s, a = _rows_of(storages, m, local[k])
        ref = TanhGaussianPolicy(S, A, H, Normalizer(torch.as_tensor(m.mean),
                                                     torch.as_tensor(m.std)))
        ref.net.load_state_dict(m.init)  # the member as built, before any step
        torch.testing.assert_close(logp[k], ref.log_prob(s, a), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ens.policy(k).log_prob(s, a), logp[k], rtol=1e-5, atol=1e-5)


def test_the_stored_action_terms_are_the_log_likelihoods():
    """atanh(a) and log(1 - a^2) stored per row give tanh_gaussian_log_prob's number exactly."""
    from offline_il_select.ensemble import HALF_LOG_2PI, action_terms
    from shared.il.models import tanh_gaussian_log_prob

    g = torch.Generator().manual_seed(0)
    a = torch.rand(64, 3, generator=g) * 2 - 1
    a[0, 0], a[1, 1] = 1.0, -1.0  # clipped first, as there
    mean, log_std = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g).clamp(-5, 2)
    u, l1p = action_terms(a)
    got = (-0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - HALF_LOG_2PI - l1p).sum(-1)
    assert torch.equal(got, tanh_gaussian_log_prob(mean, log_std, a))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_ensemble_steps_equal_single_runs_on_the_same_batches(device):
    """Adam and weight decay act elementwise and the summed loss gives each member its own
    gradient: K single runs fed the same batches end with the same weights."""
    storages, members = _members(np.random.default_rng(1))
    ens = EnsembleBC(members, storages, H, B, 1e-2, 5e-3, device=device)
    singles = [ens.policy(k).to(device) for k in range(ens.K)]
    opts = [torch.optim.Adam(p.parameters(), lr=1e-2, weight_decay=5e-3) for p in singles]
    for _ in range(4):
        rows, w = ens.sample()
        ens.update(rows, w)
        local = ens.storage_rows(rows).cpu().numpy()
        for k, (p, o) in enumerate(zip(singles, opts)):
            s, a = (x.to(device) for x in _rows_of(storages, members[k], local[k]))
            lk = weighted_bc_loss(p, s[:B], a[:B], w[k, :B], s[B:], a[B:], w[k, B:])
            o.zero_grad()
            lk.backward()
            o.step()
    for k, p in enumerate(singles):
        got = ens.policy(k).net.state_dict()
        for name, x in p.cpu().net.state_dict().items():
            torch.testing.assert_close(got[name], x, rtol=1e-4, atol=1e-5, msg=name)


def _dwbc_members(rng, n_e=12, device="cpu"):
    """Two storages (D_e: the first n_e rows, D_b: the rest); a weighted-BC member, then three
    DWBC members (two on storage 0 with other alpha / eta / inits, one on storage 1), and their
    single runs as `shared.il.dwbc.DWBC` with the same initial discriminators."""
    from offline_il_select.ensemble import DWBCSpec
    from shared.il.dwbc import DWBC

    storages = [(rng.normal(size=(60, S)), rng.uniform(-0.99, 0.99, (60, A))),
                (rng.normal(size=(40, S)) + 1, rng.uniform(-0.99, 0.99, (40, A)))]
    members, refs = [], []
    torch.manual_seed(10)
    members.append(Member(0, [(np.arange(20), rng.uniform(0.1, 3, 20))],
                          TanhGaussianPolicy(S, A, H).net.state_dict(), storages[0][0].mean(0),
                          storages[0][0].std(0)))
    for k, (st, alpha, eta) in enumerate(((0, 7.5, 0.5), (0, 2.0, 0.3), (1, 7.5, 0.5))):
        obs, act = storages[st]
        mean, std = obs.mean(0) + 0.1 * k, obs.std(0)
        norm = Normalizer(torch.as_tensor(mean), torch.as_tensor(std)).to(device)
        torch.manual_seed(20 + k)
        ref = DWBC({"observations": obs[:n_e], "actions": act[:n_e]},
                   {"observations": obs[n_e:], "actions": act[n_e:]}, norm, B, 1e-2, 5e-3,
                   alpha, eta)
        n_b = len(obs) - n_e
        terms = [(np.arange(n_e), np.ones(n_e)), (n_e + np.arange(n_b), np.ones(n_b))]
        members.append(Member(st, terms, TanhGaussianPolicy(S, A, H).net.state_dict(), mean, std,
                              DWBCSpec(ref.disc.state_dict(), alpha, eta)))
        refs.append(ref)
    return storages, members, refs


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_dwbc_members_equal_single_dwbc_runs_on_the_same_batches(monkeypatch, device):
    """DWBC members (policy and discriminator batched, beside a weighted-BC member) end with the
    weights of single `shared.il.dwbc.DWBC` runs (its loss unchanged, its two index draws
    replaced by the ensemble's rows) after the same steps."""
    n_e = 12
    storages, members, refs = _dwbc_members(np.random.default_rng(6), n_e, device)
    ens = EnsembleBC(members, storages, H, B, 1e-2, 5e-3, device=device, seed=1)
    assert ens.Kd == 3
    singles = [ens.policy(k).to(device) for k in range(ens.K)]
    opts = [torch.optim.Adam(p.parameters(), lr=1e-2, weight_decay=5e-3) for p in singles]
    draws: list[torch.Tensor] = []

    def randint(high, size, generator=None, device=None):  # the ensemble's rows instead
        i = draws.pop(0)
        assert i.shape == size and int(i.max()) < high
        return i

    monkeypatch.setattr(torch, "randint", randint)
    gated = 0
    for _ in range(5):
        rows, w = ens.sample()
        ens.update(rows, w)
        local = ens.storage_rows(rows)
        for k, (p, o) in enumerate(zip(singles, opts)):
            if k == 0:
                s, a = (x.to(device) for x in _rows_of(storages, members[k],
                                                         local[k].cpu().numpy()))
                lk = weighted_bc_loss(p, s[:B], a[:B], w[k, :B])
            else:
                draws[:] = [local[k, :B], local[k, B:] - n_e]
                lk = refs[k - 1].loss(p, torch.Generator())
                assert not draws
            o.zero_grad()
            lk.backward()
            for i, layer in enumerate(ens.net.layers):  # this step's gradients, member k's own
                torch.testing.assert_close(layer.weight.grad[k].t(), p.net[2 * i].weight.grad,
                                           rtol=1e-3, atol=1e-5)
            o.step()
        for k, ref in enumerate(refs):
            for layer, name in _disc_layers(ens):
                g = dict(ref.disc.named_parameters())[f"{name}.weight"].grad
                torch.testing.assert_close(layer.weight.grad[k].t(), g, rtol=1e-3, atol=1e-5)
        with torch.no_grad():
            s_o, a_o = (x.to(device) for x in _rows_of(storages, members[1],
                                                         local[1, B:].cpu().numpy()))
            d_o = refs[0].disc(torch.cat([s_o, a_o], 1), singles[1].log_prob(s_o, a_o))
            gated += int((d_o < 0.5).sum())
    assert gated > 0  # the d_o < 0.5 -> 0 rule was exercised
    for k, p in enumerate(singles):
        got = ens.policy(k).net.state_dict()
        for name, x in p.cpu().net.state_dict().items():
            torch.testing.assert_close(got[name], x, rtol=1e-4, atol=1e-5, msg=f"{k} {name}")
    for k, ref in enumerate(refs):
        st = ref.disc.state_dict()
        for layer, name in _disc_layers(ens):  # Adam turns rounding on a near-zero gradient
            # into up to lr per step (one weight of 65k here): 2% of lr allowed, the runs
            # themselves move by up to 5 lr
            torch.testing.assert_close(layer.weight[k].t(), st[f"{name}.weight"], rtol=1e-4,
                                       atol=2e-4)
            torch.testing.assert_close(layer.bias[k, 0], st[f"{name}.bias"], rtol=1e-4,
                                       atol=2e-4)


def _disc_layers(ens):
    d = ens.disc
    return ((d.branch_sa, "branch_sa"), (d.branch_logp, "branch_logp"), (d.head[0], "head.1"),
            (d.head[1], "head.3"))


def test_batches_come_from_each_members_own_terms():
    rng = np.random.default_rng(2)
    storages, members = _members(rng)
    ens = EnsembleBC(members, storages, H, 64, 1e-3, 0.0, seed=3)
    seen = [[set(), set()] for _ in members]
    for _ in range(30):
        rows, w = ens.sample()
        local = ens.storage_rows(rows).numpy()
        x = ens.table[rows]
        for k, m in enumerate(members):
            obs, act = _rows_of(storages, m, local[k])
            norm = (obs - torch.as_tensor(m.mean, dtype=torch.float32)) / torch.as_tensor(
                m.std, dtype=torch.float32)
            assert torch.equal(x[k, :, :S], norm) and torch.equal(x[k, :, S:S + A], act)
            for t in range(2):
                for i, wt in zip(local[k, t * 64:(t + 1) * 64], w[k, t * 64:(t + 1) * 64]):
                    if t < len(m.terms):
                        j = list(m.terms[t][0]).index(i)  # a row of this term ...
                        assert float(wt) == pytest.approx(m.terms[t][1][j])  # ... with its weight
                        seen[k][t].add(int(i))
                    else:
                        assert float(wt) == 0.0  # the dummy second term weighs nothing
    for k, m in enumerate(members):
        for t, (rows, _) in enumerate(m.terms):
            assert seen[k][t] == set(rows.tolist())  # every row of the term is drawn


def test_bad_members_are_config_errors():
    storages, members = _members(np.random.default_rng(0))
    with pytest.raises(ConfigError, match="no members"):
        EnsembleBC([], storages, H, B, 1e-3, 0.0)
    bad = [Member(0, [], members[0].init, members[0].mean, members[0].std)]
    with pytest.raises(ConfigError, match="terms"):
        EnsembleBC(bad, storages, H, B, 1e-3, 0.0)
    with pytest.raises(ConfigError, match="same state and action size"):
        EnsembleBC(members, storages + [(np.zeros((5, S + 1)), np.zeros((5, A)))], H, B, 1e-3, 0)
    storages, members, _ = _dwbc_members(np.random.default_rng(0))
    with pytest.raises(ConfigError, match="DWBC members must follow"):
        EnsembleBC(members[1:] + members[:1], storages, H, B, 1e-3, 0.0)
    one_term = Member(0, members[1].terms[:1], members[1].init, members[1].mean, members[1].std,
                      members[1].dwbc)
    with pytest.raises(ConfigError, match="DWBC: 2"):
        EnsembleBC([one_term], storages, H, B, 1e-3, 0.0)
    other_clip = Member(0, members[1].terms, members[1].init, members[1].mean, members[1].std,
                        replace(members[1].dwbc, clip=(0.2, 0.8)))
    with pytest.raises(ConfigError, match="one discriminator clip"):
        EnsembleBC(members[1:] + [other_clip], storages, H, B, 1e-3, 0.0)


def test_train_ensemble_evaluates_every_member_on_schedule():
    storages, members = _members(np.random.default_rng(4))
    ens = EnsembleBC(members, storages, H, B, 3e-3, 0.0)
    calls = []

    def evaluate(policies):
        calls.append(len(policies))
        return [{"score": float(k)} for k in range(len(policies))]

    curves, wall, cpu = train_ensemble(ens, 25, 10, evaluate)
    assert calls == [3, 3, 3] and wall > 0 and cpu > 0
    assert [c["step"] for c in curves[2]] == [10, 20, 25] and curves[2][0]["score"] == 2.0


class _Rollout:
    """A stand-in for a pool's future: not done until the next evaluation round starts (the
    rollouts of a round finish while the loop runs on) or until its result is asked for."""

    def __init__(self, value):
        self.value, self.finished = value, False

    def done(self):
        return self.finished

    def result(self):
        self.finished = True
        return self.value


def test_evaluations_run_while_the_loop_goes_on():
    """Asynchronous evaluation (futures) gives the curves a blocking one gives, each from the
    weights of its own step, and `on_round` sees the finished rounds in order."""
    def score(policies):  # a number that depends on every member's current weights
        return [{"score": float(sum(v.sum() for v in p.net.state_dict().values()))}
                for p in policies]

    storages, members = _members(np.random.default_rng(5))
    sync, _, _ = train_ensemble(EnsembleBC(members, storages, H, B, 3e-3, 0.0), 25, 10, score)
    issued, seen = [], []

    def evaluate(policies):
        for f in issued:
            f.finished = True  # the previous round's rollouts are done by now
        issued[:] = [_Rollout(v) for v in score(policies)]
        return list(issued)

    ens = EnsembleBC(members, storages, H, B, 3e-3, 0.0)
    got, _, _ = train_ensemble(ens, 25, 10, evaluate,
                               on_round=lambda c: seen.append([len(x) for x in c]))
    assert got == sync
    assert seen == [[1] * 3, [2] * 3, [3] * 3]  # round 3 reported once waited for at the end


def test_methods_terms_are_their_losses_rows():
    """terms() of ILID, BC and ISW-BC over D_e ∪ D_b rebuild exactly the rows and weights each
    method's own loss samples from."""
    expert, imperfect, S2 = _synthetic()
    s_all = np.concatenate([expert["observations"], imperfect["observations"]])
    a_all = np.concatenate([expert["actions"], imperfect["actions"]])
    norm = Normalizer(torch.as_tensor(s_all.mean(0)), torch.as_tensor(s_all.std(0)))
    cfg = ILIDConfig(rollback=5, disc_steps=100, disc_hidden=32, disc_lr=3e-3, disc_batch=64)
    ilid = ILID(expert, imperfect, norm, cfg, PolicyConfig(batch_size=32, hidden=16))
    ilid.prepare(torch.Generator().manual_seed(0))
    art = ilid.artifacts
    (u_rows, alpha), (s_rows, beta) = ilid.terms()
    np.testing.assert_allclose(s_all[u_rows], art["s_u"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(a_all[u_rows], art["a_u"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(alpha, art["alpha"].numpy())
    np.testing.assert_allclose(s_all[s_rows], art["s_s"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(beta, art["beta"].numpy())
    bce = BC(expert, imperfect, PolicyConfig(), "expert")
    ((rows, w),) = bce.terms()
    np.testing.assert_allclose(s_all[rows], bce.s.numpy(), rtol=1e-6)
    assert np.all(w == 1)
    isw = ISWBC(expert, imperfect, norm, PolicyConfig(), BaselineConfig(iswbc_stratified=False),
                cfg)
    isw.prepare(torch.Generator().manual_seed(0))
    ((rows, w),) = isw.terms()
    np.testing.assert_allclose(s_all[rows], isw.s_u.numpy(), rtol=1e-6)
    np.testing.assert_allclose(w, isw.w.numpy())
    isw.bcfg = BaselineConfig()  # stratified: D_e and D_b, weights scaled by their shares
    (e_rows, e_w), (b_rows, b_w) = isw.terms()
    n_e, n_u = len(expert["observations"]), len(s_all)
    np.testing.assert_array_equal(np.r_[e_rows, b_rows], np.arange(n_u))
    np.testing.assert_allclose(np.r_[e_w * n_u / n_e, b_w * n_u / (n_u - n_e)], isw.w.numpy(),
                               rtol=1e-5)
    dwbc = DWBC(expert, imperfect, norm, PolicyConfig(), BaselineConfig(), cfg)
    (e_rows, e_w), (o_rows, o_w) = dwbc.terms()
    np.testing.assert_allclose(s_all[e_rows], dwbc.s_e.numpy(), rtol=1e-6)
    np.testing.assert_allclose(s_all[o_rows], dwbc.s_o.numpy(), rtol=1e-6)
    np.testing.assert_allclose(a_all[o_rows], dwbc.a_o.numpy(), rtol=1e-6)
    assert np.all(e_w == 1) and np.all(o_w == 1)


def test_bench_ensemble_path_end_to_end(tmp_path, monkeypatch):
    """`bench --ensemble` on the tiny setting: every (seed, arm) gets a row (DWBC's too, from
    the same lockstep ensemble), members are prepared exactly as `train.fit` prepares the same
    run (DWBC's discriminator included), the
    stages are timed in stages.log and the curves written as the evaluations come in, and the
    summary works without a runtime check (the policy loop is shared)."""
    from offline_il_select import bench

    tiny = "configs/offline_il_select/tiny.yaml"
    monkeypatch.setattr(bench, "SETTINGS", {"tiny": tiny, "tiny-random": tiny})
    arms = ["ilid", "bc_expert", "dwbc", "iswbc", "ilid_no_beta"]  # the bench's order
    writes, write = [], bench.atomic_write_json

    def record(path, obj):  # which rows.json versions were written, in order
        if Path(path).name == "rows.json":
            writes.append([bool(r["ood"]) for r in obj])
        write(path, obj)

    monkeypatch.setattr(bench, "atomic_write_json", record)
    rows, studies = bench.ensemble_train_rows(tmp_path, ["tiny"], [0, 1], arms, True, 40, 2,
                                              "cpu")
    # the in-family rows are written before the out-of-family evaluation, then completed
    assert writes[0] == [False] * 10 and writes[-1] == [True] * 10
    assert [(r["seed"], r["arm"]) for r in rows] == [(s, a) for s in (0, 1) for a in arms]
    for r in rows:
        assert r.get("timing") == "ensemble"
        assert [c["step"] for c in r["curve"]] == [8, 16, 24, 32, 40]
        assert set(r["ood"]) == {"heavy", "slippery"} and np.isfinite(r["score"])
    solo = bench.run_job(("tiny", 1, "ilid", True, 40, "cpu"))  # the single-run path
    ens = next(r for r in rows if r["seed"] == 1 and r["arm"] == "ilid")
    for k in ("n_selected", "beta_mean", "alpha_max", "n_selected_expert"):
        assert ens[k] == solo[k], k  # the same preparation
    no_beta = next(r for r in rows if r["seed"] == 1 and r["arm"] == "ilid_no_beta")
    assert no_beta["beta_mean"] == 1.0 and no_beta["n_selected"] == ens["n_selected"]
    stages = (tmp_path / "stages.log").read_text()
    for what in ("datasets ready", "prepared tiny seed 1 ilid+ilid_no_beta",
                 "prepared tiny seed 1 dwbc", "ensemble of 10", "evaluations up to step 40 done"):
        assert what in stages, what
    partial = bench.read_json(tmp_path / "curves_partial.json")
    assert sorted((c["seed"], c["arm"], str(c["curve"])) for c in partial) == sorted(
        (r["seed"], r["arm"], str(r["curve"])) for r in rows)
    (dw,) = bench.prep_job((("tiny", 1, "dwbc", True, 40, "cpu"), ("dwbc",)))
    _, _, method, policy = bench.setup(bench._arm_cfg("tiny", "dwbc", 1, True, 40),
                                       bench._data(bench._arm_cfg("tiny", "dwbc", 1, True, 40)))
    for name, x in method.disc.state_dict().items():  # fit's initial discriminator and policy
        assert torch.equal(dw["dwbc"].disc[name], x), name
    for name, x in policy.net.state_dict().items():
        assert torch.equal(dw["init"][name], x), name
    rep = bench.summarise(rows, studies, True, ["x"], 40)
    assert not [c for c in rep.checks if "BC-E training" in c.name]
    assert any(n.startswith("runtime: every row trained in an --ensemble") for n in rep.notes)
    assert (tmp_path / "rows.json").is_file()


def test_no_beta_rides_on_ilids_preparation():
    """ILID without beta prepared with ILID (one preparation) equals its own preparation."""
    from offline_il_select import bench

    job = ("tiny", 0, "ilid", True, 40, "cpu")
    assert bench.prep_units([job, job[:2] + ("ilid_no_beta",) + job[3:]]) == [
        (job, ("ilid", "ilid_no_beta"))]
    alone = job[:2] + ("ilid_no_beta",) + job[3:]
    assert bench.prep_units([alone]) == [(alone, ("ilid_no_beta",))]
    tiny = {"tiny": "configs/offline_il_select/tiny.yaml"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench, "SETTINGS", tiny)
        ilid, rider = bench.prep_job((job, ("ilid", "ilid_no_beta")))
        (own,) = bench.prep_job((alone, ("ilid_no_beta",)))
    assert rider["job"] == own["job"] and rider["cfg"] == own["cfg"]
    assert not rider["cfg"].ilid.use_beta and ilid["cfg"].ilid.use_beta
    for (r1, w1), (r2, w2) in zip(rider["terms"], own["terms"], strict=True):
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(w1, w2)
    assert np.all(rider["terms"][1][1] == 1) and not np.all(ilid["terms"][1][1] == 1)
    for k in ("n_selected", "beta_mean", "alpha_max", "alpha_mean_expert", "selection_quality"):
        assert rider["prep"][k] == own["prep"][k], k
    np.testing.assert_equal(rider["expert_rows"], own["expert_rows"])  # nan == nan here
    for name, x in own["init"].items():
        torch.testing.assert_close(rider["init"][name], x)


def test_evaluation_without_the_datasets_scores_as_with_them(monkeypatch):
    from offline_il_select import bench
    from offline_il_select.train import evaluate

    monkeypatch.setattr(bench, "SETTINGS", {"tiny": "configs/offline_il_select/tiny.yaml"})
    data = bench._data(bench._arm_cfg("tiny", "ilid", 0, True, 40))
    task = bench.eval_task("tiny", True, 40)
    assert task.imperfect == {} and len(task.expert["actions"]) == 0
    S, A = data.expert["observations"].shape[1], data.expert["actions"].shape[1]
    torch.manual_seed(0)
    pol = TanhGaussianPolicy(S, A, 32, Normalizer(torch.zeros(S), torch.ones(S)))
    job = (task, 3, pol.net.state_dict(), np.zeros(S), np.ones(S), 32, 2, "in")
    assert bench.eval_job(job) == evaluate(pol, data, 2, seed=100_000 + 3000)


def test_steptime_times_the_ensemble_and_refuses_bad_counts(tmp_path):
    from offline_il_select.experiments.steptime import main, measure_ensemble, parse_members

    ms = measure_ensemble(torch.device("cpu"), parse_members("1,2,0+2,1+1"), n_b=1500, n=6)
    assert set(ms) == {"1", "2", "0+2", "1+1"}
    assert all(v["step_ms"] > 0 and v["per_member_ms"] == pytest.approx(v["step_ms"] / int(
        sum(int(x) for x in k.split("+")))) for k, v in ms.items())
    for bad in ("x", "0", "1+x", "1+2+3", "0+0", "-1+2"):
        with pytest.raises(ConfigError, match="--members"):
            main([f"--members={bad}", "--out", str(tmp_path / "s")])
    assert not (tmp_path / "s").exists()


def test_launch_proxy_counts_kernels_not_views_or_scalars():
    """The launch proxy on ops whose kernel count is known: a matmul and a ReLU are 2, a view 0,
    an add of a Python scalar 1, a foreach add over three tensors 1 (three ops on a CPU)."""
    from offline_il_select.experiments.stage_costs import launch_count

    x, w = torch.randn(8, 4), torch.randn(4, 3)
    ts = [torch.zeros(3) for _ in range(3)]
    assert launch_count(lambda: torch.relu(x @ w)) == 2
    assert launch_count(lambda: x.view(-1)) == 0
    assert launch_count(lambda: x + 1.0) == 1
    assert launch_count(lambda: torch._foreach_add_(ts, 1.0)) == 1


def test_stage_costs_counts_ops_and_refuses_bad_flags(tmp_path):
    """The ensemble's step launches about as many kernels for 16 members as for 1, DWBC members
    included (what makes it cheap on a GPU), and fewer than one single run's step; DWBC's single
    step (policy + its discriminator) launches more than BC's."""
    from offline_il_select.experiments.stage_costs import main, step_ops

    ops = step_ops(S=3, A=2, B=8, n_rows=200, hidden=16, members=("1", "16", "0+1", "8+8"))
    n, leaf = ops["launches"], ops["leaf_ops"]
    assert 0 < n["ensemble_16"] <= 1.05 * n["ensemble_1"] < n["bc_foreach"]
    assert n["ensemble_0+1"] <= n["ensemble_8+8"] <= 1.05 * n["ensemble_0+1"] < n["dwbc_foreach"]
    assert n["dwbc_foreach"] > 2 * n["bc_foreach"] and n["bc_foreach"] < n["bc"]
    assert leaf["dwbc"] > 2 * leaf["bc"] and leaf["ilid"] >= leaf["bc"]
    # discriminators in lockstep: 6 (or 12, 6 penalised) launch fewer kernels than one alone
    assert n["disc_lockstep_6+0"] < n["disc"] < n["disc_gp"]
    assert n["disc_lockstep_6+0"] < n["disc_lockstep_6+6"] <= n["disc_gp"]
    for flags in (["--setting", "walker-random"], ["--disc-steps", "0"], ["--set", "x=1"],
                  ["--prep-seeds", "-1"]):
        with pytest.raises(ConfigError):
            main(flags + ["--out", str(tmp_path / "s")])
    assert not (tmp_path / "s").exists()


def test_a_dwbc_part_writes_rows_only(tmp_path, monkeypatch):
    """`bench --ensemble --arms dwbc` (a part of the bench): rows.json, no summary; the same
    command again gives the same rows (the ensemble's batches are seeded)."""
    from offline_il_select import bench

    tiny = "configs/offline_il_select/tiny.yaml"
    monkeypatch.setattr(bench, "SETTINGS", {"tiny": tiny, "tiny-random": tiny})
    flags = ["--ensemble", "--quick", "--arms", "dwbc", "--settings", "tiny", "--steps", "40",
             "--seed-list", "0", "--out", str(tmp_path / "p")]
    assert bench.main(flags) == 0
    first = bench.read_json(tmp_path / "p" / "rows.json")
    assert [r["arm"] for r in first] == ["dwbc"] and not (tmp_path / "p" / "bench.json").exists()
    assert bench.main(flags) == 0
    again = bench.read_json(tmp_path / "p" / "rows.json")
    assert again[0]["curve"] == first[0]["curve"] and again[0]["timing"] == "ensemble"
