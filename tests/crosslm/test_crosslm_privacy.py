"""Only synthetic text and scalar scores cross the client/server boundary: every message of a
round is inspected, in-process and on Flower."""

import numpy as np
import torch

from crosslm.federation import UPLOAD_KEYS, tensors_to_texts
from crosslm.pipeline import make_arm
from shared.fl import run_rounds

DOWNLOAD_KEYS = {"train_text", "train_len", "train_label", "train_soft", "query_text",
                 "query_len", "query_label"}


def _private_texts(setup) -> set[str]:
    fed = setup.fed
    return {t for p in fed.private for t in fed.texts(p)}


def _check_upload(state: dict, metrics: dict, n_query: int, num_classes: int) -> None:
    assert set(state) <= UPLOAD_KEYS, f"a client uploaded {sorted(set(state) - UPLOAD_KEYS)}"
    s = state["scores"]
    assert s.dtype == torch.float32 and tuple(s.shape) == (n_query,)
    assert bool(((s >= 0) & (s <= 1)).all())
    if "probs" in state:
        assert tuple(state["probs"].shape) == (n_query, num_classes)
        assert torch.allclose(state["probs"].sum(1), torch.ones(n_query), atol=1e-5)
    for k, v in metrics.items():  # only scalars besides the scores
        assert isinstance(v, (int, float)) and np.isfinite(v), k


def _check_download(state: dict, private: set[str]) -> int:
    assert set(state) <= DOWNLOAD_KEYS, sorted(set(state) - DOWNLOAD_KEYS)
    assert state["train_text"].dtype == torch.uint8 and state["query_text"].dtype == torch.uint8
    texts = tensors_to_texts(state["train_text"], state["train_len"]) + \
        tensors_to_texts(state["query_text"], state["query_len"])
    assert not set(texts) & private  # the server only ever holds LLM samples
    return int(state["query_len"].numel())


class Recorder:
    """Wraps an FLClient and records every message in both directions."""

    def __init__(self, client):
        self.client, self.log = client, []

    def fit(self, cid, state, config, private):
        upd = self.client.fit(cid, state, config, private)
        self.log.append((cid, {k: v.clone() for k, v in state.items()}, upd))
        return upd

    def evaluate(self, cid, state, config, private):
        return self.client.evaluate(cid, state, config, private)


def test_in_process_round_sends_only_synthetic_text_and_scores(tiny_setup, tiny_cfg):
    cfg = tiny_cfg
    strategy, client = make_arm(tiny_setup, "crosslm", cfg)
    rec = Recorder(client)
    private = {}
    run_rounds(strategy, rec, list(range(cfg.data.num_clients)), 2, private=private)
    assert len(rec.log) == 2 * cfg.data.num_clients
    secret = _private_texts(tiny_setup)
    for _, down, upd in rec.log:
        n = _check_download(down, secret)
        assert n > 0
        _check_upload(upd.state, upd.metrics, n, tiny_setup.fed.task.num_classes)
    # the SLM weights stayed in the clients' private stores
    assert all(any(k.startswith("slm.") for k in private[c]) for c in private)


def test_soft_labels_upload_probabilities_only(tiny_setup, tiny_cfg):
    import dataclasses

    cfg = dataclasses.replace(tiny_cfg, slm=dataclasses.replace(tiny_cfg.slm, soft_labels=True))
    strategy, client = make_arm(tiny_setup, "crosslm", cfg)
    rec = Recorder(client)
    run_rounds(strategy, rec, list(range(cfg.data.num_clients)), 2, private={})
    assert any("probs" in u.state for _, _, u in rec.log)
    assert strategy.global_state["train_soft"].shape[1] == tiny_setup.fed.task.num_classes
    for _, down, upd in rec.log:
        _check_upload(upd.state, upd.metrics, int(down["query_len"].numel()),
                      tiny_setup.fed.task.num_classes)


def test_flower_messages_carry_only_synthetic_text_and_scores(tiny_setup, tiny_cfg):
    from shared.fl.flower import make_client_app, make_server_app, run_flower

    cfg = tiny_cfg
    strategy, client = make_arm(tiny_setup, "crosslm", cfg)
    app = make_client_app(client)
    seen = []

    def recording_app(msg, context):  # every message a SuperNode receives and sends back
        reply = app(msg, context)
        seen.append((msg, reply))
        return reply

    server_app, result = make_server_app(strategy, 2)
    run_flower(server_app, recording_app, cfg.data.num_clients, engine="inprocess")
    secret = _private_texts(tiny_setup)
    kinds = [m.metadata.message_type for m, _ in seen]
    assert kinds.count("train") == 2 * cfg.data.num_clients
    for msg, reply in seen:
        kind = msg.metadata.message_type
        assert set(reply.content.keys()) <= {"arrays", "metrics", "info"}
        if kind == "query":
            assert set(reply.content["info"].keys()) == {"partition-id"}
            continue
        down = dict(msg.content["arrays"].to_torch_state_dict())
        n = _check_download(down, secret)
        metrics = dict(reply.content["metrics"])
        if kind == "train":
            up = dict(reply.content["arrays"].to_torch_state_dict())
            metrics.pop("num-examples"), metrics.pop("client-id")
            _check_upload(up, metrics, n, tiny_setup.fed.task.num_classes)
        else:  # evaluate: scalar metrics only
            assert "arrays" not in reply.content.keys()
            assert set(metrics) <= {"acc", "ood_acc"}
    assert len(result["history"]) == 2
