"""Ownership: key commitments, registration closing at distribution, claim resolution, and the
server's embedding-progress report."""

import copy
from pathlib import Path

import pytest
import torch

from robwe.attacks import overwrite_attack
from robwe.config import RobWEConfig
from robwe.federation import build_federation
from robwe.fedrep import live_weight_vector
from robwe.models import head_vector
from robwe.ownership import Claim, OwnershipRegistry, RegistrationClosed, commit
from robwe.robustness import client_model
from robwe.watermark import WatermarkKey, bit_accuracy, key_generator, make_key, watermark_loss
from shared.config import load_config
from shared.fl import run_rounds

TINY = Path(__file__).resolve().parents[2] / "configs" / "robwe" / "tiny.yaml"


def tiny_cfg(**sections) -> RobWEConfig:
    return load_config(TINY, RobWEConfig, [f"{s}.{k}={v}" for s, kv in sections.items()
                                           for k, v in kv.items()])


def _embed(vec: torch.Tensor, key: WatermarkKey, steps: int = 200) -> torch.Tensor:
    vec = vec.clone().requires_grad_()
    for _ in range(steps):
        (g,) = torch.autograd.grad(watermark_loss(key, vec), vec)
        vec = (vec - 0.5 * g).detach().requires_grad_()
    return vec.detach()


def test_commitment_binds_every_part_of_the_key_and_the_salt():
    key = make_key(8, 30, key_generator(0, 1, 0), offset=4)
    ref = commit(key, b"salt")
    assert ref == commit(copy.deepcopy(key), b"salt") and len(ref) == 64
    assert commit(key, b"other") != ref
    flipped = copy.deepcopy(key)
    flipped.bits[3] = -flipped.bits[3]
    moved = WatermarkKey(key.matrix, key.bits, offset=5)
    nudged = copy.deepcopy(key)
    nudged.matrix[0, 0] += 1e-3
    placed = WatermarkKey(key.matrix, key.bits, index=torch.arange(30) * 2)
    assert len({ref, commit(flipped, b"salt"), commit(moved, b"salt"),
                commit(nudged, b"salt"), commit(placed, b"salt")}) == 5


def test_registration_closes_when_the_model_is_distributed():
    reg = OwnershipRegistry()
    assert reg.register("owner", {"head": "ab"}) == 0
    assert reg.register("peer", {"head": "cd"}) == 1
    with pytest.raises(RegistrationClosed):
        reg.register("owner", {"head": "ef"})  # one registration per claimant
    reg.close(1)
    reg.close(5)  # the first distribution counts
    assert reg.closed_at == 1
    with pytest.raises(RegistrationClosed, match="after the model was distributed in round 1"):
        reg.register("thief", {"head": "12"}, rnd=9)


def test_after_an_overwrite_both_keys_verify_but_only_the_owner_is_named():
    owner = make_key(32, 400, key_generator(0, 1, 1))
    vec = _embed(torch.randn(400) * 0.01, owner)
    thief = make_key(32, 400, key_generator(0, 1, 2))
    stolen = _embed(vec, thief, steps=20)  # an overwrite that keeps the owner's mark
    assert bit_accuracy(owner, stolen) >= 0.9 and bit_accuracy(thief, stolen) == 1.0

    reg = OwnershipRegistry(threshold=0.9)
    reg.register("owner", {"head": commit(owner, b"o")})
    peer = make_key(32, 400, key_generator(0, 1, 3))
    reg.register("peer", {"head": commit(peer, b"p")})
    reg.close(1)
    with pytest.raises(RegistrationClosed):
        reg.register("thief", {"head": commit(thief, b"t")})
    v = reg.resolve([Claim("thief", {"head": thief}, b"t"),
                     Claim("owner", {"head": owner}, b"o"),
                     Claim("peer", {"head": peer}, b"p"),
                     Claim("impostor", {"head": owner}, b"o")], {"head": stolen})
    assert v.owner == "owner"
    assert "not registered" in v.refused["thief"] and "not registered" in v.refused["impostor"]
    assert "does not verify" in v.refused["peer"]  # a registered key that is not in the model
    # revealing someone else's key under one's own registration fails the commitment
    v = reg.resolve([Claim("peer", {"head": owner}, b"p")], {"head": stolen})
    assert v.owner is None and "commitment" in v.refused["peer"]
    # two registered keys that both verify: the earlier registration wins
    both = _embed(stolen, peer, steps=30)
    assert bit_accuracy(peer, both) == 1.0 and bit_accuracy(owner, both) >= 0.9
    v = reg.resolve([Claim("peer", {"head": peer}, b"p"), Claim("owner", {"head": owner}, b"o")],
                    {"head": both})
    assert v.owner == "owner" and "registered after 'owner'" in v.refused["peer"]
    # a mark removed below threshold no longer names its owner
    assert reg.resolve([Claim("owner", {"head": owner}, b"o")],
                       {"head": torch.randn(400)}).owner is None


