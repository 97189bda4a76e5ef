"""Preparations in lockstep (`ensemble_prep`) against each run's own `prepare` (the reference),
and dataset rollouts in slices against one rollout."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from offline_il_select import ensemble_prep
from offline_il_select.baselines import BC, ISWBC
from offline_il_select.config import BaselineConfig, ILIDConfig, PolicyConfig
from offline_il_select.ensemble_prep import prepare_many, train_discriminators
from offline_il_select.ilid import ILID
from offline_il_select.models import Discriminator, Normalizer
from shared.errors import ConfigError
from tests.offline_il_select.test_offline_il_select_wbc import _synthetic

CFG = ILIDConfig(rollback=5, disc_steps=60, disc_hidden=32, disc_lr=3e-3, disc_batch=64)


def _settings():
    """Two settings: the synthetic D_e / D_b, and one with half of D_b's episodes, shifted."""
    expert, imperfect, _ = _synthetic()
    cut = {k: v[:600].copy() for k, v in imperfect.items()}
    cut["observations"][:, 1] += 0.5
    cut["next_observations"][:, 1] += 0.5
    out = []
    for b in (imperfect, cut):
        s = np.concatenate([expert["observations"], b["observations"]])
        out.append((expert, b, Normalizer(torch.as_tensor(s.mean(0)), torch.as_tensor(s.std(0)))))
    return out


def _runs():
    """(seed, build) of each run: ILID on both settings (one with alpha unclipped, one without
    beta), ISW-BC on both (penalised, trained beside ILID's unpenalised D(s, a)), BC-E."""
    (e, b, n), (e2, b2, n2) = _settings()
    pc = PolicyConfig(batch_size=32, hidden=16)
    return [(0, lambda: ILID(e, b, n, CFG, pc)),
            (1, lambda: ILID(e, b, n, replace(CFG, clip_alpha=False), pc)),
            (2, lambda: ILID(e2, b2, n2, replace(CFG, use_beta=False), pc)),
            (3, lambda: ISWBC(e, b, n, pc, BaselineConfig(), CFG)),
            (4, lambda: ISWBC(e2, b2, n2, pc, BaselineConfig(iswbc_grad_penalty=3.0), CFG)),
            (5, lambda: BC(e, b, pc, "expert"))]


def _discs(m):
    return [m.state_disc, m.sa_disc] if isinstance(m, ILID) else [getattr(m, "disc", None)]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_lockstep_preparations_equal_each_runs_own(monkeypatch, device):
    """Every run's discriminators (trained together, in chunks of drawn batches), d(s) over D_b,
    D_s, beta, alpha and ISW-BC's weights equal those of its own `prepare(gen)`, and its generator
    ends in the same state (the same batches were drawn)."""
    monkeypatch.setattr(ensemble_prep, "DRAW_CHUNK", 25)  # 60 steps: chunks of 25, 25, 10
    refs, ref_gens, methods, gens = [], [], [], []
    for seed, build in _runs():
        torch.manual_seed(seed)
        r, g = build(), torch.Generator().manual_seed(seed)
        refs.append((r, r.prepare(g)))
        ref_gens.append(g)
        torch.manual_seed(seed)
        m = build()
        if isinstance(m, ILID):
            m.init_discriminators()
        elif isinstance(m, ISWBC):
            m.init_discriminator()
        methods.append(m)
        gens.append(torch.Generator().manual_seed(seed))
    stages = []
    preps = prepare_many(methods, gens, device, stages.append)
    tol = {"rtol": 1e-4, "atol": 1e-5} if device == "cpu" else {"rtol": 1e-3, "atol": 1e-4}
    assert len(stages) == 2 and "5 discriminators" in stages[1]  # 3 D(s, a) + 2 c(s, a)
    for (ref, ref_prep), ref_g, m, g, prep in zip(refs, ref_gens, methods, gens, preps):
        assert torch.equal(g.get_state(), ref_g.get_state())
        for d, dr in zip(_discs(m), _discs(ref)):
            if d is None:
                continue
            for name, x in dr.net.state_dict().items():
                torch.testing.assert_close(d.net.state_dict()[name].cpu(), x, **tol)
        assert prep["prep_s"] > 0 and prep["prep_cpu_s"] >= 0
        for k, v in ref_prep.items():
            assert prep[k] == pytest.approx(v, rel=tol["rtol"], nan_ok=True), k
        if isinstance(m, ILID):
            a, ar = m.artifacts, ref.artifacts
            torch.testing.assert_close(a["d_next"], ar["d_next"], **tol)
            assert torch.equal(a["selected"], ar["selected"]) and 0 < int(a["selected"].sum())
            for k in ("s_s", "a_s", "beta", "s_u", "a_u"):
                assert torch.equal(a[k].cpu(), ar[k]), k
            torch.testing.assert_close(a["alpha"].cpu(), ar["alpha"], **tol)
            assert not torch.equal(a["alpha"], torch.ones_like(a["alpha"]))
        if isinstance(m, ISWBC):
            torch.testing.assert_close(m.w.cpu(), ref.w, **tol)
    assert not torch.allclose(methods[0].sa_disc.net[0].weight, methods[1].sa_disc.net[0].weight)


