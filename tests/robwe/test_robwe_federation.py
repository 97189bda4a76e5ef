"""A tiny RobWE federation end to end: watermarks embedded, a forger flagged, on the
in-process loop and on Flower; plus the train / eval CLIs (progress, resume, bad input)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from robwe.config import RobWEConfig
from robwe.federation import build_federation, evaluate_clients
from robwe.robustness import prune_curve, uniqueness
from shared.config import load_config
from shared.errors import ConfigError
from shared.fl import run_rounds

TINY = Path(__file__).resolve().parents[2] / "configs" / "robwe" / "tiny.yaml"


def tiny_cfg(**sections) -> RobWEConfig:
    """configs/robwe/tiny.yaml with `section={field: value}` overrides."""
    return load_config(TINY, RobWEConfig, [f"{s}.{k}={v}" for s, kv in sections.items()
                                           for k, v in kv.items()])


@pytest.fixture(scope="module")
def trained():
    fed = build_federation(tiny_cfg())
    private = {}
    hist = run_rounds(fed.strategy, fed.client, fed.client_ids, 4, private=private)
    return fed, private, hist


def test_watermarks_embedded_and_forger_flagged(trained):
    fed, private, hist = trained
    assert len(fed.malicious) == 1
    ev = evaluate_clients(fed, private)
    honest = [c for c in fed.client_ids if c not in fed.malicious]
    assert ev["head_bits"][honest].min() >= 0.99
    assert ev["slice_bits"][honest].min() >= 0.99
    assert set(fed.strategy.banned) == set(fed.malicious)
    assert hist[0]["rejected"] == fed.malicious
    # the forger's upload reads ~ 1 - tampered_frac under the true key
    m = fed.malicious[0]
    assert 0.8 <= fed.strategy.upload_bits[1][m] < 0.97


def test_uniqueness_and_pruning_on_trained_models(trained):
    fed, private, _ = trained
    u = uniqueness(fed, private)
    assert np.diag(u).min() >= 0.99
    assert 0.3 < u[~np.eye(6, dtype=bool)].mean() < 0.7
    curve = prune_curve(fed, private, [0, 1], [0.0, 0.9])
    ev = evaluate_clients(fed, private)
    assert curve[0]["acc"] == pytest.approx(ev["acc"][[0, 1]].mean())  # rate 0 = untouched
    assert curve[0]["head_bits"] >= 0.99 and [r["rate"] for r in curve] == [0.0, 0.9]


def test_seeded_arms_share_data_and_initial_weights():
    a = build_federation(tiny_cfg())
    b = build_federation(tiny_cfg(watermark={"head": "false", "slice": "false"}))
    assert all(torch.equal(a.strategy.global_state[k], b.strategy.global_state[k])
               for k in a.strategy.global_state)
    assert all(np.array_equal(x, y) for x, y in zip(a.data.train, b.data.train))


def test_slice_too_short_is_a_config_error():
    with pytest.raises(ConfigError, match="too short"):
        build_federation(tiny_cfg(watermark={"slice_bits": 500}))


def test_flower_inprocess_matches_the_loop(trained):
    from shared.fl.flower import make_client_app, make_server_app, run_flower

    fed, _, hist = trained
    fl = build_federation(tiny_cfg())
    app, result = make_server_app(fl.strategy, 4)
    run_flower(app, make_client_app(fl.client), 6, engine="inprocess")
    assert [h["rejected"] for h in result["history"]] == [h["rejected"] for h in hist]
    for k, v in fed.strategy.global_state.items():
        assert torch.allclose(fl.strategy.global_state[k], v, atol=1e-6)
    honest = [c for c in range(6) if c not in fl.malicious]
    assert sorted(result["evaluate"]) == honest
    assert min(result["evaluate"][c]["head_bits"] for c in honest) >= 0.99
    assert min(result["evaluate"][c]["slice_bits"] for c in honest) >= 0.99


_ok, _why = __import__("shared.fl.flower", fromlist=["x"]).simulation_available()


@pytest.mark.skipif(not _ok, reason=_why)
def test_flower_simulation_engine_embeds_and_flags():
    from shared.fl.flower import make_client_app, make_server_app, run_flower

    fl = build_federation(tiny_cfg(fl={"rounds": 3}))
    app, result = make_server_app(fl.strategy, 3)
    run_flower(app, make_client_app(fl.client), 6, engine="simulation")
    assert set(fl.strategy.banned) == set(fl.malicious)
    honest = [c for c in range(6) if c not in fl.malicious]
    assert min(result["evaluate"][c]["head_bits"] for c in honest) >= 0.99
    assert min(result["evaluate"][c]["slice_bits"] for c in honest) >= 0.99


def test_cnn_body_on_digits_runs_a_round():
    fed = build_federation(tiny_cfg(model={"kind": "cnn", "channels": "[4, 8]", "cnn_fc": 32},
                                    fl={"rounds": 1, "head_epochs": 1},
                                    watermark={"slice_bits": 20}))
    assert fed.template.shared_weight_names()[0] == "body.0.weight"  # conv weights carry y
    hist = run_rounds(fed.strategy, fed.client, fed.client_ids, 1)
    assert hist[0]["sampled"] == list(range(6))