@pytest.fixture(scope="module")
def run():
    cfg = tiny_cfg(fl={"rounds": 4, "catch_up": 2}, threat={"malicious_frac": 0.0})
    fed = build_federation(cfg)
    private: dict = {}
    run_rounds(fed.strategy, fed.client, fed.client_ids, cfg.fl.rounds, private=private)
    return fed, private


def test_federation_registers_before_round_1_and_refuses_a_thiefs_later_claim(run):
    fed, private = run
    reg = fed.strategy.registry
    assert reg.closed_at == 1 and set(reg.entries) == {str(c) for c in fed.client_ids}
    assert set(reg.first_verified) == {str(c) for c in fed.client_ids}  # every slice verified
    assert all(1 <= r["slice"] <= 4 for r in reg.first_verified.values())
    c = 0
    model = client_model(fed, private, c)
    gen = key_generator(0, 77, c)
    head = make_key(fed.cfg.watermark.head_bits, head_vector(model).numel(), gen)
    sl = fed.slice_keys[c]
    sk = WatermarkKey(torch.randn(sl.num_bits, sl.length, generator=gen), sl.bits.neg(),
                      sl.offset, sl.stride, 1, sl.index)
    x, y = fed.client.x[fed.client.train[c]], fed.client.y[fed.client.train[c]]
    stolen = overwrite_attack(model, x, y, head, sk, fed.names, 60, fed.cfg.fl, (5.0, 50.0),
                              gen)
    vecs = {"head": head_vector(stolen), "slice": live_weight_vector(stolen, fed.names)}
    assert bit_accuracy(head, vecs["head"]) >= 0.9  # the thief's own mark is in the model
    with pytest.raises(RegistrationClosed):
        reg.register("thief", {"head": commit(head, b"t"), "slice": commit(sk, b"t")}, rnd=5)
    clean = {"head": head_vector(model), "slice": live_weight_vector(model, fed.names)}
    mine = Claim(str(c), {"head": fed.head_keys[c], "slice": sl}, fed.salts[c])
    verdict = reg.resolve([Claim("thief", {"head": head, "slice": sk}, b"t"), mine], clean)
    assert verdict.owner == str(c) and "not registered" in verdict.refused["thief"]


def test_server_tracks_embedding_progress_and_catches_up(run):
    fed, _ = run
    st = fed.strategy
    assert set(st.progress) == set(fed.client_ids)
    # progress equals the global body's bits under each true key (the report's reference)
    y = live_weight_vector(client_model(fed, {}, 0), fed.names)
    for c, key in fed.slice_keys.items():
        assert st.progress[c] == pytest.approx(bit_accuracy(key, y))
    assert st.under_embedded() == {c: b for c, b in st.progress.items() if b < 0.99}


def test_catch_up_adds_the_lowest_under_embedded_clients():
    fed = build_federation(tiny_cfg(fl={"fraction": 0.34, "catch_up": 2},
                                    threat={"malicious_frac": 0.0}))
    st = fed.strategy
    st.progress = {0: 1.0, 1: 0.5, 2: 0.995, 3: 0.7, 4: 0.6, 5: 1.0}
    base = set(super(type(st), st).configure_fit(3, fed.client_ids))
    plan = set(st.configure_fit(3, fed.client_ids))
    behind = sorted((b, c) for c, b in st.progress.items() if b < 0.99 and c not in base)
    assert plan == base | {c for _, c in behind[:2]} and st.caught_up[3]
    st.catch_up = 0
    assert set(st.configure_fit(3, fed.client_ids)) == base


def test_the_final_report_names_every_client_below_target(caplog):
    from robwe.train import summarise

    cfg = tiny_cfg(fl={"rounds": 1, "fraction": 0.34, "catch_up": 0},
                   threat={"malicious_frac": 0.0})
    fed = build_federation(cfg)
    private: dict = {}
    run_rounds(fed.strategy, fed.client, fed.client_ids, 1, private=private)
    with caplog.at_level("WARNING"):
        s = summarise(fed, private)
    ref = {str(c) for c in fed.client_ids
           if min(s["clients"]["head_bits"][c], s["clients"]["slice_bits"][c]) < 0.99}
    assert ref and set(s["under_embedded"]) == ref  # one round of 2 of 6 clients: gaps
    assert "below 0.99 watermark bits" in caplog.text