def test_the_penalty_moves_only_its_own_member():
    """In one group a penalised member trains as alone, and an unpenalised member beside it is
    untouched by the penalty (its weights equal a run without any penalised member)."""
    rng = np.random.default_rng(0)
    pos, neg = (torch.as_tensor(rng.normal(size=(50, 3)) + c, dtype=torch.float32)
                for c in (1, 0))

    def discs():
        torch.manual_seed(0)
        return [Discriminator(3, 16), Discriminator(3, 16)]

    def train(penalties):
        ds = discs()
        train_discriminators(ds, [(pos, neg)] * 2, [torch.Generator().manual_seed(i)
                                                    for i in range(2)], 20, 8, 1e-2, 0.0,
                             penalties)
        return [d.net.state_dict() for d in ds]

    both, plain = train([0.0, 5.0]), train([0.0, 0.0])
    for name, x in plain[0].items():
        torch.testing.assert_close(both[0][name], x, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(both[1]["0.weight"], plain[1]["0.weight"], atol=1e-4)


def test_members_of_other_sizes_or_counts_are_refused():
    pos = torch.zeros(4, 3)
    with pytest.raises(ConfigError, match="one input size"):
        train_discriminators([Discriminator(3, 8), Discriminator(4, 8)],
                             [(pos, pos), (torch.zeros(4, 4),) * 2],
                             [torch.Generator()] * 2, 1, 2, 1e-3, 0.0, [0.0, 0.0])
    with pytest.raises(ConfigError, match="one set pair"):
        train_discriminators([Discriminator(3, 8)], [(pos, pos)], [torch.Generator()] * 2, 1, 2,
                             1e-3, 0.0, [0.0])


@pytest.mark.parametrize("env,kind", [("Hopper-v5", "random"),
                                      ("HalfCheetah-v5", "medium_replay")])
def test_rollout_slices_are_the_whole_dataset(env, kind, tmp_path, monkeypatch):
    """Episodes rolled out in slices of whole batches (`first`) and concatenated, and
    `dataset(parts=3)`, give one rollout's arrays bit for bit (random actions; a policy whose
    episodes all run to the cap)."""
    from shared.il.generate import dataset, policy_path
    from shared.il.policy import load_policy
    from shared.il.rollout import BATCH, rollout

    pol = None if kind == "random" else load_policy(policy_path(env, "medium"))[0]
    n = 2 * BATCH + 3  # slices of one batch, one batch and the 3 left
    whole = rollout(env, n, 7, kind, pol, max_steps=12)
    parts = [rollout(env, m, 7, kind, pol, max_steps=12, first=f)
             for f, m in ((0, BATCH), (BATCH, BATCH), (2 * BATCH, 3))]
    monkeypatch.setenv("PAPERBENCH_CACHE", str(tmp_path))
    sliced = dataset(env, kind, n, 7, max_steps=12, parts=3)
    assert set(whole) == set(sliced)
    for k, v in whole.items():
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), v, err_msg=k)
        np.testing.assert_array_equal(sliced[k], v, err_msg=k)
    assert len(whole["rewards"]) > n  # several steps an episode
