"""The `shared.fl.loop` Strategy and FLClient on Flower (`flwr` >= 1.20, Message API).

    client_app = make_client_app(client)                    # flwr.clientapp.ClientApp
    server_app, result = make_server_app(strategy, num_rounds=5)
    run_flower(server_app, client_app, num_clients=4, engine="simulation")  # Flower's engine
    result["history"], result["evaluate"]                   # per-round records, final metrics

The message protocol (what travels between the SuperLink and the SuperNodes):

- `query`: the server asks each node for its `partition-id` (the client id);
- `train`: content {"arrays": ArrayRecord(global shared state), "config": ConfigRecord};
  reply {"arrays": ArrayRecord(uploaded state), "metrics": MetricRecord(+ "num-examples")};
- `evaluate`: the same request; reply {"metrics": MetricRecord}.

A client's private store lives in the node's `Context.state["private"]` (an ArrayRecord), which
Flower keeps between rounds, so personalised parameters never leave the node. The server half
of a round is `shared.fl.loop.finish_round`, the same code the in-process loop runs.

Engines. `engine="simulation"` is Flower's Simulation Engine (`flwr.simulation.run_simulation`),
whose only backend in flwr 1.42 is Ray (`pip install "flwr[simulation]"`).
`engine="inprocess"` drives the same ServerApp and ClientApp through `InProcessGrid`, a
`flwr.serverapp.Grid` that delivers each message to the ClientApp in this process: no Ray, no
gRPC, deterministic; for tests and machines without Ray.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Iterable

from shared.fl.loop import Failure, FLClient, Strategy, Update, finish_round
from shared.log import get_logger

__all__ = ["make_client_app", "make_server_app", "run_flower", "InProcessGrid",
           "simulation_available"]

log = get_logger(__name__)


def _require_flwr():
    if importlib.util.find_spec("flwr") is None:
        from shared.errors import ConfigError

        raise ConfigError("Flower is not installed: pip install 'paperbench[fl]'")


def simulation_available() -> tuple[bool, str]:
    """Whether Flower's Simulation Engine can run here, and why not."""
    if importlib.util.find_spec("flwr") is None:
        return False, "flwr is not installed"
    if importlib.util.find_spec("ray") is None:
        return False, ("Flower's Simulation Engine needs Ray (its only backend in flwr 1.42: "
                       "pip install 'flwr[simulation]'), which is not installed")
    return True, ""


def make_client_app(client: FLClient):
    """Wrap an FLClient as a `flwr.clientapp.ClientApp` (train / evaluate / query handlers)."""
    _require_flwr()
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    def unpack(msg, context):
        cid = int(context.node_config["partition-id"])
        state = msg.content["arrays"].to_torch_state_dict()
        config = dict(msg.content["config"])
        stored = context.state.get("private")
        private = dict(stored.to_torch_state_dict()) if stored is not None else {}
        return cid, state, config, private

    @app.query()
    def query(msg, context):
        pid = int(context.node_config["partition-id"])
        return Message(RecordDict({"info": MetricRecord({"partition-id": pid})}), reply_to=msg)

    @app.train()
    def train(msg, context):
        cid, state, config, private = unpack(msg, context)
        upd = client.fit(cid, state, config, private)
        context.state["private"] = ArrayRecord(private)
        metrics = {**upd.metrics, "num-examples": int(upd.num_examples), "client-id": cid}
        content = RecordDict({"arrays": ArrayRecord(upd.state), "metrics": MetricRecord(metrics)})
        return Message(content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg, context):
        cid, state, config, private = unpack(msg, context)
        metrics = client.evaluate(cid, state, config, private)
        return Message(RecordDict({"metrics": MetricRecord(dict(metrics))}), reply_to=msg)

    return app


def _replies(grid, messages: list, tolerate: bool = False) -> list:
    """The replies to `messages`. Error replies raise unless `tolerate` (then the caller gets
    them and counts them as failures); a message without a reply always raises."""
    replies = list(grid.send_and_receive(messages))
    if not tolerate:
        for r in replies:
            if r.has_error():
                raise RuntimeError(f"a Flower client failed: {r.error.reason}")
    if len(replies) != len(messages):
        raise RuntimeError(f"{len(messages) - len(replies)} Flower clients did not reply")
    return replies


def _wait_for_nodes(grid, min_nodes: int | None, timeout: float = 60.0) -> list[int]:
    """Node ids once `min_nodes` have connected (or, with None, once the count is non-zero and
    unchanged for a second): Flower's engines register SuperNodes asynchronously."""
    import time

    start, last, stable_since = time.monotonic(), -1, time.monotonic()
    while True:
        nodes = sorted(grid.get_node_ids())
        now = time.monotonic()
        if len(nodes) != last:
            last, stable_since = len(nodes), now
        if nodes and (len(nodes) >= min_nodes if min_nodes else now - stable_since >= 1.0):
            return nodes
        if now - start > timeout:
            raise RuntimeError(f"only {len(nodes)} Flower nodes connected after {timeout:.0f} s")
        time.sleep(0.1)


