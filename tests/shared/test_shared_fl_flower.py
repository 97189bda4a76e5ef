"""shared.fl.flower: the same Strategy and FLClient on Flower give the in-process result."""

import pytest
import torch

pytest.importorskip("flwr", reason="Flower (paperbench[fl]) not installed")

from test_shared_fl import DropOdd, MeanClient  # noqa: E402

from shared.fl import FedAvg, run_rounds  # noqa: E402
from shared.fl.flower import (  # noqa: E402
    make_client_app,
    make_server_app,
    run_flower,
    simulation_available,
)


@pytest.mark.parametrize("strategy_cls", [FedAvg, DropOdd])
def test_flower_inprocess_matches_run_rounds(strategy_cls):
    ref = strategy_cls({"w": torch.zeros(())}, fraction=0.5, seed=1)
    private = {}
    hist = run_rounds(ref, MeanClient(), range(6), num_rounds=4, private=private)

    strat = strategy_cls({"w": torch.zeros(())}, fraction=0.5, seed=1)
    server_app, result = make_server_app(strat, num_rounds=4)
    run_flower(server_app, make_client_app(MeanClient()), num_clients=6, engine="inprocess")
    assert torch.equal(strat.global_state["w"], ref.global_state["w"])
    assert [h["sampled"] for h in result["history"]] == [h["sampled"] for h in hist]
    assert strat.banned == ref.banned
    # the private store persisted in each node's Context.state between rounds
    expect = {c: float(private.get(c, {}).get("rounds", 0.0)) for c in range(6)
              if c not in ref.banned}
    assert {c: m["rounds"] for c, m in result["evaluate"].items()} == expect
    assert max(expect.values()) > 1  # some client trained in several rounds


def test_flower_unknown_engine_is_an_error():
    from shared.errors import ConfigError

    app, _ = make_server_app(FedAvg({"w": torch.zeros(())}), 1)
    with pytest.raises(ConfigError, match="unknown Flower engine"):
        run_flower(app, make_client_app(MeanClient()), 2, engine="grpc")


_SIM_OK, _SIM_WHY = simulation_available()


@pytest.mark.slow  # ~30 s of Ray start-up; tests/robwe runs the engine in the default suite
@pytest.mark.skipif(not _SIM_OK, reason=_SIM_WHY)
def test_flower_simulation_engine_matches_run_rounds():
    ref = DropOdd({"w": torch.zeros(())}, fraction=1.0, seed=0)
    run_rounds(ref, MeanClient(), range(4), num_rounds=2)
    strat = DropOdd({"w": torch.zeros(())}, fraction=1.0, seed=0)
    app, result = make_server_app(strat, num_rounds=2)
    run_flower(app, make_client_app(MeanClient()), num_clients=4, engine="simulation")
    assert torch.equal(strat.global_state["w"], ref.global_state["w"])
    assert len(result["history"]) == 2


@pytest.mark.skipif(_SIM_OK, reason="the Simulation Engine is available here")
def test_flower_simulation_without_ray_is_a_clear_error():
    from shared.errors import ConfigError

    app, _ = make_server_app(FedAvg({"w": torch.zeros(())}), 1)
    with pytest.raises(ConfigError, match="Ray"):
        run_flower(app, make_client_app(MeanClient()), 2, engine="simulation")


def test_flower_client_failure_matches_run_rounds():
    from test_shared_fl import FailingClient

    ref = FedAvg({"w": torch.zeros(())}, fraction=1.0, seed=0)
    hist = run_rounds(ref, FailingClient(), range(3), num_rounds=2)
    strat = FedAvg({"w": torch.zeros(())}, fraction=1.0, seed=0)
    app, result = make_server_app(strat, num_rounds=2)
    run_flower(app, make_client_app(FailingClient()), num_clients=3, engine="inprocess")
    assert [h["failed"] for h in result["history"]] == [h["failed"] for h in hist] == [[1], [1]]
    assert torch.equal(strat.global_state["w"], ref.global_state["w"])
