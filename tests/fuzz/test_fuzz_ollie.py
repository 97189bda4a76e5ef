"""Fuzz: ollie's loaders (the typed train config, a run directory's model.json + safetensors
policy, the bench's rows.json as `experiments.hop_rate` reads it). Mutated files are either
read as valid or refused in one line naming the file; sizes in model.json are bounded before
anything is allocated."""

import json

import pytest
import torch
from fuzz_harness import Target, assert_clean, fuzz_settings, mutated_files_test
from hypothesis import given
from hypothesis import strategies as st

from ollie.config import TrainConfig, load_train_config
from ollie.eval import load_policy
from ollie.experiments.hop_rate import load_rows, offline_scores
from shared.config import resolve_config
from shared.il.models import Normalizer, TanhGaussianPolicy


def _seed_config(d):
    (d / "cfg.yaml").write_bytes(resolve_config("configs/ollie/tiny.yaml").read_bytes())


def _check_config(cfg, d):
    assert isinstance(cfg, TrainConfig)


def _seed_run(d):
    from shared.io import save_weights

    S, A, hidden = 5, 2, 8
    pol = TanhGaussianPolicy(S, A, hidden, Normalizer(torch.zeros(S), torch.ones(S)))
    save_weights(d / "policy.safetensors", pol.state_dict(), {"kind": "ollie.weights"})
    (d / "model.json").write_text(json.dumps({"env_id": "Hopper-v5", "obs_dim": S,
                                              "act_dim": A, "hidden": hidden}))


def _check_policy(res, d):
    pol, meta = res
    obs = torch.zeros(1, meta["obs_dim"])
    assert pol.act(obs).shape == (1, meta["act_dim"])


def _seed_rows(d):
    rows = [{"setting": "hopper", "seed": k, "arm": arm, "offline_score": 50.0 + k,
             "online_curve": [[0, 1.0]]} for k in range(3) for arm in ("ollie", "naive_gail")]
    (d / "rows.json").write_text(json.dumps(rows))


def _load_rows(d):
    return offline_scores(load_rows([str(d / "rows.json")]))


def _check_rows(res, d):
    assert isinstance(res, dict)
    for by_method in res.values():
        for per_seed in by_method.values():
            assert all(type(k) is int and isinstance(v, float) for k, v in per_seed.items())


TARGETS = [
    Target("ollie-config", _seed_config, lambda d: load_train_config(str(d / "cfg.yaml")),
           _check_config, ("cfg.yaml",)),
    Target("ollie-run", _seed_run, load_policy, _check_policy,
           ("model.json", "policy.safetensors")),
    Target("ollie-rows", _seed_rows, _load_rows, _check_rows, ("rows.json",)),
]
BY_NAME = {t.name: t for t in TARGETS}


@pytest.fixture(scope="module", autouse=True)
def _warm(tmp_path_factory):
    """Load the valid seed once: the first meta-device build imports torch modules lazily,
    which the harness's memory bound (Python allocations of the call) would count."""
    d = tmp_path_factory.mktemp("warm")
    _seed_run(d)
    load_policy(d)


test_mutated_files = mutated_files_test(TARGETS, 200, files=2)


@fuzz_settings(200)
@given(obs=st.sampled_from([5, 0, -1, 10**7, "5", None, 5.0, True]),
       hidden=st.sampled_from([8, 0, -8, 10**6, "8", [8], 8.0, None]))
def test_structured_model_json(tmp_path_factory, obs, hidden):
    t = BY_NAME["ollie-run"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    meta = json.loads((d / "model.json").read_text())
    meta.update(obs_dim=obs, hidden=hidden)
    (d / "model.json").write_text(json.dumps(meta))
    kind = assert_clean(t, d)
    valid = obs == 5 and type(obs) is int and hidden == 8 and type(hidden) is int
    assert (kind == "accepted") == valid


@pytest.mark.parametrize("shape", ["[1e999, 2]", "[2.0, 8]", "[true, 8]", '"28"'])
def test_safetensors_header_sizes_must_be_integers(tmp_path, shape):
    """Found by the mutation test above: a header size of 1e999 raised OverflowError."""
    import struct

    from shared.errors import DataError
    from shared.validate import safetensors_shapes

    head = ('{"w": {"dtype": "F32", "shape": ' + shape + ', "data_offsets": [0, 64]}}').encode()
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", len(head)) + head + bytes(64))
    with pytest.raises(DataError, match="malformed header entry for tensor 'w'"):
        safetensors_shapes(path)