def make_server_app(strategy: Strategy, num_rounds: int, evaluate_config: dict | None = None,
                    min_nodes: int | None = None):
    """A `flwr.serverapp.ServerApp` running `strategy` for `num_rounds`, then one evaluate pass
    over the clients that are not banned. Returns (app, result); `result` is filled with
    "history" (one record per round, as `run_rounds`) and "evaluate" ({client_id: metrics}).
    The app first waits for `min_nodes` clients (None: until the connected count settles)."""
    _require_flwr()
    from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
    from flwr.serverapp import ServerApp

    app = ServerApp()
    result: dict = {"history": [], "evaluate": {}}

    def request(node, kind, config):
        content = RecordDict({"arrays": ArrayRecord(strategy.global_state),
                              "config": ConfigRecord(config)})
        return Message(content, dst_node_id=node, message_type=kind)

    @app.main()
    def main(grid, context):
        nodes = _wait_for_nodes(grid, min_nodes)
        found = _replies(grid, [Message(RecordDict(), dst_node_id=n, message_type="query")
                                for n in nodes])
        node_of = {int(r.content["info"]["partition-id"]): r.metadata.src_node_id for r in found}
        client_ids = sorted(node_of)
        for rnd in range(1, num_rounds + 1):
            plan = strategy.configure_fit(rnd, client_ids)
            replies = _replies(grid, [request(node_of[c], "train", cfg) for c, cfg in plan.items()],
                               tolerate=True)
            client_of = {n: c for c, n in node_of.items()}
            updates, failures = [], []
            for r in replies:
                if r.has_error():
                    failures.append(Failure(client_of[r.metadata.src_node_id], r.error.reason))
                    continue
                m = dict(r.content["metrics"])
                cid, n = int(m.pop("client-id")), int(m.pop("num-examples"))
                updates.append(Update(cid, dict(r.content["arrays"].to_torch_state_dict()), n,
                                      {k: float(v) for k, v in m.items()}))
            record = finish_round(strategy, rnd, updates, failures)
            log.info("flower round %d: %d sampled, rejected %s", rnd, len(updates),
                     record["rejected"])
            result["history"].append(record)
        keep = [c for c in client_ids if c not in strategy.banned]
        cfg = {"round": num_rounds, **(evaluate_config or {})}
        replies = _replies(grid, [request(node_of[c], "evaluate", cfg) for c in keep])
        by_node = {n: c for c, n in node_of.items()}
        result["evaluate"] = {by_node[r.metadata.src_node_id]: dict(r.content["metrics"])
                              for r in replies}

    return app, result


def _grid_class():
    from flwr.app import Context, RecordDict
    from flwr.serverapp import Grid
    from flwr.supercore.run import Run

    class InProcessGridImpl(Grid):
        """A `flwr.serverapp.Grid` that hands each message to a ClientApp in this process.

        Node ids are 1000 + partition id; each node keeps its own `Context` (and so its
        `Context.state`) for the whole run, as a SuperNode does.
        """

        def __init__(self, client_app, num_nodes: int, run_id: int = 1):
            self._run = Run.create_empty(run_id)
            self._client_app = client_app
            self._contexts = {
                1000 + i: Context(run_id=run_id, node_id=1000 + i,
                                  node_config={"partition-id": i, "num-partitions": num_nodes},
                                  state=RecordDict(), run_config={})
                for i in range(num_nodes)}
            self._inbox: dict[str, object] = {}
            self._ids = itertools.count()

        def set_run(self, run):
            self._run = run

        @property
        def run(self):
            return self._run

        def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
            from flwr.app import Message

            return Message(content, dst_node_id=dst_node_id, message_type=message_type,
                           group_id=group_id, ttl=ttl)

        def get_node_ids(self) -> Iterable[int]:
            return list(self._contexts)

        def push_messages(self, messages):
            from flwr.app import Error, Message
            from flwr.common.constant import ErrorCode

            ids = []
            for msg in messages:
                mid = f"m{next(self._ids)}"
                try:
                    reply = self._client_app(msg, self._contexts[msg.metadata.dst_node_id])
                except Exception as e:  # as a SuperNode does: an error reply, not a crash
                    reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                                          reason=f"{type(e).__name__}: {e}"), reply_to=msg)
                self._inbox[mid] = reply
                ids.append(mid)
            return ids

        def pull_messages(self, message_ids):
            return [self._inbox.pop(m) for m in message_ids if m in self._inbox]

        def send_and_receive(self, messages, *, timeout=None):
            return self.pull_messages(self.push_messages(messages))

    return InProcessGridImpl


def InProcessGrid(client_app, num_nodes: int, run_id: int = 1):  # a class factory
    """Build the in-process `Grid` (see `_grid_class`)."""
    return _grid_class()(client_app, num_nodes, run_id)


def run_flower(server_app, client_app, num_clients: int, engine: str = "simulation",
               backend_config: dict | None = None) -> None:
    """Run a ServerApp against `num_clients` ClientApp nodes on the chosen engine."""
    _require_flwr()
    if engine == "simulation":
        ok, why = simulation_available()
        if not ok:
            from shared.errors import ConfigError

            raise ConfigError(f"engine 'simulation' unavailable: {why}")
        from flwr.simulation import run_simulation

        run_simulation(server_app=server_app, client_app=client_app,
                       num_supernodes=num_clients,
                       backend_config=backend_config or {"client_resources": {"num_cpus": 1}})
        return
    if engine != "inprocess":
        from shared.errors import ConfigError

        raise ConfigError(f"unknown Flower engine '{engine}' (use simulation or inprocess)")
    from flwr.app import Context, RecordDict
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    grid = InProcessGrid(client_app, num_clients)
    # Messages read their sender from TaskIdentity, which Flower's runtimes set per process
    # (as flwr.simulation.run_simulation does for its ServerApp thread).
    TaskIdentity.task_id, TaskIdentity.run_id = 1, grid.run.run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    server_app(grid, Context(run_id=grid.run.run_id, node_id=SUPERLINK_NODE_ID, node_config={},
                             state=RecordDict(), run_config={}))
